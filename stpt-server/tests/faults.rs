//! Faults and bounds (issue #19): the real binary while its PostgreSQL goes away, while its
//! Redis goes away, with its disk full, under 2,000 sockets of which 100 never read, and in a
//! compressed soak. Services are taken away through a TCP proxy of the test's own
//! ([`support::Proxy`]), never by stopping the shared ones; a full disk is a file-size limit
//! on the server process. Each test prints what it measured (`--nocapture`).
//!
//! The tests take turns (one lock), so no test measures another's load; together they take
//! about two and a half minutes. Run them alone with `cargo test -p stpt-server --test
//! faults`. PostgreSQL and Redis come from `STPT_TEST_POSTGRES_URL` and `STPT_TEST_REDIS_URL`;
//! unset, those tests skip, and fail when `STPT_TEST_INTEGRATION=1`.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::{NaiveDate, TimeDelta};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use sqlx::ConnectOptions as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Footprint, Limits, Proxy, Server};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The tests take turns: each measures the server alone on the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The longest one request may take, even while a service is away: the server's own bound
/// (5 s for a database connection) and a margin for a loaded CI machine.
const REQUEST_BOUND: Duration = Duration::from_secs(10);

/// How long anything expected may take to happen.
const PATIENCE: Duration = Duration::from_secs(20);

// --- PostgreSQL goes away -----------------------------------------------------------------

