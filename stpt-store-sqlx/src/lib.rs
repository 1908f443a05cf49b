#![doc = include_str!("../README.md")]
//!
//! ## Features
//!
//! All three are on by default; any subset builds.
//!
//! - `postgres`: `PgStore`.
//! - `sqlite`: `SqliteStore`.
//! - `accounts`: both stores implement `stpt_core::accounts::AccountStore` (users, sessions,
//!   runner tokens). It turns on stpt-core's `accounts`, which brings argon2. The account
//!   tables are migrated with or without it, so turning it on later needs no migration.

#[cfg(all(feature = "accounts", any(feature = "postgres", feature = "sqlite")))]
mod accounts;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod common;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod delete;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod durations;
mod error;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod history;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod known_identities;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod machine_settings;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod memory;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use error::RowError;
#[cfg(feature = "postgres")]
pub use pg::{PgStore, SCHEMA};
#[cfg(feature = "sqlite")]
pub use sqlite::{BUSY_TIMEOUT, SqliteStore};

/// sqlx itself, at the version this crate uses (for pools and connect options).
pub use sqlx;
