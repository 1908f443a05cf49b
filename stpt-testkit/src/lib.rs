//! Test support shared by stpt's crates (a dev-dependency only).
//!
//! - The skip rule for tests that need an external service: the address comes from an
//!   environment variable read at run time; unset, the test prints a `skipped:` line and
//!   returns, unless `STPT_TEST_INTEGRATION=1` (CI), where a missing service fails the test.
//! - [`TempDatabase`]: a scratch PostgreSQL database per test, dropped afterwards.
//! - [`OwnRedis`]: a `redis-server` of the test's own, to stop and restart mid-test.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // Test support fails loudly by design.

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether this run must not skip external-service tests (`STPT_TEST_INTEGRATION=1`).
pub fn integration() -> bool {
    std::env::var("STPT_TEST_INTEGRATION").is_ok_and(|value| value == "1")
}

/// The address of an external service from `var`. Unset: a loud `skipped:` line and `None`,
/// or a panic under `STPT_TEST_INTEGRATION=1`.
pub fn service_url(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if integration() => panic!("{var} is unset but STPT_TEST_INTEGRATION=1 requires it"),
        _ => {
            eprintln!("skipped: {var} is unset (e.g. {example})");
            None
        }
    }
}

/// The PostgreSQL server to test against (`STPT_TEST_POSTGRES_URL`).
pub fn postgres_url() -> Option<String> {
    service_url(
        "STPT_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The Redis server to test against (`STPT_TEST_REDIS_URL`).
pub fn redis_url() -> Option<String> {
    service_url("STPT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A name no other test (of this or a concurrent process) uses: for databases and channel
/// prefixes on shared servers.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database of its own on the test server, dropped (with its connections) when this is.
#[derive(Debug)]
pub struct TempDatabase {
    admin: PgConnectOptions,
    name: String,
    /// Connection options for the new database.
    pub options: PgConnectOptions,
}

impl TempDatabase {
    /// Creates a scratch database on the server at `url`.
    pub async fn create(url: &str) -> TempDatabase {
        let admin = PgConnectOptions::from_str(url).unwrap();
        let name = unique_name("stpt_test");
        let mut conn = admin.connect().await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = sqlx::Connection::close(conn).await;
        let options = admin.clone().database(&name);
        TempDatabase {
            admin,
            name,
            options,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        self.options.to_url_lossy().to_string()
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async clean-up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = sqlx::Connection::close(conn).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A `redis-server` of the test's own on a port of its own, so it can be stopped and
/// restarted. Killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    port: u16,
    child: tokio::process::Child,
}

impl OwnRedis {
    /// Starts `redis-server` on `port` and waits until it listens. `None` (with a `skipped:`
    /// line) when `redis-server` cannot be run, unless `STPT_TEST_INTEGRATION=1`.
    pub async fn start(port: u16) -> Option<OwnRedis> {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if integration() => panic!("redis-server cannot be started: {error}"),
            Err(error) => {
                eprintln!("skipped: redis-server cannot be started ({error})");
                return None;
            }
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(OwnRedis { port, child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until it is gone; returns its port for a restart.
    pub async fn stop(mut self) -> u16 {
        self.child.kill().await.unwrap();
        self.port
    }
}