/// PostgreSQL unreachable mid-load (its connections closed, new ones refused): runners get
/// `503` with `Retry-After` in bounded time, never a `500`; `/readyz` says not ready. Once it
/// is back, every runner's retried events are stored, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_mid_load_answers_503_and_loses_nothing() {
    let Some(postgres) = stpt_testkit::postgres_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let database = stpt_testkit::TempDatabase::create(&postgres).await;
    let options = &database.options;
    let proxy = Proxy::start(&format!("{}:{}", options.get_host(), options.get_port())).await;
    let url = options
        .clone()
        .port(proxy.port())
        .to_url_lossy()
        .to_string();
    let mut server = Server::start(&url).await;
    let logs = server.drain_logs();

    let load = Load::start(&server.base, "pg-rig", 8, Shape::default());
    load.wait_until("acknowledged events before the cut", |c| c.acked() >= 100)
        .await;
    proxy.cut();
    let cut_at = Instant::now();
    let client = client();
    let mut readyz = Vec::new();
    while !readyz.contains(&503) {
        assert!(cut_at.elapsed() < PATIENCE, "/readyz answered {readyz:?}");
        let asked = Instant::now();
        let status = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0);
        assert!(
            asked.elapsed() < REQUEST_BOUND,
            "/readyz took {:?}",
            asked.elapsed()
        );
        readyz.push(status);
    }
    load.wait_until("503 answers while PostgreSQL is away", |c| {
        c.unavailable() >= 8
    })
    .await;
    // Longer than the pool waits for a connection: requests that waited are answered too.
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(cut_at.elapsed())).await;
    let acked_while_away = load.counters.acked();
    let outage = cut_at.elapsed();
    proxy.restore().await;
    let restored_at = Instant::now();
    while client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .map_or(true, |response| response.status() != 200)
    {
        assert!(
            restored_at.elapsed() < PATIENCE,
            "not ready after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = restored_at.elapsed();
    load.wait_until("acknowledged events after the return", |c| {
        c.acked() >= acked_while_away + 200
    })
    .await;
    let (rigs, counters) = load.stop().await;
    let report = counters.report(&rigs);
    assert_stored(&server.base, &rigs).await;
    server.stop().await;
    let logs = logs.await.unwrap();
    assert_no_errors_logged(&logs);
    println!(
        "postgres away for {outage:.1?}: {report}; /readyz while away {readyz:?}, ready again \
         {ready_after:.1?} after the return"
    );
}

// --- Redis goes away ------------------------------------------------------------------------

/// Redis unreachable mid-load (the server runs with the Redis bus): ingestion does not notice;
/// a live page is told it is behind, and once Redis is back it catches up with what was
/// posted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_load_keeps_ingestion_and_pages_catch_up() {
    let Some(redis) = stpt_testkit::redis_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    // `redis://[user:password@]host:port[/db]`: the server gets the same URL, through the proxy.
    let authority = redis
        .split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let target = authority.rsplit('@').next().unwrap();
    let proxy = Proxy::start(target).await;
    let prefix = stpt_testkit::unique_name("stpt-faults");
    let mut server = Server::start_with(
        "memory",
        "127.0.0.1",
        &[
            "--redis-url",
            &redis.replacen(target, &format!("127.0.0.1:{}", proxy.port()), 1),
            "--redis-prefix",
            &prefix,
        ],
    )
    .await;
    let logs = server.drain_logs();

    let load = Load::start(&server.base, "redis-rig", 4, Shape::default());
    load.wait_until("the first plans", |c| c.acked() >= 20)
        .await;
    let machine = load.first_machine().await;
    let mut page = connect(&server.base, &format!("/ws/v1/machine/{machine}/last/")).await;
    let mut view = RunView::default();
    view.read_until(&mut page, "the page's first snapshot", |view| {
        view.snapshots > 0
    })
    .await;

    proxy.cut();
    let cut_at = Instant::now();
    view.read_until(&mut page, "being told it is behind", |view| view.behind > 0)
        .await;
    let told_after = cut_at.elapsed();
    let acked_at_cut = load.counters.acked();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked_while_away = load.counters.acked() - acked_at_cut;
    assert!(
        acked_while_away > 50,
        "ingestion slowed: {acked_while_away}"
    );
    let snapshots_before = view.snapshots;
    proxy.restore().await;
    let restored_at = Instant::now();
    view.read_until(&mut page, "a snapshot once Redis is back", |view| {
        view.snapshots > snapshots_before && view.caught_up > 0
    })
    .await;
    let caught_up_after = restored_at.elapsed();
    let (rigs, counters) = load.stop().await;
    let report = counters.report(&rigs);
    // After the last event, the page holds exactly what is stored.
    let latest = latest_run(&server.base, machine).await;
    view.read_until(&mut page, "the stored state of the latest run", |view| {
        view.matches(&latest)
    })
    .await;
    // The publisher and the subscriber reconnect each after its own backoff: wait for one.
    let reconnect_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("stpt_bus_reconnects_total") {
            break;
        }
        assert!(
            Instant::now() < reconnect_deadline,
            "the bus never reconnected: the cut did not happen"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
    drop(logs);
    println!(
        "redis away {:.1?}: {report}; {acked_while_away} events acknowledged meanwhile; page \
         told it is behind after {told_after:.1?}, caught up {caught_up_after:.1?} after the \
         return",
        restored_at - cut_at
    );
}

// --- the disk fills -------------------------------------------------------------------------

/// The SQLite file cannot grow (a file-size limit on the server process, as on a full disk):
/// ingestion answers `503` with `Retry-After`, never a `500`, and the server stays up; the
/// file passes `PRAGMA integrity_check`; with space again, nothing acknowledged is lost and
/// new events are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_corrupts_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stpt.sqlite3");
    let url = format!("sqlite://{}", file.display());
    // Created and migrated without a limit, then closed, all of it in the file itself.
    Server::start(&url).await.stop().await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut open_sqlite(&file).await)
        .await
        .unwrap();
    let room = 256 * 1024;
    let file_size = std::fs::metadata(&file).unwrap().len() + room;
    let mut server = Server::start_limited(
        &url,
        &[],
        Limits {
            file_size: Some(file_size),
        },
    )
    .await;
    let logs = server.drain_logs();
    let shape = Shape {
        script_bytes: 2048,
        ..Shape::default()
    };
    let load = Load::start(&server.base, "disk-rig", 4, shape);
    load.wait_until("acknowledged events before the file is full", |c| {
        c.acked() >= 20
    })
    .await;
    load.wait_until("503 answers once the file is full", |c| {
        c.unavailable() >= 8
    })
    .await;
    let (rigs, counters) = load.stop().await;
    let report = counters.report_allowing_unfinished(&rigs);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died on a full disk"
    );
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.kill().await;
    let logs = logs.await.unwrap();
    assert_no_errors_logged(&logs);

    let integrity = integrity_check(&file).await;
    assert_eq!(integrity, "ok", "the file is damaged");
    let server = Server::start(&url).await;
    assert_stored(&server.base, &rigs).await;
    let load = Load::start(&server.base, "disk-rig-after", 4, Shape::default());
    load.wait_until("events stored with space again", |c| c.acked() >= 200)
        .await;
    let (after, after_counters) = load.stop().await;
    let report_after = after_counters.report(&after);
    assert_stored(&server.base, &after).await;
    server.stop().await;
    println!(
        "disk full at {} KiB: {report}; integrity_check {integrity}; with space again: \
         {report_after}",
        file_size / 1024
    );
}

/// `PRAGMA integrity_check` of the SQLite file.
async fn integrity_check(file: &std::path::Path) -> String {
    let (answer,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut open_sqlite(file).await)
        .await
        .unwrap();
    answer
}

async fn open_sqlite(file: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .connect()
        .await
        .unwrap()
}

