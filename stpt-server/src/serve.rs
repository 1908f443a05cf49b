//! Serving HTTP with limits, so slow or idle clients cannot hold the server: a deadline for
//! a request's headers, for a whole request, for a silent connection, a cap on open
//! connections, and a bounded graceful shutdown.
//!
//! `axum::serve` has none of these; this is its loop on hyper's HTTP/1 connection builder.

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time to send a request's headers; a kept-alive connection waiting for its next
    /// request is closed after it too.
    pub header_timeout: Duration,
    /// Time for a whole request, its body included, until the answer starts (`408`).
    pub request_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (sockets included:
    /// they are pinged more often).
    pub idle_timeout: Duration,
    /// Connections open at once; more wait in the listen queue until one closes. Sockets
    /// count for as long as they are open.
    pub max_connections: usize,
    /// After the shutdown signal, how long open requests may take to finish before their
    /// connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// After a failed `accept` (out of file descriptors, say), the pause before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; open requests then
/// have [`ServeLimits::shutdown_grace`] to finish. Requests carry the client's address
/// (`ConnectInfo<SocketAddr>`).
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(Connection::new(stream, limits.idle_timeout, slot));
        let service = app.clone().map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let connection = builder
                .serve_connection(io, TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "connection ended");
                    }
                }
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Forget connections that ended, so the set stays as small as what is open.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(());
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown: requests still open after the grace period; closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Middleware: a request that has no answer within the limit (a slow body, a stuck
/// handler) gets `408` and its connection is closed.
async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let api = {
        let path = request.uri().path();
        path.starts_with("/api/") || path.starts_with("/tm_api")
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = "the request took too long; send it again, faster";
            let mut response = if api {
                let body = serde_json::json!({
                    "error": {"code": "request_timeout", "message": message}
                });
                (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response()
            } else {
                (StatusCode::REQUEST_TIMEOUT, message).into_response()
            };
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A client's TCP stream that holds a connection slot for as long as it is open (sockets
/// included, after the upgrade) and fails once no byte has moved for the idle timeout.
struct Connection {
    stream: TcpStream,
    idle_timeout: Duration,
    idle_deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(stream: TcpStream, idle_timeout: Duration, slot: OwnedSemaphorePermit) -> Self {
        Connection {
            stream,
            idle_timeout,
            idle_deadline: Box::pin(tokio::time::sleep(idle_timeout)),
            _slot: slot,
        }
    }

    fn moved(&mut self, bytes: usize) {
        if bytes > 0 {
            let deadline = Instant::now() + self.idle_timeout;
            self.idle_deadline.as_mut().reset(deadline);
        }
    }

    /// After the stream said `Pending`: whether the connection has been silent too long.
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        self.idle_deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.moved(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                this.moved(written);
                Poll::Ready(Ok(written))
            }
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(written)) => {
                this.moved(written);
                Poll::Ready(Ok(written))
            }
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
