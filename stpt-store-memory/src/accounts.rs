//! The in-memory [`AccountStore`] (feature `accounts`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use stpt_core::accounts::{
    AccountStore, NewRunnerToken, NewUser, ResetRecord, Role, RunnerToken, RunnerTokenId,
    SecretHash, SessionRecord, StoredUser, User, UserId, last_admin_conflict,
};
use stpt_core::{Error, ItemKind, Result};

use crate::MemoryStore;

#[derive(Debug, Default)]
pub(crate) struct AccountTables {
    users: BTreeMap<UserId, StoredUser>,
    user_by_key: HashMap<String, UserId>,
    next_user: i64,
    sessions: HashMap<SecretHash, SessionRecord>,
    tokens: BTreeMap<RunnerTokenId, (SecretHash, RunnerToken)>,
    token_by_hash: HashMap<SecretHash, RunnerTokenId>,
    next_token: i64,
    resets: HashMap<SecretHash, ResetRecord>,
}

impl AccountTables {
    fn user_mut(&mut self, id: UserId) -> Result<&mut StoredUser> {
        self.users
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(ItemKind::User, id.get()))
    }

    /// `Conflict` if `id` is the only admin (checked under the same lock as the change).
    fn ensure_other_admin(&self, id: UserId) -> Result<()> {
        let is_admin = |user: &StoredUser| user.user.role == Role::Admin;
        let target_is_admin = self.users.get(&id).is_some_and(is_admin);
        let others = self
            .users
            .values()
            .any(|user| user.user.id != id && is_admin(user));
        if target_is_admin && !others {
            return Err(last_admin_conflict());
        }
        Ok(())
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        let mut tables = self.accounts.lock().await;
        if tables.user_by_key.contains_key(&user.username_key) {
            return Err(Error::Conflict {
                message: format!("username `{}` is taken", user.username),
            });
        }
        tables.next_user += 1;
        let id = UserId(tables.next_user);
        let stored = StoredUser {
            user: User {
                id,
                username: user.username,
                email: user.email,
                role: user.role,
                created_at: user.created_at,
            },
            password_hash: user.password_hash,
        };
        tables.user_by_key.insert(user.username_key, id);
        tables.users.insert(id, stored.clone());
        Ok(stored.user)
    }

    async fn user(&self, id: UserId) -> Result<Option<StoredUser>> {
        Ok(self.accounts.lock().await.users.get(&id).cloned())
    }

    async fn user_by_key(&self, key: &str) -> Result<Option<StoredUser>> {
        let tables = self.accounts.lock().await;
        Ok(tables
            .user_by_key
            .get(key)
            .and_then(|id| tables.users.get(id))
            .cloned())
    }

    async fn users(&self) -> Result<Vec<User>> {
        let tables = self.accounts.lock().await;
        Ok(tables
            .users
            .values()
            .map(|stored| stored.user.clone())
            .collect())
    }

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
        self.accounts.lock().await.user_mut(id)?.password_hash = password_hash.to_string();
        Ok(())
    }

    async fn set_email(&self, id: UserId, email: Option<&str>) -> Result<User> {
        let mut tables = self.accounts.lock().await;
        let stored = tables.user_mut(id)?;
        stored.user.email = email.map(str::to_string);
        Ok(stored.user.clone())
    }

    async fn set_role(&self, id: UserId, role: Role) -> Result<User> {
        let mut tables = self.accounts.lock().await;
        if role != Role::Admin {
            tables.ensure_other_admin(id)?;
        }
        let stored = tables.user_mut(id)?;
        stored.user.role = role;
        Ok(stored.user.clone())
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let mut tables = self.accounts.lock().await;
        tables.ensure_other_admin(id)?;
        let stored = tables
            .users
            .remove(&id)
            .ok_or_else(|| Error::not_found(ItemKind::User, id.get()))?;
        tables.user_by_key.retain(|_, user| *user != stored.user.id);
        tables.sessions.retain(|_, session| session.user_id != id);
        tables.resets.retain(|_, reset| reset.user_id != id);
        Ok(())
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<()> {
        let mut tables = self.accounts.lock().await;
        tables.sessions.insert(session.key.clone(), session);
        Ok(())
    }

    async fn session(&self, key: &SecretHash) -> Result<Option<SessionRecord>> {
        Ok(self.accounts.lock().await.sessions.get(key).cloned())
    }

    async fn delete_session(&self, key: &SecretHash) -> Result<()> {
        self.accounts.lock().await.sessions.remove(key);
        Ok(())
    }

    async fn delete_user_sessions(&self, user: UserId) -> Result<()> {
        let mut tables = self.accounts.lock().await;
        tables.sessions.retain(|_, session| session.user_id != user);
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tables = self.accounts.lock().await;
        let before = tables.sessions.len();
        tables
            .sessions
            .retain(|_, session| session.expires_at > now);
        Ok((before - tables.sessions.len()) as u64)
    }

    async fn insert_runner_token(&self, token: NewRunnerToken) -> Result<RunnerToken> {
        let mut tables = self.accounts.lock().await;
        if tables.token_by_hash.contains_key(&token.secret_hash) {
            return Err(Error::Conflict {
                message: "a runner token with this secret exists".into(),
            });
        }
        tables.next_token += 1;
        let id = RunnerTokenId(tables.next_token);
        let stored = RunnerToken {
            id,
            name: token.name,
            machines: token.machines,
            created_at: token.created_at,
            revoked_at: None,
        };
        tables.token_by_hash.insert(token.secret_hash.clone(), id);
        tables
            .tokens
            .insert(id, (token.secret_hash, stored.clone()));
        Ok(stored)
    }

    async fn runner_tokens(&self) -> Result<Vec<RunnerToken>> {
        let tables = self.accounts.lock().await;
        Ok(tables
            .tokens
            .values()
            .map(|(_, token)| token.clone())
            .collect())
    }

    async fn runner_token_by_hash(&self, hash: &SecretHash) -> Result<Option<RunnerToken>> {
        let tables = self.accounts.lock().await;
        Ok(tables
            .token_by_hash
            .get(hash)
            .and_then(|id| tables.tokens.get(id))
            .map(|(_, token)| token.clone()))
    }

    async fn revoke_runner_token(
        &self,
        id: RunnerTokenId,
        at: DateTime<Utc>,
    ) -> Result<RunnerToken> {
        let mut tables = self.accounts.lock().await;
        let (_, token) = tables
            .tokens
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(ItemKind::RunnerToken, id.get()))?;
        token.revoked_at.get_or_insert(at);
        Ok(token.clone())
    }

    async fn insert_reset(&self, reset: ResetRecord) -> Result<()> {
        let mut tables = self.accounts.lock().await;
        tables.resets.insert(reset.key.clone(), reset);
        Ok(())
    }

    async fn reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>> {
        Ok(self.accounts.lock().await.resets.get(key).cloned())
    }

    async fn take_reset(&self, key: &SecretHash) -> Result<Option<ResetRecord>> {
        Ok(self.accounts.lock().await.resets.remove(key))
    }
}