// --- 2,000 sockets --------------------------------------------------------------------------

/// Sockets on one run.
const SOCKETS: usize = 2000;
/// Of which never read.
const DEAF_SOCKETS: usize = 100;
/// Tests of the run they follow.
const SOCKET_RUN_TESTS: usize = 25;
/// The runner's pace: five events a second, a busy machine's. (Each event is 1,900 messages:
/// faster, a debug build on two cores spends all its time sending them.)
const SOCKET_RUN_PACE: Duration = Duration::from_millis(200);
/// The most the server may hold with every socket open, MiB.
const SOCKETS_RSS_BOUND_MIB: u64 = 512;

/// 2,000 sockets follow one run, 100 of them never read: the server's memory stays bounded,
/// the runner's events are answered about as fast as without the sockets, and every socket
/// that reads gets every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sockets_of_which_a_hundred_never_read() {
    let _turn = ONE_AT_A_TIME.lock().await;
    support::ensure_open_files(2 * SOCKETS as u64 + 1024);
    let mut server = Server::start_with(
        "memory",
        "127.0.0.1",
        &["--max-connections", &(SOCKETS + 100).to_string()],
    )
    .await;
    let logs = server.drain_logs();
    let shared = Arc::new(Counters::default());
    // Snapshots of 25 KiB: more than a socket that is not read holds (see `connect_deaf`).
    let shape = Shape {
        tests: SOCKET_RUN_TESTS,
        path_bytes: 1000,
        ..Shape::default()
    };
    let mut rig = Rig::new(&server.base, "socket-rig".to_owned(), shape);
    // A first run without sockets: the latency to compare with.
    assert!(rig.step(&shared).await);
    post_run(&mut rig, &shared).await;
    let alone = Latencies::of(&rig.latencies);
    assert!(rig.step(&shared).await);
    rig.latencies.clear();
    let run = rig.model.runs[1].0;
    let idle = server.footprint();

    let (target_tx, target) = watch::channel(None::<Arc<HashMap<i64, String>>>);
    let path = format!("/ws/v1/run/{run}/");
    let connecting = Instant::now();
    let deaf = futures_util::future::join_all(
        (0..DEAF_SOCKETS).map(|_| connect_deaf(&server.base, &path)),
    )
    .await;
    let deaf_ports: Vec<u16> = deaf.iter().map(|(_, port)| *port).collect();
    let mut readers = Vec::new();
    for _ in 0..(SOCKETS - DEAF_SOCKETS) / 100 {
        let sockets =
            futures_util::future::join_all((0..100).map(|_| connect(&server.base, &path))).await;
        for socket in sockets {
            readers.push(tokio::spawn(follow_run(socket, target.clone())));
        }
    }
    let connected_in = connecting.elapsed();
    let sampler = Sampler::start(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all_open = server.footprint();

    let posting = Instant::now();
    let cpu_before = cpu_time(server.pid());
    post_run(&mut rig, &shared).await;
    let posted_in = posting.elapsed();
    let expected: HashMap<i64, String> = rig.model.runs[1].1.iter().cloned().collect();
    target_tx.send_replace(Some(Arc::new(expected)));
    let mut messages = 0;
    for reader in readers {
        messages += reader.await.unwrap();
    }
    let delivered_in = posting.elapsed();
    let cpu = cpu_time(server.pid()) - cpu_before;
    let backed_up = unsent_to(&server.base, &deaf_ports);
    let peak = sampler.stop().await;
    let watched = Latencies::of(&rig.latencies);
    println!(
        "{SOCKETS} sockets ({DEAF_SOCKETS} never read) connected in {connected_in:.1?}; server \
         RSS {} MiB idle, {} MiB with the sockets, {} MiB at most while {} events were posted \
         in {posted_in:.1?}; descriptors {} idle, {} with the sockets; {messages} messages read \
         by {} sockets in {delivered_in:.1?} ({cpu:.1?} of server CPU), each got every change; \
         {backed_up} of the sockets never read hold unsent messages; latency without sockets \
         {alone}, with them {watched}",
        idle.rss_kib / 1024,
        all_open.rss_kib / 1024,
        peak.rss_kib / 1024,
        rig.latencies.len(),
        idle.open_files,
        all_open.open_files,
        SOCKETS - DEAF_SOCKETS,
    );
    assert!(
        rig.failures.is_empty() && shared.unavailable() == 0,
        "{:?}",
        rig.failures
    );
    assert!(
        backed_up >= DEAF_SOCKETS / 2,
        "only {backed_up} of the sockets never read are backed up: the test proves nothing"
    );
    // Sending to 1,900 sockets takes CPU the requests share; a publisher waiting on a backed
    // up socket would wait for the send timeout (30 s).
    assert!(
        watched.max < Duration::from_secs(3),
        "publishers stalled: without sockets {alone}, with them {watched}"
    );
    assert!(
        peak.rss_kib < SOCKETS_RSS_BOUND_MIB * 1024,
        "server RSS {} MiB with {SOCKETS} sockets",
        peak.rss_kib / 1024
    );
    drop(deaf);
    server.stop().await;
    drop(logs);
}

