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
        Self::launch(database_url, host, port, extra, Limits::default()).await
    }

    /// Listens on a free loopback port with `extra` flags, within `limits`.
    pub async fn start_limited(database_url: &str, extra: &[&str], limits: Limits) -> Server {
        Self::launch(
            database_url,
            "127.0.0.1",
            stpt_testkit::free_port(),
            extra,
            limits,
        )
        .await
    }

    async fn launch(
        database_url: &str,
        host: &str,
        port: u16,
        extra: &[&str],
        limits: Limits,
    ) -> Server {
        let binary = env!("CARGO_BIN_EXE_stpt-server");
        // Limits are set by a shell that then becomes the server (`exec`): the process keeps
        // its id, and ignored signals stay ignored across `exec`.
        let mut command = match limits.shell_prefix() {
            None => tokio::process::Command::new(binary),
            Some(prefix) => {
                let mut shell = tokio::process::Command::new("sh");
                shell.args(["-c", &format!("{prefix} exec \"$0\" \"$@\""), binary]);
                shell
            }
        };
        let child = command
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Resident memory and open file descriptors of the server process.
    pub fn footprint(&self) -> Footprint {
        footprint_of(self.pid())
    }

    /// Keeps the server's log (its stdout) so a failure can show it, and so the pipe never
    /// fills (a server whose log pipe is full stops at its next log line).
    pub fn drain_logs(&mut self) -> tokio::task::JoinHandle<String> {
        let mut stdout = self.child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut logs = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut logs).await;
            String::from_utf8_lossy(&logs).into_owned()
        })
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

/// Resource limits of a server process (`setrlimit`, through the shell's `ulimit`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Largest file it may write, in bytes (`RLIMIT_FSIZE`); writes beyond fail with `EFBIG`
    /// (`SIGXFSZ` is ignored), as on a full disk.
    pub file_size: Option<u64>,
}

impl Limits {
    fn shell_prefix(self) -> Option<String> {
        // `ulimit -f` counts 512-byte blocks.
        self.file_size
            .map(|bytes| format!("trap '' XFSZ; ulimit -f {};", bytes.div_ceil(512)))
    }
}

/// Resident memory (KiB) and open file descriptors of process `pid`, from `/proc`.
pub fn footprint_of(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    Footprint {
        rss_kib,
        open_files,
    }
}

/// What a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub open_files: usize,
}

/// Raises this process's soft limit of open files to at least `needed` (within the hard
/// limit, through `prlimit`); panics when the hard limit is lower.
pub fn ensure_open_files(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    let (soft, hard) = (numbers[0], numbers[1]);
    if soft >= needed {
        return;
    }
    assert!(
        hard >= needed,
        "{needed} open files needed, but the hard limit is {hard} (raise `ulimit -Hn`)"
    );
    let raised = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={needed}:{hard}"),
        ])
        .status()
        .unwrap();
    assert!(
        raised.success(),
        "prlimit could not raise the open-files limit"
    );
}

/// A TCP proxy in front of a service (PostgreSQL, Redis), to take the service away from the
/// server and give it back without touching the service itself, which other tests share.
pub struct Proxy {
    port: u16,
    target: String,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    /// The accepting task, while the proxy is up.
    listener: Option<tokio::task::JoinHandle<()>>,
    /// One task per proxied connection.
    connections: Vec<tokio::task::AbortHandle>,
    /// Cuts so far: a connection accepted by the listener of an earlier cut is closed.
    cuts: u64,
}

impl Proxy {
    /// A proxy on a free loopback port to `target` (`host:port`), up.
    pub async fn start(target: &str) -> Proxy {
        let proxy = Proxy {
            port: stpt_testkit::free_port(),
            target: target.to_owned(),
            state: std::sync::Arc::default(),
        };
        proxy.restore().await;
        proxy
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap()
    }

    /// Takes the service away: open connections are closed and new ones refused (nothing
    /// listens on the port), as when the service is stopped.
    pub fn cut(&self) {
        let mut state = self.state();
        state.cuts += 1;
        if let Some(listener) = state.listener.take() {
            listener.abort();
        }
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    /// Gives the service back: the port listens again.
    pub async fn restore(&self) {
        // The accepting task of a cut is aborted asynchronously: retry until the port is free.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tries += 1;
                    assert!(tries < 100, "proxy port {} stays taken: {error}", self.port);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let target = self.target.clone();
        let state = std::sync::Arc::clone(&self.state);
        let cuts = self.state().cuts;
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let target = target.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut state = state.lock().unwrap();
                if state.cuts != cuts {
                    connection.abort();
                    return;
                }
                state.connections.retain(|c| !c.is_finished());
                state.connections.push(connection.abort_handle());
            }
        });
        self.state().listener = Some(accepting);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
