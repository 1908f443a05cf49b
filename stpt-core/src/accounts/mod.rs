//! Accounts: users with argon2 password hashes, browser sessions, runner tokens and
//! password resets, behind the [`AccountStore`] port.
//!
//! [`Accounts`] holds every rule; a backend only stores. Secrets (session cookies, runner
//! tokens, reset links) are 256 random bits and only their SHA-256 ([`SecretHash`]) is
//! stored.
//!
//! Behind the `accounts` feature, on by default; without it stpt-core builds no argon2,
//! base64, getrandom or sha2.

mod model;
mod secret;
mod service;
mod store;

pub use model::{
    NewRunnerToken, NewUser, ResetRecord, Role, RunnerToken, RunnerTokenId, SessionRecord,
    StoredUser, User, UserId,
};
pub use secret::{SecretHash, secrets_match};
pub use service::{
    Accounts, IssuedToken, MAX_PASSWORD_BYTES, MAX_TOKEN_MACHINES, MAX_TOKEN_NAME_CHARS,
    MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS, RUNNER_TOKEN_PREFIX, ResetGrant, Session, SignedIn,
    last_admin_conflict, username_key,
};
pub use store::AccountStore;

/// A fresh random secret (256 bits, base64url), e.g. for CSRF tokens.
pub fn random_secret() -> crate::Result<String> {
    secret::new_secret("")
}