/// A socket that is never read, with a small receive buffer (about 8 KiB, as the kernel
/// doubles it): with the server's send buffer (16 KiB to start with), it is backed up after
/// some 25 KiB. Answers the socket and its local port.
async fn connect_deaf(base: &str, path: &str) -> (Socket, u16) {
    let address: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let port = stream.local_addr().unwrap().port();
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    let (socket, _) = tokio::time::timeout(
        PATIENCE,
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap()
    .unwrap();
    (socket, port)
}

/// How many of the server's connections to these client ports hold data the client has
/// not taken (a non-empty send queue in `/proc/net/tcp`).
fn unsent_to(base: &str, client_ports: &[u16]) -> usize {
    let server_port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of =
        |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let unsent = fields[4].split(':').next().unwrap();
            port_of(fields[1]) == server_port
                && client_ports.contains(&port_of(fields[2]))
                && u64::from_str_radix(unsent, 16).unwrap() > 0
        })
        .count()
}

/// Starts and stops every test of the rig's latest run, at [`SOCKET_RUN_PACE`].
async fn post_run(rig: &mut Rig, counters: &Counters) {
    let run = rig.model.runs.len();
    while rig.model.runs.len() == run && rig.position < 2 * rig.shape.tests {
        assert!(rig.step(counters).await, "{:?}", rig.failures);
        tokio::time::sleep(SOCKET_RUN_PACE).await;
    }
}

/// CPU time process `pid` has used (user and system), from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<u64> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse().unwrap())
        .collect();
    // Clock ticks, 100 a second on Linux.
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// Reads a run's socket until its view holds the target statuses; answers how many messages
/// it read. Panics if the socket closes or the target is not reached within [`PATIENCE`]
/// of being set.
async fn follow_run(
    mut socket: Socket,
    mut target: watch::Receiver<Option<Arc<HashMap<i64, String>>>>,
) -> usize {
    let mut view = RunView::default();
    let mut deadline = None;
    loop {
        if let Some(expected) = target.borrow().clone() {
            if view.tests == *expected {
                return view.messages;
            }
            deadline.get_or_insert(tokio::time::Instant::now() + PATIENCE);
        }
        let give_up = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = socket.next() => view.apply(message),
            _ = target.changed() => {}
            () = give_up => panic!("a reading socket missed changes: {view:?}"),
        }
    }
}

// --- soak -------------------------------------------------------------------------------------

/// Machines in the soak.
const SOAK_MACHINES: usize = 64;
/// How long the soak runs.
const SOAK: Duration = Duration::from_secs(60);
/// What the soak leaves out of its start figures: caches filling, pools opening.
const SOAK_WARM_UP: Duration = Duration::from_secs(10);

