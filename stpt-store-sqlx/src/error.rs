//! This crate's own failures, and the mapping of sqlx errors into [`stpt_core::Error`].

/// A stored row that stpt's domain cannot represent, or a write that did not do what it must.
/// Reaches callers as the source of [`stpt_core::Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// A status column holds text that is not one of the eight statuses.
    #[error("column `{column}` holds unknown status `{value}`")]
    UnknownStatus {
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// A count column holds a value that is not a count.
    #[error("column `{column}` holds {value}, not a count")]
    BadCount {
        /// The column.
        column: &'static str,
        /// The value found.
        value: i64,
    },
    /// A machine's latest run does not exist.
    #[error("machine {machine} names latest run {run}, which does not exist")]
    MissingRun {
        /// The machine.
        machine: i64,
        /// The run it names.
        run: i64,
    },
    /// A test belongs to a scenario that is not in its run.
    #[error("test {test} belongs to scenario {scenario}, which is not in its run")]
    OrphanTest {
        /// The test.
        test: i64,
        /// Its scenario.
        scenario: i64,
    },
    /// A bulk insert returned other ids than the rows it was given.
    #[error("inserting {what}: expected {expected} ids in plan order, got {got}")]
    InsertMismatch {
        /// What was inserted.
        what: &'static str,
        /// Rows given.
        expected: usize,
        /// Ids returned.
        got: usize,
    },
    /// A role column holds text that is not a role.
    #[error("column `role` holds unknown role `{value}`")]
    UnknownRole {
        /// The text found.
        value: String,
    },
    /// A runner token's machine list is not a JSON array of names.
    #[error("runner token {token} has a malformed machine list")]
    BadMachineList {
        /// The token.
        token: i64,
    },
    /// A script hash inserted with the plan has no row.
    #[error("script row missing after insert")]
    MissingScript,
    /// A migration recorded in the database differs from the embedded one (SQLite).
    #[error("migration {version} was changed after it was applied")]
    MigrationChanged {
        /// The migration's version.
        version: i64,
    },
    /// The database holds a migration this build does not know (SQLite).
    #[error("database has migration {version}, unknown to this build (downgrade?)")]
    MigrationUnknown {
        /// The migration's version.
        version: i64,
    },
}

/// Maps a sqlx error: failures that a retry may cure (serialization failure, deadlock, unique
/// violation of a concurrent writer, a busy SQLite file) become [`stpt_core::Error::Busy`];
/// a database that cannot be reached or cannot write ([`is_unavailable`])
/// [`stpt_core::Error::Unavailable`]; text PostgreSQL cannot store (a NUL character)
/// [`stpt_core::Error::InvalidInput`]; the rest [`stpt_core::Error::Backend`] with the sqlx
/// error as source.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn from_sqlx(error: sqlx::Error) -> stpt_core::Error {
    use stpt_core::Error;
    if is_unavailable(&error) {
        return Error::Unavailable {
            message: error.to_string(),
        };
    }
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().unwrap_or_default();
        let retryable = db.is_unique_violation()
            || matches!(
                code.as_ref(),
                // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available
                "40001" | "40P01" | "55P03"
                // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes
                | "5" | "6" | "261" | "517" | "262"
            );
        if code == "22021" {
            // PostgreSQL: character_not_in_repertoire, i.e. a NUL character in runner text,
            // which PostgreSQL's text type cannot hold.
            return Error::invalid("text", "contains a NUL character, which cannot be stored");
        }
        if retryable {
            return Error::Busy {
                message: db.message().to_owned(),
            };
        }
    }
    Error::backend(error)
}

/// Whether `error` says the database is out of reach or out of space rather than that the
/// request was wrong: a lost or refused connection, a pool that found no connection in
/// time; PostgreSQL's connection exceptions (class `08`), shutdowns (`57P01`-`57P03`) and
/// insufficient resources (class `53`, a full disk among them); SQLite's full disk
/// (`SQLITE_FULL`) and failed file I/O (`SQLITE_IOERR` and its extended codes).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code.len() == 5 {
                // A PostgreSQL SQLSTATE (SQLite's codes have at most four digits).
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
            } else {
                let primary = code.parse::<u32>().ok().map(|code| code & 0xff);
                matches!(primary, Some(10 | 13))
            }
        }
        _ => false,
    }
}

/// Maps the error of an insert whose unique key the caller chose (a username, a token hash):
/// a unique violation there is a [`stpt_core::Error::Conflict`] with `message`, not a race;
/// anything else as [`from_sqlx`].
#[cfg(all(feature = "accounts", any(feature = "postgres", feature = "sqlite")))]
pub(crate) fn from_sqlx_unique(error: sqlx::Error, message: String) -> stpt_core::Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            stpt_core::Error::Conflict { message }
        }
        _ => from_sqlx(error),
    }
}

/// `?` for sqlx results.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) trait SqlxResultExt<T> {
    /// Maps the error with [`from_sqlx`].
    fn db(self) -> stpt_core::Result<T>;
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> stpt_core::Result<T> {
        self.map_err(from_sqlx)
    }
}
