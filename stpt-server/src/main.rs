//! The stpt reference server.

use clap::Parser;
use std::time::Duration;
use stpt_core::{LivenessWatch, Tracker};

/// How often the liveness watch judges every machine.
const LIVENESS_TICK: Duration = Duration::from_secs(5);
use stpt_core::accounts::Accounts;
use stpt_http::HttpConfig;
use stpt_server::virtual_machine::{Protocol, VirtualMachine, VirtualMachineConfig};
use stpt_server::{Command, DatabaseUrl, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::parse();
    let filter = EnvFilter::try_new(&settings.log)?;
    match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }

    let database = DatabaseUrl::parse(&settings.database_url())?;
    if let Some(Command::Backup { path }) = &settings.command {
        stpt_server::backup(&database, path).await?;
        println!("backup of {database} written to {}", path.display());
        return Ok(());
    }
    let stores = stpt_server::open_store(&database).await?;
    let accounts = Accounts::new(stores.accounts).with_session_ttl(chrono::Duration::hours(
        i64::from(settings.session_hours.max(1)),
    ));
    if let Some(command) = settings.command.clone() {
        let stdin = std::io::stdin();
        stpt_server::cli::run(
            command,
            &accounts,
            &mut stdin.lock(),
            &mut std::io::stdout(),
        )
        .await?;
        return Ok(());
    }
    let bus = stpt_server::open_bus(settings.redis_url.as_deref(), &settings.redis_prefix)?;
    let tracker = Tracker::new(stores.runs, bus)
        .with_liveness(settings.liveness_policy())
        .with_retention(settings.retention_policy())
        .with_max_plan_tests(settings.max_plan_tests)
        .with_runner_timezone(settings.runner_timezone);
    let ingest = settings.ingest_access();
    let mut config = HttpConfig::default()
        .with_body_limit(settings.body_limit)
        .with_read_access(settings.read_access.into())
        .with_ingest_access(ingest.clone())
        .with_secure_cookies(
            settings.secure_cookies
                || settings
                    .public_url
                    .as_deref()
                    .is_some_and(|url| url.starts_with("https://")),
        );
    if let Some(url) = &settings.public_url {
        config = config.with_public_url(url.as_str());
    }
    match &settings.smtp_url {
        Some(smtp) => {
            if settings.public_url.is_none() {
                return Err("--smtp-url needs --public-url: links in emails must not be built from a client's Host header".into());
            }
            let mailer = stpt_server::SmtpMailer::new(smtp, &settings.mail_from)?;
            config = config.with_mailer(std::sync::Arc::new(mailer));
        }
        None => tracing::info!("no --smtp-url: password-reset links are written to this log"),
    }
    if settings.open_ingest_requested() {
        tracing::warn!(
            access = %ingest.describe(),
            "open ingestion: runners may post without a token; anyone who can reach this server from there can write results"
        );
    }
    let demo_token = if settings.demo && !ingest.accepts_tokenless(Some([127, 0, 0, 1].into())) {
        let names: Vec<String> = (1..=settings.demo_machines)
            .map(|n| format!("demo-rig-{n}"))
            .collect();
        Some(
            accounts
                .create_runner_token("demo rigs (--demo)", &names)
                .await?
                .secret,
        )
    } else {
        None
    };
    // Expired sessions are refused when presented; this sweeps those never presented again.
    let sweeper = accounts.clone();
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            match sweeper.purge_expired_sessions().await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired sessions deleted"),
                Err(error) => tracing::warn!(%error, "deleting expired sessions failed"),
            }
        }
    });
    // Always: a machine may have a retention policy of its own while the server keeps all.
    tokio::spawn(prune_forever(tracker.clone(), stores.sqlite.clone()));
    // Liveness is pushed to pages and silent runs are closed without waiting for an event.
    tokio::spawn(LivenessWatch::new().run(tracker.clone(), LIVENESS_TICK));
    let metrics = stpt_server::install_recorder()?;
    let app = stpt_server::with_metrics(stpt_server::app(tracker, accounts, config), metrics);

    let listener = tokio::net::TcpListener::bind(settings.bind).await?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        %database,
        live = if settings.redis_url.is_some() { "redis" } else { "in-process" },
        read = ?settings.read_access,
        ingest = %ingest.describe(),
        "stpt listening: open http://{address}/ ; runners post to /tm_api/ and /api/v1/"
    );
    if settings.demo {
        for n in 1..=settings.demo_machines {
            let machine = VirtualMachine::new(VirtualMachineConfig {
                server: format!("http://{address}"),
                name: format!("demo-rig-{n}"),
                scenarios: 3,
                tests_per_scenario: 4,
                mean_test_duration: Duration::from_millis(1500),
                protocol: if n % 2 == 0 {
                    Protocol::V1
                } else {
                    Protocol::Seed
                },
                seed: n as u64,
                token: demo_token.clone(),
            });
            tokio::spawn(machine.run_forever(None));
        }
        tracing::info!(
            machines = settings.demo_machines,
            "demo: virtual machines are running"
        );
    }
    stpt_server::serve_with_limits(listener, app, shutdown_signal(), settings.serve_limits())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes what the retention policies no longer keep (the server's, and machines' own): a
/// pass every few minutes, in small batches with pauses between them, so ingestion never
/// waits long for a machine's lock. Then gives an SQLite file's free pages back, a few at a
/// time, for the same reason.
async fn prune_forever(tracker: Tracker, sqlite: Option<stpt_store_sqlx::SqliteStore>) {
    const BATCH: usize = 50;
    let mut passes = tokio::time::interval(Duration::from_secs(300));
    loop {
        passes.tick().await;
        let mut pruned = 0;
        loop {
            match tracker.prune(BATCH).await {
                Ok(deleted) => {
                    pruned += deleted.len();
                    metrics::counter!("stpt_runs_pruned_total").increment(deleted.len() as u64);
                    if deleted.len() < BATCH {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "pruning old runs failed; trying again next pass");
                    break;
                }
            }
        }
        if pruned > 0 {
            let policy = tracker.retention_policy();
            tracing::info!(
                pruned,
                ?policy,
                "old runs deleted by the retention policies"
            );
        }
        if let Some(store) = &sqlite {
            reclaim_sqlite_space(store).await;
        }
    }
}

/// Gives the SQLite file's free pages back to the file system in steps of 1 MiB or so, each
/// a short write between events, until none is left (or a step frees nothing).
async fn reclaim_sqlite_space(store: &stpt_store_sqlx::SqliteStore) {
    const STEP_PAGES: u32 = 256;
    let before = match store.free_pages().await {
        Ok(free) => free,
        Err(error) => {
            tracing::warn!(%error, "reading the SQLite file's free pages failed");
            return;
        }
    };
    let mut left = before;
    while left > 0 {
        match store.reclaim_free_pages(STEP_PAGES).await {
            Ok(free) if free < left => left = free,
            // Nothing given back: the file does not use incremental vacuum.
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, "giving free SQLite pages back failed; trying again next pass");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reclaimed = before - left;
    if reclaimed > 0 {
        metrics::counter!("stpt_sqlite_pages_reclaimed_total").increment(reclaimed);
        tracing::info!(
            pages = reclaimed,
            "free SQLite pages given back to the file system"
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing open requests (within --shutdown-grace)");
}