/// 64 machines post for a minute with their pages' sockets open, on SQLite: the server's
/// memory and descriptors end where they were after the warm-up (within a stated
/// tolerance), and the last third's p99 latency is that of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_soak_stays_flat() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    let mut server = Server::start(&url).await;
    let logs = server.drain_logs();
    let shape = Shape {
        pause: Duration::from_millis(100),
        ..Shape::default()
    };
    let began = Instant::now();
    let load = Load::start(&server.base, "soak-rig", SOAK_MACHINES, shape);
    load.wait_until("every machine's first plan", |c| {
        c.acked() >= 2 * SOAK_MACHINES
    })
    .await;
    // Each machine's page: its latest run, and the machine list, as browsers keep them open.
    let mut pages = Vec::new();
    for machine in load.machines().await {
        for path in [
            format!("/ws/v1/machine/{machine}/last/"),
            format!("/ws/v1/machine/{machine}/runs/?page=1&page_size=10"),
        ] {
            pages.push(tokio::spawn(drain_socket(
                connect(&server.base, &path).await,
            )));
        }
    }
    tokio::time::sleep(SOAK_WARM_UP.saturating_sub(began.elapsed())).await;
    let start = server.footprint();
    let sampler = Sampler::start(&server);
    tokio::time::sleep(SOAK.saturating_sub(began.elapsed())).await;
    let end = server.footprint();
    let peak = sampler.stop().await;
    let (rigs, counters) = load.stop().await;
    let report = counters.report(&rigs);
    for page in &pages {
        assert!(
            !page.is_finished(),
            "a page's socket closed during the soak"
        );
    }
    let latencies: Vec<(Duration, Duration)> = rigs
        .iter()
        .flat_map(|rig| rig.latencies.iter().copied())
        .filter(|(at, _)| *at >= SOAK_WARM_UP)
        .collect();
    let third = (SOAK - SOAK_WARM_UP) / 3;
    let first = Latencies::of_window(&latencies, SOAK_WARM_UP, SOAK_WARM_UP + third);
    let last = Latencies::of_window(&latencies, SOAK - third, SOAK);
    server.stop().await;
    drop(logs);
    println!(
        "soak, {SOAK_MACHINES} machines for {SOAK:?}, {} sockets: {report}; RSS {} MiB after \
         the warm-up, {} MiB at the end, {} MiB at most; descriptors {} then {} (at most {}); \
         first third {first}, last third {last}",
        pages.len(),
        start.rss_kib / 1024,
        end.rss_kib / 1024,
        peak.rss_kib / 1024,
        start.open_files,
        end.open_files,
        peak.open_files,
    );
    // Tolerances: memory may grow by a quarter (allocator arenas, SQLite's page caches) plus
    // 16 MiB; descriptors by 8 (a pool connection opened late); p99 by half plus 20 ms.
    assert!(
        end.rss_kib <= start.rss_kib + start.rss_kib / 4 + 16 * 1024,
        "memory grew: {start:?} -> {end:?}"
    );
    assert!(
        end.open_files <= start.open_files + 8,
        "descriptors grew: {start:?} -> {end:?}"
    );
    assert!(
        last.p99 <= first.p99 + first.p99 / 2 + Duration::from_millis(20),
        "p99 latency grew: first third {first}, last third {last}"
    );
}

/// Reads a socket until it closes, as a page does; answers how many messages it read.
async fn drain_socket(mut socket: Socket) -> usize {
    let mut read = 0;
    while let Some(Ok(_)) = socket.next().await {
        read += 1;
    }
    read
}

// --- runners --------------------------------------------------------------------------------

/// What each rig posts.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Tests per plan (one scenario).
    tests: usize,
    /// Each test's script is padded to this many bytes (unique to the test).
    script_bytes: usize,
    /// Each test's directory is padded to this many bytes (it is in every snapshot).
    path_bytes: usize,
    /// A rig's pause after each acknowledged request.
    pause: Duration,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            tests: 6,
            script_bytes: 0,
            path_bytes: 0,
            pause: Duration::ZERO,
        }
    }
}

/// What all rigs of a load count together.
#[derive(Debug, Default)]
struct Counters {
    /// Requests answered 2xx.
    acked: AtomicUsize,
    /// `503` answers (each retried).
    unavailable: AtomicUsize,
    /// Set to stop the rigs after their current request.
    stop: AtomicBool,
    /// Every rig's failures, as they happen.
    failures: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::SeqCst)
    }

    /// Asserts that no rig saw anything but 2xx and `503`, every one of them finished, and
    /// describes the load.
    fn report(&self, rigs: &[Rig]) -> String {
        for rig in rigs {
            assert!(
                !rig.unfinished,
                "{}: a request was never acknowledged",
                rig.name
            );
        }
        self.report_allowing_unfinished(rigs)
    }

    /// As [`Counters::report`], but a rig may have been stopped while its request was still
    /// answered `503`.
    fn report_allowing_unfinished(&self, rigs: &[Rig]) -> String {
        let failures: Vec<&String> = rigs.iter().flat_map(|rig| &rig.failures).collect();
        assert!(
            failures.is_empty(),
            "{} failures: {failures:#?}",
            failures.len()
        );
        let latencies: Vec<(Duration, Duration)> = rigs
            .iter()
            .flat_map(|rig| rig.latencies.iter().copied())
            .collect();
        let slowest = rigs.iter().map(|rig| rig.slowest).max().unwrap_or_default();
        format!(
            "{} rigs, {} acknowledged, {} answered 503 and retried, 0 failures; {} (retries \
             included), slowest single answer {slowest:.1?}",
            rigs.len(),
            self.acked(),
            self.unavailable(),
            Latencies::of(&latencies)
        )
    }
}

