//! Issue #19, defect 6: slow, idle and surplus connections cannot hold the real server,
//! and it stops within its grace period whatever clients do. Each test configures short
//! limits (1 s) and allows 10 s for the server to act on them.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use std::time::Duration;
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the server gets to act on a 1 s limit.
const ACT_WITHIN: Duration = Duration::from_secs(10);

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; `None` if it is still open after
/// [`ACT_WITHIN`]. Returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(ACT_WITHIN, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    closed
        .ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

/// Reads until `marker` arrives; `None` if it has not after `within`.
async fn read_until(stream: &mut TcpStream, marker: &str, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "closed before `{marker}`");
            received.extend_from_slice(&buffer[..read]);
            if String::from_utf8_lossy(&received).contains(marker) {
                return String::from_utf8_lossy(&received).into_owned();
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let server = Server::start_with("memory", "127.0.0.1", &["--header-timeout", "1"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stpt\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut stream).await.is_some(),
        "a request without the end of its headers still holds the connection"
    );
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed() {
    let server = Server::start_with("memory", "127.0.0.1", &["--header-timeout", "1"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stpt\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until(&mut stream, "ok", ACT_WITHIN).await;
    assert!(answered.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")));
    assert!(
        read_until_closed(&mut stream).await.is_some(),
        "an idle kept-alive connection is still open"
    );
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start_with(
        "memory",
        "127.0.0.1",
        &["--header-timeout", "60", "--idle-timeout", "1"],
    )
    .await;
    let mut stream = connect(&server).await;
    assert!(
        read_until_closed(&mut stream).await.is_some(),
        "a connection that never said anything is still open"
    );
}

#[tokio::test]
async fn slow_bodies_get_408() {
    let server = Server::start_with(
        "memory",
        "127.0.0.1",
        &["--header-timeout", "60", "--request-timeout", "1"],
    )
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /tm_api/dry_run/ HTTP/1.1\r\nHost: stpt\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"machine_",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream)
        .await
        .expect("a request whose body trickles in still holds the connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn an_oversized_content_length_is_refused_before_the_body() {
    let server = Server::start_with("memory", "127.0.0.1", &["--body-limit", "1024"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /api/v1/events HTTP/1.1\r\nHost: stpt\r\nContent-Type: application/json\r\n\
              Content-Length: 104857600\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n", ACT_WITHIN)
        .await
        .expect("no answer before the body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let server = Server::start_with(
        "memory",
        "127.0.0.1",
        &[
            "--max-connections",
            "2",
            "--header-timeout",
            "60",
            "--idle-timeout",
            "60",
        ],
    )
    .await;
    let holders = [connect(&server).await, connect(&server).await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut waiting = connect(&server).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stpt\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut waiting, "ok", Duration::from_secs(1))
            .await
            .is_none(),
        "served beyond the connection limit"
    );
    drop(holders);
    let answer = read_until(&mut waiting, "ok", ACT_WITHIN).await;
    assert!(
        answer.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")),
        "served once a slot is free"
    );
}

#[tokio::test]
async fn shutdown_finishes_within_the_grace_period_despite_an_open_request() {
    let server = Server::start_with(
        "memory",
        "127.0.0.1",
        &[
            "--shutdown-grace",
            "1",
            "--header-timeout",
            "60",
            "--request-timeout",
            "60",
            "--open-ingest",
        ],
    )
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /tm_api/dry_run/ HTTP/1.1\r\nHost: stpt\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"machine_",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Fails unless the process exits 0 within 10 s of SIGTERM.
    server.stop().await;
}
