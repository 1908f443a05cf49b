//! Choosing and opening the store and the live bus from settings.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use stpt_core::accounts::AccountStore;
use stpt_core::{Error, InProcessBus, LiveBus, Result, Store};
use stpt_live_redis::{RedisBus, RedisBusConfig};
use stpt_store_memory::MemoryStore;
use stpt_store_sqlx::{PgStore, SqliteStore};

/// A parsed `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Nothing persists.
    Memory,
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `memory`, `sqlite://PATH` (or `sqlite:PATH`), `postgres://...`, `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self> {
        if url == "memory" {
            return Ok(DatabaseUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(Error::invalid(
                    "database-url",
                    "sqlite:// needs a file path",
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err(Error::invalid(
            "database-url",
            format!("`{url}` is not `memory`, `sqlite://PATH` or `postgres://...`"),
        ))
    }
}

impl fmt::Display for DatabaseUrl {
    /// Without credentials, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Memory => f.write_str("memory"),
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => {
                let host = url.rsplit('@').next().unwrap_or(url);
                let host = host
                    .trim_start_matches("postgres://")
                    .trim_start_matches("postgresql://");
                write!(f, "postgres://{host}")
            }
        }
    }
}

/// The two stores of one database: runs, and accounts (users, sessions, runner tokens).
#[derive(Debug, Clone)]
pub struct Stores {
    /// Machines, runs and their tests.
    pub runs: Arc<dyn Store>,
    /// Users, sessions, runner tokens and reset grants.
    pub accounts: Arc<dyn AccountStore>,
    /// The same store when the database is an SQLite file, whose free pages pruning gives
    /// back ([`SqliteStore::reclaim_free_pages`]).
    pub sqlite: Option<SqliteStore>,
}

impl Stores {
    fn of<S: Store + AccountStore>(store: S) -> Self {
        let store = Arc::new(store);
        Stores {
            runs: Arc::clone(&store) as Arc<dyn Store>,
            accounts: store,
            sqlite: None,
        }
    }
}

/// Opens the database and runs its migrations.
pub async fn open_store(url: &DatabaseUrl) -> Result<Stores> {
    Ok(match url {
        DatabaseUrl::Memory => Stores::of(MemoryStore::new()),
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(Error::backend)?;
            }
            let store = SqliteStore::open(path).await?;
            store.migrate().await?;
            // Clones share the pool and the writer.
            Stores {
                sqlite: Some(store.clone()),
                ..Stores::of(store)
            }
        }
        DatabaseUrl::Postgres(url) => {
            let store = PgStore::connect(url).await?;
            store.migrate().await?;
            Stores::of(store)
        }
    })
}

/// Writes a consistent copy of the database at `url` to the new file `target`, while a server
/// may be running on it. SQLite only: PostgreSQL has `pg_dump` (see the README), and the
/// memory store keeps nothing to copy.
pub async fn backup(url: &DatabaseUrl, target: &std::path::Path) -> Result<()> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            if !path.exists() {
                return Err(Error::invalid(
                    "database",
                    format!("{} does not exist: nothing to back up", path.display()),
                ));
            }
            SqliteStore::open(path).await?.backup_to(target).await
        }
        DatabaseUrl::Postgres(_) => Err(Error::invalid(
            "database",
            "PostgreSQL is backed up with pg_dump (see the README's Operations notes)",
        )),
        DatabaseUrl::Memory => Err(Error::invalid(
            "database",
            "the memory store keeps nothing to back up",
        )),
    }
}

/// The live bus: Redis when a URL is given, else in-process. A Redis that does not answer yet
/// does not stop the server: the bus connects in the background.
pub fn open_bus(redis_url: Option<&str>, prefix: &str) -> Result<Arc<dyn LiveBus>> {
    Ok(match redis_url {
        None => Arc::new(InProcessBus::new()),
        Some(url) => Arc::new(RedisBus::start(
            url,
            RedisBusConfig::default().with_prefix(prefix),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(DatabaseUrl::parse("memory").unwrap(), DatabaseUrl::Memory);
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/stpt.db").unwrap(),
            DatabaseUrl::Sqlite("data/stpt.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/stpt.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/stpt.db".into())
        );
        let pg = DatabaseUrl::parse("postgres://user:secret@db:5432/stpt").unwrap();
        assert_eq!(
            pg.to_string(),
            "postgres://db:5432/stpt",
            "no credentials in logs"
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }
}
