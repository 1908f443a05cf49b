//! Shared by the tests that run the real `stpt-server` binary.

#![allow(dead_code, unreachable_pub)] // Each test file uses a different part.

use std::process::Stdio;
use std::time::Duration;

/// A running `stpt-server` process on a free port, killed if dropped.
pub struct Server {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    pub async fn start(database_url: &str) -> Server {
        Self::start_with(database_url, "127.0.0.1", &[]).await
    }

    /// Listens on `host` (at a free port) with `extra` flags; logs go to a pipe.
    pub async fn start_with(database_url: &str, host: &str, extra: &[&str]) -> Server {
        Self::start_on(database_url, host, stpt_testkit::free_port(), extra).await
    }

    /// Listens on `host:port` with `extra` flags (e.g. again on the port of a server that was
    /// killed); logs go to a pipe.
    pub async fn start_on(database_url: &str, host: &str, port: u16, extra: &[&str]) -> Server {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
            .args([
                "--bind",
                &format!("{host}:{port}"),
                "--database-url",
                database_url,
                "--log",
                "warn",
                "--log-format",
                "json",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("{base}/readyz")).await {
                if response.status().is_success() {
                    return Server { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }

    /// SIGTERM, then wait: the server shuts down gracefully.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "graceful shutdown exits 0: {status}");
    }

    /// SIGKILL, then wait until the process is gone: no shutdown of any kind.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !status.success(),
            "a killed server does not exit 0: {status}"
        );
    }
}
