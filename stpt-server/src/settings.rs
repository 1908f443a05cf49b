//! Command-line flags and environment variables (flags win).

use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use stpt_http::{HttpConfig, IngestAccess, ReadAccess};

use crate::ServeLimits;

/// stpt — System Test Progress Tracking server.
///
/// Runners post plans and test events to /tm_api/ (the seed protocol) or /api/v1/; browsers
/// watch live at /.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Settings {
    /// Manage users and runner tokens instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address and port to listen on.
    #[arg(long, env = "STPT_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Where runs are stored: `sqlite://PATH` (a file, created if missing), `postgres://...`,
    /// or `memory` (nothing survives a restart). Default: an SQLite file in the data
    /// directory.
    #[arg(long, env = "STPT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory of the default SQLite database, created on first start.
    #[arg(
        long,
        env = "STPT_DATA_DIR",
        default_value = "stpt-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Who may read pages, the read API and sockets: `open` (anyone who reaches the server)
    /// or `signed-in` (users only).
    #[arg(long, env = "STPT_READ_ACCESS", value_enum, default_value_t = ReadAccessArg::Open)]
    pub read_access: ReadAccessArg,

    /// Accept runner events without a token (unmodified seed runners cannot send one), from
    /// anywhere or, with `--open-ingest-from`, from those networks. Tokens that are sent are
    /// still checked. Without it, runners need a token, except from this host when the
    /// server listens on loopback only.
    #[arg(long, env = "STPT_OPEN_INGEST")]
    pub open_ingest: bool,

    /// Networks tokenless runners may post from, e.g. `10.20.0.0/16,192.168.7.0/24`
    /// (implies `--open-ingest`).
    #[arg(long, env = "STPT_OPEN_INGEST_FROM", value_delimiter = ',')]
    pub open_ingest_from: Vec<IpNet>,

    /// The address users reach this server at (e.g. `https://stpt.lab.example`), for links
    /// in emails. Required with `--smtp-url`. An `https://` address also marks cookies
    /// `Secure`.
    #[arg(long, env = "STPT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Mark session cookies `Secure` (HTTPS only), e.g. behind a TLS-terminating proxy.
    #[arg(long, env = "STPT_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "STPT_SESSION_HOURS", default_value_t = 168)]
    pub session_hours: u32,

    /// SMTP server for password-reset emails: `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (TLS) or `smtp://host:25` (plain). Without
    /// it, reset links are written to the log.
    #[arg(long, env = "STPT_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The sender of stpt's emails.
    #[arg(long, env = "STPT_MAIL_FROM", default_value = "stpt <stpt@localhost>")]
    pub mail_from: String,

    /// Redis URL (e.g. `redis://127.0.0.1:6379`) to share live updates between several server
    /// instances. Absent: live updates stay within this process.
    #[arg(long, env = "STPT_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of stpt's Redis channels, so deployments can share one Redis.
    #[arg(long, env = "STPT_REDIS_PREFIX", default_value = "stpt")]
    pub redis_prefix: String,

    /// Silence after which a machine running a test shows as quiet, at the least (longer
    /// when its tests usually take longer): `90s`, `2m`, `1h`.
    #[arg(long, env = "STPT_QUIET_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub quiet_after: std::time::Duration,

    /// Silence after which a machine is offline, at the least (while running, also longer than
    /// three times its tests' usual duration); its ongoing run is then closed `unknown`.
    #[arg(long, env = "STPT_OFFLINE_AFTER", default_value = "10m", value_parser = humantime::parse_duration)]
    pub offline_after: std::time::Duration,

    /// Delete finished runs received more than this many days ago (a machine's latest run
    /// and ongoing runs stay). Unset: keep every run.
    #[arg(long, env = "STPT_KEEP_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,

    /// Keep at most this many runs per machine, its newest; older finished runs are deleted.
    /// Unset: keep every run.
    #[arg(long, env = "STPT_KEEP_RUNS_PER_MACHINE", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_runs_per_machine: Option<u32>,

    /// Most tests one plan may hold; a bigger plan is refused with a 400 and stores nothing.
    #[arg(long, env = "STPT_MAX_PLAN_TESTS", default_value_t = stpt_core::Tracker::DEFAULT_MAX_PLAN_TESTS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_plan_tests: usize,

    /// How naive runner timestamps (no `Z`, no offset, e.g. Python's `str(datetime.now())`)
    /// are read: an IANA time zone name such as `Europe/Warsaw`. Timestamps with an offset keep
    /// it; an admin can set another zone per machine.
    #[arg(long, env = "STPT_RUNNER_TIMEZONE", default_value = "UTC", value_name = "ZONE", value_parser = parse_runner_timezone)]
    pub runner_timezone: stpt_core::RunnerTimezone,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "STPT_BODY_LIMIT", default_value_t = HttpConfig::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Seconds a client may take to send a request's headers; a kept-alive connection
    /// waiting for its next request is closed after as long.
    #[arg(long, env = "STPT_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,

    /// Seconds a whole request (its body included) may take before the answer starts;
    /// past it the client gets `408`.
    #[arg(long, env = "STPT_REQUEST_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,

    /// Seconds a connection (a socket included) may stay silent, no byte either way,
    /// before it is closed.
    #[arg(long, env = "STPT_IDLE_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,

    /// Connections open at once (sockets included); more wait until one closes. Keep it
    /// well under the process's file-descriptor limit (`ulimit -n`).
    #[arg(long, env = "STPT_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Seconds open requests may take to finish after `SIGTERM`/`SIGINT` before their
    /// connections are closed.
    #[arg(long, env = "STPT_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,

    /// Log filter: a level (`info`, `debug`) or directives like `stpt_http=debug,info`.
    #[arg(long, env = "STPT_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "STPT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also run virtual test machines in this process, posting to this server, so the pages
    /// show live runs at once.
    #[arg(long, env = "STPT_DEMO")]
    pub demo: bool,

    /// How many virtual machines `--demo` runs.
    #[arg(long, env = "STPT_DEMO_MACHINES", default_value_t = 2)]
    pub demo_machines: usize,
}