/// Runners posting concurrently, one machine each, until stopped.
struct Load {
    counters: Arc<Counters>,
    rigs: Vec<tokio::task::JoinHandle<Rig>>,
    /// The machine ids, as the rigs learn them.
    machines: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Load {
    fn start(base: &str, prefix: &str, count: usize, shape: Shape) -> Load {
        let counters = Arc::new(Counters::default());
        let machines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let rigs = (0..count)
            .map(|n| {
                let mut rig = Rig::new(base, format!("{prefix}-{n}"), shape);
                let counters = Arc::clone(&counters);
                let machines = Arc::clone(&machines);
                tokio::spawn(async move {
                    while !counters.stop.load(Ordering::SeqCst) {
                        if !rig.step(&counters).await {
                            break;
                        }
                        if let (Some(id), 1) = (rig.model.machine, rig.model.runs.len()) {
                            let mut known = machines.lock().unwrap();
                            if !known.contains(&id) {
                                known.push(id);
                            }
                        }
                        tokio::time::sleep(shape.pause).await;
                    }
                    rig
                })
            })
            .collect();
        Load {
            counters,
            rigs,
            machines,
        }
    }

    /// Waits until `done` holds of the counters; fails after [`PATIENCE`], or when a rig
    /// gave up.
    async fn wait_until(&self, what: &str, done: impl Fn(&Counters) -> bool) {
        let began = Instant::now();
        while !done(&self.counters) {
            assert!(
                !self.rigs.iter().any(tokio::task::JoinHandle::is_finished),
                "waiting for {what}: a rig gave up: {:?}",
                self.counters.failures.lock().unwrap()
            );
            assert!(
                began.elapsed() < PATIENCE,
                "no {what} within {PATIENCE:?}: {} acknowledged, {} answered 503",
                self.counters.acked(),
                self.counters.unavailable()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every rig's machine id, once each has posted its first plan.
    async fn machines(&self) -> Vec<i64> {
        let began = Instant::now();
        loop {
            let known = self.machines.lock().unwrap().clone();
            if known.len() == self.rigs.len() {
                return known;
            }
            assert!(began.elapsed() < PATIENCE, "machines: {known:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first rig's machine id, once it has posted a plan.
    async fn first_machine(&self) -> i64 {
        let began = Instant::now();
        loop {
            if let Some(&machine) = self.machines.lock().unwrap().first() {
                return machine;
            }
            assert!(began.elapsed() < PATIENCE, "no machine");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the rigs after their current request.
    async fn stop(self) -> (Vec<Rig>, Arc<Counters>) {
        self.counters.stop.store(true, Ordering::SeqCst);
        let mut rigs = Vec::new();
        for rig in self.rigs {
            rigs.push(rig.await.unwrap());
        }
        (rigs, self.counters)
    }
}

/// What a rig's acknowledged requests stored.
#[derive(Debug, Default)]
struct Model {
    machine: Option<i64>,
    /// Each run's id, and its tests' ids and statuses in plan order.
    runs: Vec<(i64, Vec<(i64, String)>)>,
}

/// One machine posting v1 events: a plan, then each test started and stopped in turn; a
/// request answered `503` is retried with its `Idempotency-Key` after `Retry-After`.
struct Rig {
    base: String,
    client: reqwest::Client,
    name: String,
    shape: Shape,
    model: Model,
    /// Where the rig is in the latest run: `2 * t` starts test `t`, `2 * t + 1` stops it.
    position: usize,
    /// Requests sent, for `Idempotency-Key`s.
    sent: usize,
    /// Each request's start (since the rig's creation) and latency, retries included.
    latencies: Vec<(Duration, Duration)>,
    created: Instant,
    /// Anything but a 2xx or a `503` with `Retry-After`.
    failures: Vec<String>,
    /// The longest one attempt took.
    slowest: Duration,
    /// Stopped while a request was still being retried.
    unfinished: bool,
}

impl Rig {
    fn new(base: &str, name: String, shape: Shape) -> Rig {
        Rig {
            base: base.to_owned(),
            client: client(),
            name,
            shape,
            model: Model::default(),
            position: 2 * shape.tests,
            sent: 0,
            latencies: Vec::new(),
            created: Instant::now(),
            failures: Vec::new(),
            slowest: Duration::ZERO,
            unfinished: false,
        }
    }

    /// Posts the next request until it is acknowledged, and applies it to the model. `false`
    /// when the rig cannot go on (a failure, or stopped while retrying).
    async fn step(&mut self, counters: &Counters) -> bool {
        let time = runner_time(self.sent);
        let (path, body) = if self.position >= 2 * self.shape.tests {
            ("/api/v1/plans".to_owned(), self.plan(&time))
        } else {
            let (test, status) = &self.model.runs.last().unwrap().1[self.position / 2];
            debug_assert!(status == "waiting" || status == "running");
            let body = if self.position % 2 == 0 {
                json!({"timestamp": time})
            } else {
                json!({"timestamp": time, "status": final_status(self.position / 2)})
            };
            let action = ["start", "stop"][self.position % 2];
            (format!("/api/v1/tests/{test}/{action}"), body)
        };
        let key = format!("{}/{}", self.name, self.sent);
        self.sent += 1;
        let Some(answer) = self.post(counters, &path, &key, &body).await else {
            return false;
        };
        if self.position >= 2 * self.shape.tests {
            let tests = answer["scenarios"][0]["test_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| (id.as_i64().unwrap(), "waiting".to_owned()))
                .collect();
            self.model.machine = answer["machine_id"].as_i64();
            self.model
                .runs
                .push((answer["run_id"].as_i64().unwrap(), tests));
            self.position = 0;
        } else {
            let status = if self.position % 2 == 0 {
                "running".to_owned()
            } else {
                final_status(self.position / 2).to_owned()
            };
            self.model.runs.last_mut().unwrap().1[self.position / 2].1 = status;
            self.position += 1;
        }
        counters.acked.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Sends until a 2xx (its JSON body) or anything else (a failure: `None`).
    async fn post(
        &mut self,
        counters: &Counters,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Option<Value> {
        let began = Instant::now();
        loop {
            let attempt = Instant::now();
            let sent = self
                .client
                .post(format!("{}{path}", self.base))
                .header("idempotency-key", key)
                .json(body)
                .send()
                .await;
            let took = attempt.elapsed();
            self.slowest = self.slowest.max(took);
            if took > REQUEST_BOUND {
                self.fail(
                    counters,
                    format!("{path}: took {took:?} (over {REQUEST_BOUND:?})"),
                );
            }
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    self.fail(counters, format!("{path}: {error}"));
                    return None;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                200..=299 => {
                    self.latencies.push((began - self.created, began.elapsed()));
                    return Some(answer);
                }
                503 if answer["error"]["code"] == "busy" => {
                    counters.unavailable.fetch_add(1, Ordering::SeqCst);
                    let Some(seconds) = retry_after else {
                        self.fail(
                            counters,
                            format!("{path}: 503 without Retry-After: {answer}"),
                        );
                        return None;
                    };
                    if counters.stop.load(Ordering::SeqCst) {
                        self.unfinished = true;
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(seconds.min(2))).await;
                }
                _ => {
                    self.fail(counters, format!("{path}: {status} {answer}"));
                    return None;
                }
            }
        }
    }

    fn fail(&mut self, counters: &Counters, failure: String) {
        counters.failures.lock().unwrap().push(failure.clone());
        self.failures.push(failure);
    }

    fn plan(&self, time: &str) -> Value {
        let plan = self.model.runs.len();
        let tests: Vec<Value> = (0..self.shape.tests)
            .map(|t| {
                let mut script = format!("# {} plan {plan} test {t}\npass\n", self.name);
                while script.len() < self.shape.script_bytes {
                    script.push_str("# padding so the database grows with every plan\n");
                }
                let mut path = "/rig/tests".to_owned();
                while path.len() < self.shape.path_bytes {
                    path.push_str("/deeper");
                }
                json!({"file_path": path, "file_name": format!("t{t}.py"), "script": script})
            })
            .collect();
        json!({
            "machine_name": self.name,
            "timestamp": time,
            "master_scenario": {
                "file_path": "/rig", "file_name": "master.py", "script": "",
                "scenarios": [{"file_path": "/rig", "file_name": "all.py", "script": "", "tests": tests}]
            }
        })
    }
}

fn final_status(test: usize) -> &'static str {
    ["passed", "passed", "failed", "passed", "warning"][test % 5]
}

/// A runner's time, one second per request, naive as Python prints it.
fn runner_time(seconds: usize) -> String {
    let origin = NaiveDate::from_ymd_opt(2026, 11, 24)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (origin + TimeDelta::seconds(i64::try_from(seconds).unwrap()))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_BOUND + Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Every rig's machine holds exactly its runs, and each run the statuses its acknowledged
/// events gave its tests.
async fn assert_stored(base: &str, rigs: &[Rig]) {
    let client = client();
    for rig in rigs {
        let Some(machine) = rig.model.machine else {
            continue;
        };
        let runs = get(
            &client,
            format!("{base}/api/v1/machines/{machine}/runs?page_size=1"),
        )
        .await;
        assert_eq!(
            runs["total"].as_u64().unwrap(),
            rig.model.runs.len() as u64,
            "{}: stored runs",
            rig.name
        );
        for (run, tests) in &rig.model.runs {
            let stored = get(&client, format!("{base}/api/v1/runs/{run}")).await;
            let stored: Vec<(i64, String)> = stored["scenarios"][0]["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|test| {
                    (
                        test["id"].as_i64().unwrap(),
                        test["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(&stored, tests, "{}: run {run}", rig.name);
        }
    }
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// The latest run of `machine`, tests by id and status.
async fn latest_run(base: &str, machine: i64) -> HashMap<i64, String> {
    let client = client();
    let runs = get(
        &client,
        format!("{base}/api/v1/machines/{machine}/runs?page_size=1"),
    )
    .await;
    let run = runs["items"][0]["id"].as_i64().unwrap();
    let run = get(&client, format!("{base}/api/v1/runs/{run}")).await;
    RunView::tests_of(&run)
}

/// No failure logged with a stack or as an internal error (warnings are expected).
fn assert_no_errors_logged(logs: &str) {
    for line in logs.lines() {
        assert!(
            !line.contains("\"level\":\"ERROR\"") && !line.contains("panicked"),
            "{line}"
        );
    }
}

// --- sockets ----------------------------------------------------------------------------------

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    let (socket, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(&url))
        .await
        .unwrap()
        .unwrap();
    socket
}

/// What a page knows of one run, from its socket (`/ws/v1/run/…` or `/ws/v1/machine/…/last/`).
#[derive(Debug, Default)]
struct RunView {
    run: Option<i64>,
    tests: HashMap<i64, String>,
    messages: usize,
    snapshots: usize,
    /// `{"behind": true}` messages: the live feed was interrupted.
    behind: usize,
    /// `{"behind": false}` messages: the page caught up.
    caught_up: usize,
}

impl RunView {
    fn tests_of(run: &Value) -> HashMap<i64, String> {
        run["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|scenario| scenario["tests"].as_array().unwrap())
            .map(|test| {
                (
                    test["id"].as_i64().unwrap(),
                    test["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn apply(&mut self, message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => return,
            other => panic!("socket closed: {other:?}; {self:?}"),
        };
        self.messages += 1;
        let message: Value = serde_json::from_str(&text).unwrap();
        if let Some(snapshot) = message.get("snapshot") {
            self.snapshots += 1;
            self.run = snapshot["run"]["summary"]["id"].as_i64();
            self.tests = Self::tests_of(&snapshot["run"]);
        } else if let Some(change) = message.get("run_changed") {
            if change["run_id"].as_i64() == self.run {
                for test in change["tests"].as_array().unwrap() {
                    self.tests.insert(
                        test["id"].as_i64().unwrap(),
                        test["status"].as_str().unwrap().to_owned(),
                    );
                }
            }
        } else if let Some(behind) = message["behind"].as_bool() {
            if behind {
                self.behind += 1;
            } else {
                self.caught_up += 1;
            }
        }
    }

    fn matches(&self, run: &HashMap<i64, String>) -> bool {
        &self.tests == run
    }

    /// Reads until `done` holds; fails after [`PATIENCE`].
    async fn read_until(&mut self, socket: &mut Socket, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(self) {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(message) => self.apply(message),
                Err(_) => panic!("no {what} within {PATIENCE:?}: {self:?}"),
            }
        }
    }
}

// --- measuring ----------------------------------------------------------------------------------

/// Samples the server's footprint every 100 ms; answers the largest figures seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Footprint>,
}

impl Sampler {
    fn start(server: &Server) -> Sampler {
        let pid = server.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak = support::footprint_of(pid);
            while !stopping.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = support::footprint_of(pid);
                peak.rss_kib = peak.rss_kib.max(now.rss_kib);
                peak.open_files = peak.open_files.max(now.open_files);
            }
            peak
        });
        Sampler { stop, task }
    }

    async fn stop(self) -> Footprint {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Latency figures of a set of requests.
#[derive(Debug, Clone, Copy)]
struct Latencies {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latencies {
    /// Of `(start, latency)` pairs.
    fn of(samples: &[(Duration, Duration)]) -> Latencies {
        let mut sorted: Vec<Duration> = samples.iter().map(|(_, latency)| *latency).collect();
        sorted.sort();
        let at = |quantile: f64| {
            // Rounded up: the p99 of 50 samples is the largest.
            let index = ((sorted.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
            sorted.get(index).copied().unwrap_or_default()
        };
        Latencies {
            count: sorted.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }

    /// Of the requests that started within `from..to`.
    fn of_window(samples: &[(Duration, Duration)], from: Duration, to: Duration) -> Latencies {
        let window: Vec<(Duration, Duration)> = samples
            .iter()
            .copied()
            .filter(|(at, _)| (from..to).contains(at))
            .collect();
        Self::of(&window)
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            self.count, self.p50, self.p99, self.max
        )
    }
}
