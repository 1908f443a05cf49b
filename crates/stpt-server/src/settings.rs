//! Command-line flags and environment variables (flags win).

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use stpt_http::HttpConfig;

/// stpt — System Test Progress Tracking server.
///
/// Runners post plans and test events to /tm_api/ (the seed protocol) or /api/v1/; browsers
/// watch live at /.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "STPT_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Where runs are stored: `sqlite://PATH` (a file, created if missing), `postgres://...`,
    /// or `memory` (nothing survives a restart). Default: an SQLite file in the data
    /// directory.
    #[arg(long, env = "STPT_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory of the default SQLite database, created on first start.
    #[arg(long, env = "STPT_DATA_DIR", default_value = "stpt-data")]
    pub data_dir: PathBuf,

    /// Redis URL (e.g. `redis://127.0.0.1:6379`) to share live updates between several server
    /// instances. Absent: live updates stay within this process.
    #[arg(long, env = "STPT_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of stpt's Redis channels, so deployments can share one Redis.
    #[arg(long, env = "STPT_REDIS_PREFIX", default_value = "stpt")]
    pub redis_prefix: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "STPT_BODY_LIMIT", default_value_t = HttpConfig::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

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

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// The database URL in force: the one given, or the default SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("stpt.sqlite3").display()))
    }
}
