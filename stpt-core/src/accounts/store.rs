//! The storage port for accounts: users, sessions, runner tokens and reset grants.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::sync::Arc;

use super::model::{
    NewRunnerToken, NewUser, ResetRecord, Role, RunnerToken, RunnerTokenId, SessionRecord,
    StoredUser, User, UserId,
};
use super::secret::SecretHash;
use crate::Result;

/// Where accounts live. Backends store and fetch; every rule (hashing, expiry, single use,
/// who may do what) lives in [`Accounts`](super::Accounts), so a backend stays thin. Every
/// backend must pass the account scenarios of the conformance suite
/// (`account_store_conformance_tests!`, with the `conformance` feature).
///
/// Secrets never reach a store: sessions, tokens and reset grants are keyed by the
/// [`SecretHash`] of their secret.
#[async_trait]
pub trait AccountStore: Send + Sync + Debug + 'static {
    /// Stores a new user. [`Error::Conflict`](crate::Error::Conflict) if a user with the same
    /// `username_key` exists.
    async fn create_user(&self, user: NewUser) -> Result<User>;

    /// The user with this id, if any.
    async fn user(&self, id: UserId) -> Result<Option<StoredUser>>;

    /// The user whose `username_key` is `key`, if any.
    async fn user_by_key(&self, key: &str) -> Result<Option<StoredUser>>;

    /// Every user, by id.
    async fn users(&self) -> Result<Vec<User>>;

    /// Replaces the user's password hash. [`Error::NotFound`](crate::Error::NotFound) with
    /// [`ItemKind::User`](crate::ItemKind::User) for an unknown id.
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()>;

    /// Sets the user's email address (`None`: none), as given; returns the user as now stored.
    /// [`Error::NotFound`](crate::Error::NotFound) with [`ItemKind::User`](crate::ItemKind::User)
    /// for an unknown id. [`Accounts::set_email`](super::Accounts::set_email) validates the
    /// address first.
    ///
    /// Optional: the default answers [`Error::NotSupported`](crate::Error::NotSupported)
    /// (admins then cannot change an email after the account is created), and the suite
    /// skips its scenario.
    async fn set_email(&self, id: UserId, email: Option<&str>) -> Result<User> {
        let _ = (id, email);
        Err(crate::Error::NotSupported {
            operation: "set_email",
        })
    }

    /// Changes the user's role; `NotFound` for an unknown id. Never leaves no admin: demoting
    /// the only admin is refused with [`last_admin_conflict`](super::last_admin_conflict)
    /// and changes nothing. The check and the change are one atomic step (one lock, or one
    /// transaction that locks the admins first): of two concurrent calls demoting the last
    /// two admins, one is refused.
    async fn set_role(&self, id: UserId, role: Role) -> Result<User>;

    /// Deletes the user with their sessions and reset grants; `NotFound` for an unknown id.
    /// Never leaves no admin, atomically, as [`AccountStore::set_role`].
    async fn delete_user(&self, id: UserId) -> Result<()>;

    /// Stores a session.
    async fn insert_session(&self, session: SessionRecord) -> Result<()>;

    /// The session with this key, expired or not.
    async fn session(&self, key: &SecretHash) -> Result<Option<SessionRecord>>;

    /// Deletes the session with this key, if any.
    async fn delete_session(&self, key: &SecretHash) -> Result<()>;

    /// Deletes every session of the user (after a password change).
    async fn delete_user_sessions(&self, user: UserId) -> Result<()>;

    /// Deletes every session that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Stores a runner token. `Conflict` if its secret hash is already stored.
    async fn insert_runner_token(&self, token: NewRunnerToken) -> Result<RunnerToken>;

    /// Every runner token, revoked ones included, by id.
    async fn runner_tokens(&self) -> Result<Vec<RunnerToken>>;

    /// The runner token whose secret hashes to `hash`, revoked or not.
    async fn runner_token_by_hash(&self, hash: &SecretHash) -> Result<Option<RunnerToken>>;

    /// Marks the token revoked at `at` (keeping the first time if already revoked);
    /// `NotFound` with [`ItemKind::RunnerToken`](crate::ItemKind::RunnerToken) for an unknown id.
    async fn revoke_runner_token(
        &self,
        id: RunnerTokenId,
        at: DateTime<Utc>,
    ) -> Result<RunnerToken>;

    /// Stores a password-reset grant.
    async fn insert_reset(&self, reset: ResetRecord) -> Result<()>;

    /// The reset grant with this key, expired or not, without using it up.
    async fn reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>>;

    /// Removes and returns the reset grant with this key, atomically: of two concurrent
    /// calls with the same key, at most one gets `Some`.
    async fn take_reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>>;
}

/// Shared and boxed account stores are account stores.
macro_rules! forward_account_store {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: AccountStore + ?Sized> AccountStore for $pointer<T> {
            async fn create_user(&self, user: NewUser) -> Result<User> {
                (**self).create_user(user).await
            }
            async fn user(&self, id: UserId) -> Result<Option<StoredUser>> {
                (**self).user(id).await
            }
            async fn user_by_key(&self, key: &str) -> Result<Option<StoredUser>> {
                (**self).user_by_key(key).await
            }
            async fn users(&self) -> Result<Vec<User>> {
                (**self).users().await
            }
            async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
                (**self).set_password_hash(id, password_hash).await
            }
            async fn set_email(&self, id: UserId, email: Option<&str>) -> Result<User> {
                (**self).set_email(id, email).await
            }
            async fn set_role(&self, id: UserId, role: Role) -> Result<User> {
                (**self).set_role(id, role).await
            }
            async fn delete_user(&self, id: UserId) -> Result<()> {
                (**self).delete_user(id).await
            }
            async fn insert_session(&self, session: SessionRecord) -> Result<()> {
                (**self).insert_session(session).await
            }
            async fn session(&self, key: &SecretHash) -> Result<Option<SessionRecord>> {
                (**self).session(key).await
            }
            async fn delete_session(&self, key: &SecretHash) -> Result<()> {
                (**self).delete_session(key).await
            }
            async fn delete_user_sessions(&self, user: UserId) -> Result<()> {
                (**self).delete_user_sessions(user).await
            }
            async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
                (**self).delete_expired_sessions(now).await
            }
            async fn insert_runner_token(&self, token: NewRunnerToken) -> Result<RunnerToken> {
                (**self).insert_runner_token(token).await
            }
            async fn runner_tokens(&self) -> Result<Vec<RunnerToken>> {
                (**self).runner_tokens().await
            }
            async fn runner_token_by_hash(&self, hash: &SecretHash) -> Result<Option<RunnerToken>> {
                (**self).runner_token_by_hash(hash).await
            }
            async fn revoke_runner_token(
                &self,
                id: RunnerTokenId,
                at: DateTime<Utc>,
            ) -> Result<RunnerToken> {
                (**self).revoke_runner_token(id, at).await
            }
            async fn insert_reset(&self, reset: ResetRecord) -> Result<()> {
                (**self).insert_reset(reset).await
            }
            async fn reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>> {
                (**self).reset(key).await
            }
            async fn take_reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>> {
                (**self).take_reset(key).await
            }
        }
    )*};
}

forward_account_store!(Arc, Box);
