//! The one error type of stpt's core and of every backend.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from a backend or transport, kept with its source chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of stpt's core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Each variant carries a meaning a caller can act on; `Backend` keeps the
/// underlying error as its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input broke a rule of the protocol: a blank machine name, an oversized field, a status
    /// not allowed here. Nothing was stored.
    #[error("invalid `{field}`: {problem}")]
    InvalidInput {
        /// Where in the input, e.g. `master_scenario.scenarios[2].file_name`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The requested item does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for.
        kind: ItemKind,
        /// The id asked for (or the page number, for [`ItemKind::Page`]).
        id: i64,
    },
    /// A well-formed runner event matched nothing; nothing was changed.
    #[error("event matched nothing: {0}")]
    NoMatch(NoMatch),
    /// The request conflicts with what is stored: a username already taken, the last admin
    /// about to go. Retrying the same request gets the same answer until the stored state
    /// changes.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// A concurrent writer got in the way (a busy database file, a serialization failure, a
    /// race to create the same row); nothing was written. Retrying the same request may
    /// succeed.
    #[error("busy, retry: {message}")]
    Busy {
        /// What got in the way.
        message: String,
    },
    /// A client event id (an idempotency key) was already used on this machine for a
    /// different kind of event. Nothing was changed; retrying with the same key never helps.
    #[error("event id `{event_id}` was already used for a different event")]
    IdempotencyKeyReused {
        /// The reused id.
        event_id: String,
    },
    /// Stored state broke a rule of the domain (a bug in a backend, or data changed behind
    /// stpt's back). Nothing was written; the message says which rule.
    #[error("broken invariant: {message}")]
    Invariant {
        /// Which rule, and where.
        message: String,
    },
    /// A unit of work read state that another writer changed before it committed (a backend
    /// that reads optimistically, e.g. from a cache, found out); nothing was written. The
    /// [`crate::Tracker`] applies the event again on fresh state, so callers see this only if
    /// that keeps happening.
    #[error("stale read: {message}")]
    Stale {
        /// What changed underneath.
        message: String,
    },
    /// The storage backend cannot be reached or cannot write (its server is down, its
    /// connections are gone, its disk is full). Nothing may have been stored, or the last
    /// write may have been; retrying the same request (with the same idempotency key, so it
    /// applies once) may succeed once the backend is back.
    #[error("storage unavailable, retry later: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
    /// The backend does not offer this optional ability.
    #[error("not supported by this backend: {operation}")]
    NotSupported {
        /// The operation asked for.
        operation: &'static str,
    },
    /// The storage backend or live transport failed.
    #[error("backend failure: {source}")]
    Backend {
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::InvalidInput`] for `field`.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(kind: ItemKind, id: i64) -> Self {
        Error::NotFound { kind, id }
    }

    /// An [`Error::Invariant`].
    pub fn invariant(message: impl Into<String>) -> Self {
        Error::Invariant {
            message: message.into(),
        }
    }

    /// Whether retrying the same request may succeed ([`Error::Busy`], [`Error::Stale`],
    /// [`Error::Unavailable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy { .. } | Error::Stale { .. } | Error::Unavailable { .. }
        )
    }

    /// An [`Error::Backend`] wrapping any error.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
        }
    }
}

/// The kinds of things that can be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemKind {
    /// A machine.
    Machine,
    /// A run.
    Run,
    /// A master scenario (addressed by its run's id).
    MasterScenario,
    /// A scenario.
    Scenario,
    /// A test.
    Test,
    /// A page of results past the last one.
    Page,
    /// A user account.
    User,
    /// A runner token.
    RunnerToken,
    /// A test identity across runs (its id is its [`crate::history::TestKey`]'s stored value).
    TestIdentity,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Machine => "machine",
            ItemKind::Run => "run",
            ItemKind::MasterScenario => "master scenario",
            ItemKind::Scenario => "scenario",
            ItemKind::Test => "test",
            ItemKind::Page => "page",
            ItemKind::User => "user",
            ItemKind::RunnerToken => "runner token",
            ItemKind::TestIdentity => "test identity",
        })
    }
}

/// Why a runner event matched nothing (rule 5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum NoMatch {
    /// No machine has this name.
    UnknownMachine {
        /// The name sent.
        machine_name: String,
    },
    /// The machine has no ongoing run.
    NoOngoingRun {
        /// The name sent.
        machine_name: String,
    },
    /// The ongoing run has no waiting test with this path and name.
    NoWaitingTest {
        /// The path sent.
        file_path: String,
        /// The name sent.
        file_name: String,
    },
    /// The test addressed by id is not in its machine's ongoing run.
    TestNotInOngoingRun {
        /// The test sent.
        test_id: crate::TestId,
    },
    /// The ongoing run has no running test with this path and name.
    NoRunningTest {
        /// The path sent.
        file_path: String,
        /// The name sent.
        file_name: String,
    },
}

impl fmt::Display for NoMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoMatch::UnknownMachine { machine_name } => {
                write!(f, "no machine named `{machine_name}`")
            }
            NoMatch::NoOngoingRun { machine_name } => {
                write!(f, "machine `{machine_name}` has no ongoing run")
            }
            NoMatch::NoWaitingTest {
                file_path,
                file_name,
            } => write!(
                f,
                "no waiting test `{file_name}` at `{file_path}` in the ongoing run"
            ),
            NoMatch::TestNotInOngoingRun { test_id } => {
                write!(f, "test {test_id} is not in its machine's ongoing run")
            }
            NoMatch::NoRunningTest {
                file_path,
                file_name,
            } => write!(
                f,
                "no running test `{file_name}` at `{file_path}` in the ongoing run"
            ),
        }
    }
}
