//! [`AccountStore`](stpt_core::accounts::AccountStore) for both SQL backends: one SQL text
//! (tables differ only by prefix) and, through [`sql_account_store!`], one body.

use chrono::{DateTime, Utc};
use stpt_core::accounts::{
    ResetRecord, Role, RunnerToken, RunnerTokenId, SecretHash, SessionRecord, StoredUser, User,
    UserId,
};
use stpt_core::{Error, Result};

use crate::error::RowError;

/// `id, username, email, role, password_hash, created_at`.
pub(crate) type UserRow = (i64, String, Option<String>, String, String, DateTime<Utc>);

/// `id, name, machines, created_at, revoked_at`.
pub(crate) type TokenRow = (i64, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// `user_id, created_at, expires_at` of a session or a reset grant.
pub(crate) type GrantRow = (i64, DateTime<Utc>, DateTime<Utc>);

pub(crate) const USER_COLS: &str = "id, username, email, role, password_hash, created_at";
pub(crate) const TOKEN_COLS: &str = "id, name, machines, created_at, revoked_at";

pub(crate) fn stored_user(row: UserRow) -> Result<StoredUser> {
    let (id, username, email, role, password_hash, created_at) = row;
    let role =
        Role::parse(&role).ok_or_else(|| Error::backend(RowError::UnknownRole { value: role }))?;
    Ok(StoredUser {
        user: User {
            id: UserId(id),
            username,
            email,
            role,
            created_at,
        },
        password_hash,
    })
}

pub(crate) fn runner_token(row: TokenRow) -> Result<RunnerToken> {
    let (id, name, machines, created_at, revoked_at) = row;
    let machines: Vec<String> = serde_json::from_str(&machines)
        .map_err(|_| Error::backend(RowError::BadMachineList { token: id }))?;
    Ok(RunnerToken {
        id: RunnerTokenId(id),
        name,
        machines,
        created_at,
        revoked_at,
    })
}

/// A session read back by its key.
pub(crate) fn session_record(key: &SecretHash, row: GrantRow) -> SessionRecord {
    let (user_id, created_at, expires_at) = row;
    SessionRecord {
        key: key.clone(),
        user_id: UserId(user_id),
        created_at,
        expires_at,
    }
}

/// A reset grant read back by its key.
pub(crate) fn reset_record(key: &SecretHash, row: GrantRow) -> ResetRecord {
    let (user_id, created_at, expires_at) = row;
    ResetRecord {
        key: key.clone(),
        user_id: UserId(user_id),
        created_at,
        expires_at,
    }
}

pub(crate) fn machine_list(machines: &[String]) -> Result<String> {
    serde_json::to_string(machines).map_err(Error::backend)
}

/// `Conflict` if user `$id` is the only admin, checked in transaction `$tx`, which then
/// changes or deletes the user.
///
/// The first statement locks every admin row (a write that changes nothing): on
/// PostgreSQL a concurrent caller waits for those rows and, once this transaction commits,
/// sees the admins as they now are; on SQLite it takes the database's write lock before
/// anything is read. Either way the check and the change are one atomic step.
macro_rules! ensure_other_admin {
    ($tx:expr, $prefix:expr, $id:expr) => {{
        let admins: Vec<(i64,)> = ::sqlx::query_as(&format!(
            "UPDATE {}users SET role = role WHERE role = $1 RETURNING id",
            $prefix
        ))
        .bind(::stpt_core::accounts::Role::Admin.as_str())
        .fetch_all(&mut *$tx)
        .await
        .db()?;
        if !admins.is_empty() && admins.iter().all(|(admin,)| *admin == $id.get()) {
            return Err(::stpt_core::accounts::last_admin_conflict());
        }
    }};
}

pub(crate) use ensure_other_admin;

/// Implements `AccountStore` for `$store` (with fields `pool` and `sql.prefix`); `$ts`
/// converts a timestamp to what the database binds.
macro_rules! sql_account_store {
    (store: $store:ident, ts: $ts:path $(,)?) => {
        #[::async_trait::async_trait]
        impl ::stpt_core::accounts::AccountStore for $store {
            async fn create_user(
                &self,
                user: ::stpt_core::accounts::NewUser,
            ) -> ::stpt_core::Result<::stpt_core::accounts::User> {
                let p = self.sql.prefix;
                let sql = format!(
                    "INSERT INTO {p}users (username, username_key, email, role, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {}",
                    $crate::accounts::USER_COLS
                );
                let row: $crate::accounts::UserRow = ::sqlx::query_as(&sql)
                    .bind(&user.username)
                    .bind(&user.username_key)
                    .bind(&user.email)
                    .bind(user.role.as_str())
                    .bind(&user.password_hash)
                    .bind($ts(user.created_at))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|error| {
                        $crate::error::from_sqlx_unique(
                            error,
                            format!("username `{}` is taken", user.username),
                        )
                    })?;
                Ok($crate::accounts::stored_user(row)?.user)
            }

            async fn user(
                &self,
                id: ::stpt_core::accounts::UserId,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::StoredUser>> {
                let p = self.sql.prefix;
                let sql = format!("SELECT {} FROM {p}users WHERE id = $1", $crate::accounts::USER_COLS);
                let row: Option<$crate::accounts::UserRow> = ::sqlx::query_as(&sql)
                    .bind(id.get())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                row.map($crate::accounts::stored_user).transpose()
            }

            async fn user_by_key(
                &self,
                key: &str,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::StoredUser>> {
                let p = self.sql.prefix;
                let sql = format!(
                    "SELECT {} FROM {p}users WHERE username_key = $1",
                    $crate::accounts::USER_COLS
                );
                let row: Option<$crate::accounts::UserRow> = ::sqlx::query_as(&sql)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                row.map($crate::accounts::stored_user).transpose()
            }

            async fn users(&self) -> ::stpt_core::Result<Vec<::stpt_core::accounts::User>> {
                let p = self.sql.prefix;
                let sql = format!("SELECT {} FROM {p}users ORDER BY id", $crate::accounts::USER_COLS);
                let rows: Vec<$crate::accounts::UserRow> =
                    ::sqlx::query_as(&sql).fetch_all(&self.pool).await.db()?;
                rows.into_iter()
                    .map(|row| $crate::accounts::stored_user(row).map(|stored| stored.user))
                    .collect()
            }

            async fn set_password_hash(
                &self,
                id: ::stpt_core::accounts::UserId,
                password_hash: &str,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                let done = ::sqlx::query(&format!("UPDATE {p}users SET password_hash = $2 WHERE id = $1"))
                    .bind(id.get())
                    .bind(password_hash)
                    .execute(&self.pool)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Err(::stpt_core::Error::not_found(::stpt_core::ItemKind::User, id.get()));
                }
                Ok(())
            }

            async fn set_email(
                &self,
                id: ::stpt_core::accounts::UserId,
                email: Option<&str>,
            ) -> ::stpt_core::Result<::stpt_core::accounts::User> {
                let p = self.sql.prefix;
                let sql = format!(
                    "UPDATE {p}users SET email = $2 WHERE id = $1 RETURNING {}",
                    $crate::accounts::USER_COLS
                );
                let row: Option<$crate::accounts::UserRow> = ::sqlx::query_as(&sql)
                    .bind(id.get())
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                let row = row.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::User, id.get())
                })?;
                Ok($crate::accounts::stored_user(row)?.user)
            }

            async fn set_role(
                &self,
                id: ::stpt_core::accounts::UserId,
                role: ::stpt_core::accounts::Role,
            ) -> ::stpt_core::Result<::stpt_core::accounts::User> {
                let p = self.sql.prefix;
                let mut tx = self.pool.begin().await.db()?;
                if role != ::stpt_core::accounts::Role::Admin {
                    $crate::accounts::ensure_other_admin!(tx, p, id);
                }
                let sql = format!(
                    "UPDATE {p}users SET role = $2 WHERE id = $1 RETURNING {}",
                    $crate::accounts::USER_COLS
                );
                let row: Option<$crate::accounts::UserRow> = ::sqlx::query_as(&sql)
                    .bind(id.get())
                    .bind(role.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                let row = row.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::User, id.get())
                })?;
                tx.commit().await.db()?;
                Ok($crate::accounts::stored_user(row)?.user)
            }

            async fn delete_user(&self, id: ::stpt_core::accounts::UserId) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                let mut tx = self.pool.begin().await.db()?;
                $crate::accounts::ensure_other_admin!(tx, p, id);
                for table in ["sessions", "password_resets"] {
                    ::sqlx::query(&format!("DELETE FROM {p}{table} WHERE user_id = $1"))
                        .bind(id.get())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                }
                let done = ::sqlx::query(&format!("DELETE FROM {p}users WHERE id = $1"))
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Err(::stpt_core::Error::not_found(::stpt_core::ItemKind::User, id.get()));
                }
                tx.commit().await.db()
            }

            async fn insert_session(
                &self,
                session: ::stpt_core::accounts::SessionRecord,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                ::sqlx::query(&format!(
                    "INSERT INTO {p}sessions (key_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
                ))
                .bind(session.key.as_str())
                .bind(session.user_id.get())
                .bind($ts(session.created_at))
                .bind($ts(session.expires_at))
                .execute(&self.pool)
                .await
                .db()?;
                Ok(())
            }

            async fn session(
                &self,
                key: &::stpt_core::accounts::SecretHash,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::SessionRecord>> {
                let p = self.sql.prefix;
                let row: Option<$crate::accounts::GrantRow> = ::sqlx::query_as(&format!(
                    "SELECT user_id, created_at, expires_at FROM {p}sessions WHERE key_hash = $1"
                ))
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(row.map(|row| $crate::accounts::session_record(key, row)))
            }

            async fn delete_session(
                &self,
                key: &::stpt_core::accounts::SecretHash,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                ::sqlx::query(&format!("DELETE FROM {p}sessions WHERE key_hash = $1"))
                    .bind(key.as_str())
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn delete_user_sessions(
                &self,
                user: ::stpt_core::accounts::UserId,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                ::sqlx::query(&format!("DELETE FROM {p}sessions WHERE user_id = $1"))
                    .bind(user.get())
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(())
            }

            async fn delete_expired_sessions(
                &self,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::stpt_core::Result<u64> {
                let p = self.sql.prefix;
                let done = ::sqlx::query(&format!("DELETE FROM {p}sessions WHERE expires_at <= $1"))
                    .bind($ts(now))
                    .execute(&self.pool)
                    .await
                    .db()?;
                Ok(done.rows_affected())
            }

            async fn insert_runner_token(
                &self,
                token: ::stpt_core::accounts::NewRunnerToken,
            ) -> ::stpt_core::Result<::stpt_core::accounts::RunnerToken> {
                let p = self.sql.prefix;
                let sql = format!(
                    "INSERT INTO {p}runner_tokens (name, secret_hash, machines, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING {}",
                    $crate::accounts::TOKEN_COLS
                );
                let row: $crate::accounts::TokenRow = ::sqlx::query_as(&sql)
                    .bind(&token.name)
                    .bind(token.secret_hash.as_str())
                    .bind($crate::accounts::machine_list(&token.machines)?)
                    .bind($ts(token.created_at))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|error| {
                        $crate::error::from_sqlx_unique(
                            error,
                            "a runner token with this secret exists".to_owned(),
                        )
                    })?;
                $crate::accounts::runner_token(row)
            }

            async fn runner_tokens(
                &self,
            ) -> ::stpt_core::Result<Vec<::stpt_core::accounts::RunnerToken>> {
                let p = self.sql.prefix;
                let sql = format!(
                    "SELECT {} FROM {p}runner_tokens ORDER BY id",
                    $crate::accounts::TOKEN_COLS
                );
                let rows: Vec<$crate::accounts::TokenRow> =
                    ::sqlx::query_as(&sql).fetch_all(&self.pool).await.db()?;
                rows.into_iter().map($crate::accounts::runner_token).collect()
            }

            async fn runner_token_by_hash(
                &self,
                hash: &::stpt_core::accounts::SecretHash,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::RunnerToken>> {
                let p = self.sql.prefix;
                let sql = format!(
                    "SELECT {} FROM {p}runner_tokens WHERE secret_hash = $1",
                    $crate::accounts::TOKEN_COLS
                );
                let row: Option<$crate::accounts::TokenRow> = ::sqlx::query_as(&sql)
                    .bind(hash.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                row.map($crate::accounts::runner_token).transpose()
            }

            async fn revoke_runner_token(
                &self,
                id: ::stpt_core::accounts::RunnerTokenId,
                at: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::stpt_core::Result<::stpt_core::accounts::RunnerToken> {
                let p = self.sql.prefix;
                let sql = format!(
                    "UPDATE {p}runner_tokens SET revoked_at = COALESCE(revoked_at, $2) \
                     WHERE id = $1 RETURNING {}",
                    $crate::accounts::TOKEN_COLS
                );
                let row: Option<$crate::accounts::TokenRow> = ::sqlx::query_as(&sql)
                    .bind(id.get())
                    .bind($ts(at))
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                let row = row.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::RunnerToken, id.get())
                })?;
                $crate::accounts::runner_token(row)
            }

            async fn insert_reset(
                &self,
                reset: ::stpt_core::accounts::ResetRecord,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                ::sqlx::query(&format!(
                    "INSERT INTO {p}password_resets (key_hash, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)"
                ))
                .bind(reset.key.as_str())
                .bind(reset.user_id.get())
                .bind($ts(reset.created_at))
                .bind($ts(reset.expires_at))
                .execute(&self.pool)
                .await
                .db()?;
                Ok(())
            }

            async fn reset(
                &self,
                key: &::stpt_core::accounts::SecretHash,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::ResetRecord>> {
                let p = self.sql.prefix;
                let row: Option<$crate::accounts::GrantRow> = ::sqlx::query_as(&format!(
                    "SELECT user_id, created_at, expires_at FROM {p}password_resets WHERE key_hash = $1"
                ))
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(row.map(|row| $crate::accounts::reset_record(key, row)))
            }

            async fn take_reset(
                &self,
                key: &::stpt_core::accounts::SecretHash,
            ) -> ::stpt_core::Result<Option<::stpt_core::accounts::ResetRecord>> {
                let p = self.sql.prefix;
                // One statement: of two concurrent takers, only one deletes the row.
                let row: Option<$crate::accounts::GrantRow> = ::sqlx::query_as(&format!(
                    "DELETE FROM {p}password_resets WHERE key_hash = $1 \
                     RETURNING user_id, created_at, expires_at"
                ))
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .db()?;
                Ok(row.map(|row| $crate::accounts::reset_record(key, row)))
            }
        }
    };
}

pub(crate) use sql_account_store;