/// Who may read; see `--read-access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadAccessArg {
    /// Anyone who reaches the server.
    Open,
    /// Signed-in users only.
    SignedIn,
}

impl From<ReadAccessArg> for ReadAccess {
    fn from(arg: ReadAccessArg) -> Self {
        match arg {
            ReadAccessArg::Open => ReadAccess::Open,
            ReadAccessArg::SignedIn => ReadAccess::SignedIn,
        }
    }
}

/// Administration from the command line, on the configured database.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Users: create the first admin, reset a forgotten password.
    #[command(subcommand)]
    User(UserCommand),
    /// Runner tokens: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Writes a consistent copy of the SQLite database to a new file, while the server runs.
    /// (PostgreSQL: use `pg_dump`; see the README.)
    Backup {
        /// The new file to write.
        path: std::path::PathBuf,
    },
}

/// `stpt-server user ...`
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Creates a user (an admin unless `--role viewer`). The password is read from stdin
    /// with `--password-stdin`, else generated and printed once.
    Create {
        /// The name to sign in with.
        username: String,
        /// Where password-reset links go.
        #[arg(long)]
        email: Option<String>,
        /// `admin` or `viewer`.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sets a new password and signs the user out everywhere. Read from stdin with
    /// `--password-stdin`, else generated and printed once.
    ResetPassword {
        /// Whose password.
        username: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists users.
    List,
}

/// `stpt-server token ...`
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Creates a runner token and prints its secret (shown only this once).
    Create {
        /// What the token is for, e.g. the rig or team.
        name: String,
        /// A machine the token may post for (repeat for several; none: any machine).
        #[arg(long = "machine")]
        machines: Vec<String>,
    },
    /// Lists runner tokens (never their secrets).
    List,
    /// Revokes a runner token: runners using it are refused from now on.
    Revoke {
        /// The token's id, from `token list`.
        id: i64,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// An IANA zone name, or a message that says what is expected.
fn parse_runner_timezone(name: &str) -> Result<stpt_core::RunnerTimezone, String> {
    name.parse().map_err(|_| {
        "not an IANA time zone name (e.g. `Europe/Warsaw`, `America/New_York`, `UTC`; names are case-sensitive)"
            .to_owned()
    })
}

impl Settings {
    /// Which finished runs to keep.
    pub fn retention_policy(&self) -> stpt_core::RetentionPolicy {
        stpt_core::RetentionPolicy {
            keep_days: self.keep_days,
            keep_runs_per_machine: self.keep_runs_per_machine,
        }
    }

    /// When silence makes a machine quiet or offline.
    pub fn liveness_policy(&self) -> stpt_core::LivenessPolicy {
        let to_chrono =
            |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        stpt_core::LivenessPolicy {
            quiet_after: to_chrono(self.quiet_after),
            offline_after: to_chrono(self.offline_after),
        }
    }

    /// Who may post runner events: `--open-ingest[-from]`, else tokens only, except from
    /// loopback when the server listens on loopback only (so the quick start needs no
    /// token).
    pub fn ingest_access(&self) -> IngestAccess {
        if !self.open_ingest_from.is_empty() {
            IngestAccess::open_from(self.open_ingest_from.clone())
        } else if self.open_ingest {
            IngestAccess::open()
        } else if self.bind.ip().is_loopback() {
            IngestAccess::loopback()
        } else {
            IngestAccess::tokens_only()
        }
    }

    /// Whether tokenless ingestion was turned on explicitly (worth a warning at start-up).
    pub fn open_ingest_requested(&self) -> bool {
        self.open_ingest || !self.open_ingest_from.is_empty()
    }

    /// The connection limits and timeouts in force.
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            request_timeout: Duration::from_secs(self.request_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        }
    }

    /// The database URL in force: the one given, or the default SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("stpt.sqlite3").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_timezone_is_utc_unless_given_and_checked_at_start_up() {
        let parse = |args: &[&str]| {
            Settings::try_parse_from(["stpt"].iter().chain(args)).map(|s| s.runner_timezone)
        };
        assert_eq!(
            parse(&[]).map_err(|e| e.to_string()),
            Ok(stpt_core::RunnerTimezone::UTC)
        );
        assert_eq!(
            parse(&["--runner-timezone", "Europe/Warsaw"])
                .map(|zone| zone.name())
                .map_err(|e| e.to_string()),
            Ok("Europe/Warsaw")
        );
        let refused = parse(&["--runner-timezone", "Europe/Warszawa"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("not an IANA time zone name"), "{refused}");
    }
}
