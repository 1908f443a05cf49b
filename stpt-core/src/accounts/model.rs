//! What the account store keeps: users, sessions, runner tokens and password-reset grants.

use crate::MachineName;
use crate::protocol::machine_key;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::secret::SecretHash;

crate::ids::id_type!(
    /// A user account.
    UserId
);
crate::ids::id_type!(
    /// A runner token.
    RunnerTokenId
);

/// What a signed-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything; manages users and runner tokens; deletes runs and machines.
    Admin,
    /// Reads everything.
    Viewer,
}

impl Role {
    /// The stored and displayed name: `admin` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `name` (`admin` or `viewer`).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account as shown to others: never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Assigned by the store.
    pub id: UserId,
    /// As first spelled; unique without regard to case.
    pub username: String,
    /// Where password-reset links go; users without one cannot reset by email.
    pub email: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl User {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A user with the PHC-format argon2 hash of their password, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// The account.
    pub user: User,
    /// The password's argon2 hash in PHC string format (`$argon2id$v=19$…`).
    pub password_hash: String,
}

/// A user to create. Build it with [`Accounts::create_user`](super::Accounts::create_user),
/// which validates the fields and hashes the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The name to sign in with.
    pub username: String,
    /// The lowercase key that keeps usernames unique without regard to case.
    pub username_key: String,
    /// Where password-reset links go.
    pub email: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// The password's argon2 hash (PHC string).
    pub password_hash: String,
    /// When the account is created.
    pub created_at: DateTime<Utc>,
}

/// A signed-in browser session, kept by the hash of the secret in its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie's secret; the secret itself is never stored.
    pub key: SecretHash,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// When the session stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// A password-reset grant, kept by the hash of the secret in the emailed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRecord {
    /// SHA-256 of the link's secret.
    pub key: SecretHash,
    /// Whose password the link resets.
    pub user_id: UserId,
    /// When the link was sent.
    pub created_at: DateTime<Utc>,
    /// When the link stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// A runner token as listed to admins: its secret is shown once, at creation, and only its
/// hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunnerToken {
    /// Assigned by the store.
    pub id: RunnerTokenId,
    /// What the token is for, e.g. the rig or team using it.
    pub name: String,
    /// The machines it may post for, as spelled at creation; empty means any machine.
    pub machines: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl RunnerToken {
    /// Whether the token may post events for `machine` (names compare without regard to case).
    pub fn allows(&self, machine: &MachineName) -> bool {
        self.machines.is_empty()
            || self
                .machines
                .iter()
                .any(|allowed| machine_key(allowed) == machine.key())
    }

    /// Whether the token has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A runner token to store. Build it with
/// [`Accounts::create_runner_token`](super::Accounts::create_runner_token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRunnerToken {
    /// What the token is for.
    pub name: String,
    /// SHA-256 of the token's secret.
    pub secret_hash: SecretHash,
    /// The machines it may post for; empty means any.
    pub machines: Vec<String>,
    /// When it is created.
    pub created_at: DateTime<Utc>,
}
