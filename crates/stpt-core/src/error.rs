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
    /// A concurrent writer got in the way; the operation may be retried.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
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
        })
    }
}

/// Why a runner event matched nothing (SPEC rule 5).
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
