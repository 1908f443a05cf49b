//! [`Accounts`]: every rule about users, sessions, runner tokens and password resets.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use super::model::{
    NewRunnerToken, NewUser, ResetRecord, Role, RunnerToken, RunnerTokenId, SessionRecord, User,
    UserId,
};
use super::secret::{SecretHash, decoy_hash, hash_password, new_secret, verify_password};
use super::store::AccountStore;
use crate::{Clock, Error, MachineName, Result, SystemClock};

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 150;
/// The shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password, in bytes (bounds the hashing work one request can cause).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest runner-token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;
/// The most machines one runner token may be bound to.
pub const MAX_TOKEN_MACHINES: usize = 100;
/// What runner-token secrets start with.
pub const RUNNER_TOKEN_PREFIX: &str = "stpt_";

/// A user who just signed in, with the secret for their session cookie.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who signed in.
    pub user: User,
    /// The session's secret: goes in the cookie, is never stored.
    pub secret: String,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
}

/// A valid session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session it is.
    pub user: User,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A runner token just created, with its secret: shown once, never stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The stored token.
    pub token: RunnerToken,
    /// What runners send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// A password-reset link to send to a user.
#[derive(Debug, Clone)]
pub struct ResetGrant {
    /// Whose password the link resets; has an email address.
    pub user: User,
    /// The secret to put in the link; single-use.
    pub secret: String,
    /// When the link expires.
    pub expires_at: DateTime<Utc>,
}

/// Users, sessions, runner tokens and password resets over an [`AccountStore`]. Cheap to
/// clone; share one per process.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    clock: Arc<dyn Clock>,
    session_ttl: Duration,
    reset_ttl: Duration,
}

impl Accounts {
    /// How long a session lasts by default: 7 days.
    pub const DEFAULT_SESSION_TTL: Duration = Duration::days(7);
    /// How long a reset link lasts by default: 1 hour.
    pub const DEFAULT_RESET_TTL: Duration = Duration::hours(1);

    /// Accounts on `store`, on the system clock, with the default lifetimes.
    pub fn new(store: Arc<dyn AccountStore>) -> Self {
        Accounts {
            store,
            clock: Arc::new(SystemClock),
            session_ttl: Self::DEFAULT_SESSION_TTL,
            reset_ttl: Self::DEFAULT_RESET_TTL,
        }
    }

    /// The same accounts reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sessions last `ttl` from sign-in.
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Reset links last `ttl` from being sent.
    pub fn with_reset_ttl(mut self, ttl: Duration) -> Self {
        self.reset_ttl = ttl;
        self
    }

    /// How long sessions last.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// Creates a user. `InvalidInput` for a blank or overlong username, a malformed email or
    /// a password shorter than [`MIN_PASSWORD_CHARS`]; `Conflict` if the username is taken
    /// (without regard to case).
    pub async fn create_user(
        &self,
        username: &str,
        email: Option<&str>,
        password: &str,
        role: Role,
    ) -> Result<User> {
        validate_username(username)?;
        let email = match email.map(str::trim).filter(|email| !email.is_empty()) {
            Some(email) => Some(validate_email(email)?.to_string()),
            None => None,
        };
        validate_password(password)?;
        self.store
            .create_user(NewUser {
                username: username.to_string(),
                username_key: username_key(username),
                email,
                role,
                password_hash: hash_password(password)?,
                created_at: self.clock.now(),
            })
            .await
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<User>> {
        self.store.users().await
    }

    /// The user with this id, if any.
    pub async fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.store.user(id).await?.map(|stored| stored.user))
    }

    /// The user with this username (without regard to case), if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .store
            .user_by_key(&username_key(username))
            .await?
            .map(|stored| stored.user))
    }

    /// Sets the user's password and signs them out everywhere.
    pub async fn set_password(&self, id: UserId, password: &str) -> Result<()> {
        validate_password(password)?;
        self.store
            .set_password_hash(id, &hash_password(password)?)
            .await?;
        self.store.delete_user_sessions(id).await
    }

    /// Sets a user's email address, where their password-reset links go; blank or `None`
    /// removes it. `InvalidInput` for a malformed address, `NotFound` for an unknown user.
    pub async fn set_email(&self, id: UserId, email: Option<&str>) -> Result<User> {
        let email = match email.map(str::trim).filter(|email| !email.is_empty()) {
            Some(email) => Some(validate_email(email)?),
            None => None,
        };
        self.store.set_email(id, email).await
    }

    /// Changes a signed-in user's own password, if `current_password` is theirs: sets the
    /// new one, ends every session of theirs, and opens a new one for the browser that asked
    /// (whose cookie gets the returned secret), so that only it stays signed in. `None` for
    /// a wrong current password (nothing changed); `InvalidInput` for a new password that
    /// breaks the rules of [`Accounts::create_user`]; `NotFound` for an unknown user.
    pub async fn change_password(
        &self,
        id: UserId,
        current_password: &str,
        new_password: &str,
    ) -> Result<Option<SignedIn>> {
        validate_password(new_password)?;
        let stored = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| Error::not_found(crate::ItemKind::User, id.get()))?;
        if current_password.len() > MAX_PASSWORD_BYTES
            || !verify_password(current_password, &stored.password_hash)
        {
            return Ok(None);
        }
        self.set_password(id, new_password).await?;
        self.open_session(stored.user).await.map(Some)
    }

    /// Changes a user's role. `Conflict` when it would leave no admin: the store checks and
    /// changes in one atomic step, so two admins demoting each other at once cannot both
    /// succeed.
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<User> {
        self.store.set_role(id, role).await
    }

    /// Deletes a user and their sessions. `Conflict` when it would leave no admin (checked
    /// atomically with the deletion, as for [`Accounts::set_role`]).
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        self.store.delete_user(id).await
    }

    /// Checks a username and password; on success opens a session. `None` for an unknown
    /// user or a wrong password (which take the same time, so neither is revealed).
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<Option<SignedIn>> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let stored = self.store.user_by_key(&username_key(username)).await?;
        let hash = stored
            .as_ref()
            .map_or(decoy_hash(), |stored| stored.password_hash.as_str());
        let matches = verify_password(password, hash);
        let Some(stored) = stored.filter(|_| matches) else {
            return Ok(None);
        };
        self.open_session(stored.user).await.map(Some)
    }

    /// Opens a session for `user`.
    async fn open_session(&self, user: User) -> Result<SignedIn> {
        let secret = new_secret("")?;
        let now = self.clock.now();
        let expires_at = now + self.session_ttl;
        self.store
            .insert_session(SessionRecord {
                key: SecretHash::of(&secret),
                user_id: user.id,
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(SignedIn {
            user,
            secret,
            expires_at,
        })
    }

    /// The session whose cookie holds `secret`, if it exists, has not expired and its user
    /// still exists. An expired session is deleted.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>> {
        let key = SecretHash::of(secret);
        let Some(record) = self.store.session(&key).await? else {
            return Ok(None);
        };
        if record.expires_at <= self.clock.now() {
            self.store.delete_session(&key).await?;
            return Ok(None);
        }
        Ok(self.user(record.user_id).await?.map(|user| Session {
            user,
            expires_at: record.expires_at,
        }))
    }

    /// Ends the session whose cookie holds `secret` (nothing if there is none).
    pub async fn sign_out(&self, secret: &str) -> Result<()> {
        self.store.delete_session(&SecretHash::of(secret)).await
    }

    /// Deletes expired sessions; returns how many. Call it now and then.
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        self.store.delete_expired_sessions(self.clock.now()).await
    }

    /// Creates a runner token, optionally bound to `machines` (empty: any machine). The
    /// returned secret is the only copy.
    pub async fn create_runner_token(
        &self,
        name: &str,
        machines: &[String],
    ) -> Result<IssuedToken> {
        if name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be blank"));
        }
        if name.chars().count() > MAX_TOKEN_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                format!(
                    "must be at most {MAX_TOKEN_NAME_CHARS} characters, without control characters"
                ),
            ));
        }
        if machines.len() > MAX_TOKEN_MACHINES {
            return Err(Error::invalid(
                "machines",
                format!("at most {MAX_TOKEN_MACHINES} machines per token"),
            ));
        }
        let mut bound: Vec<String> = Vec::with_capacity(machines.len());
        for (index, machine) in machines.iter().enumerate() {
            let name = MachineName::new(machine.as_str()).map_err(|_| {
                Error::invalid(format!("machines[{index}]"), "is not a valid machine name")
            })?;
            if !bound
                .iter()
                .any(|seen| crate::machine_key(seen) == name.key())
            {
                bound.push(name.as_str().to_string());
            }
        }
        let secret = new_secret(RUNNER_TOKEN_PREFIX)?;
        let token = self
            .store
            .insert_runner_token(NewRunnerToken {
                name: name.to_string(),
                secret_hash: SecretHash::of(&secret),
                machines: bound,
                created_at: self.clock.now(),
            })
            .await?;
        Ok(IssuedToken { token, secret })
    }

    /// Every runner token, revoked ones included.
    pub async fn runner_tokens(&self) -> Result<Vec<RunnerToken>> {
        self.store.runner_tokens().await
    }

    /// Revokes a runner token from now on.
    pub async fn revoke_runner_token(&self, id: RunnerTokenId) -> Result<RunnerToken> {
        self.store.revoke_runner_token(id, self.clock.now()).await
    }

    /// The live (not revoked) runner token whose secret is `secret`, if any.
    pub async fn authenticate_runner(&self, secret: &str) -> Result<Option<RunnerToken>> {
        Ok(self
            .store
            .runner_token_by_hash(&SecretHash::of(secret))
            .await?
            .filter(|token| !token.is_revoked()))
    }

    /// Opens a reset grant for every user whose username is `login`, or whose email is
    /// `login` (without regard to case), and who has an email to send it to. The caller
    /// sends each link and tells the requester the same thing whether or not any user
    /// matched.
    pub async fn request_password_reset(&self, login: &str) -> Result<Vec<ResetGrant>> {
        let login = login.trim();
        if login.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = login.to_lowercase();
        let users = self.store.users().await?;
        let now = self.clock.now();
        let mut grants = Vec::new();
        for user in users {
            let matches = username_key(&user.username) == wanted
                || user
                    .email
                    .as_deref()
                    .is_some_and(|email| email.to_lowercase() == wanted);
            if !matches || user.email.is_none() {
                continue;
            }
            grants.push(self.open_reset(user, now).await?);
        }
        Ok(grants)
    }

    /// Opens a reset grant for the user with this id, for an admin to send them: its link
    /// goes to the user's email address like one they asked for. `InvalidInput` if the user
    /// has no email address, `NotFound` for an unknown user.
    pub async fn grant_password_reset(&self, id: UserId) -> Result<ResetGrant> {
        let user = self
            .user(id)
            .await?
            .ok_or_else(|| Error::not_found(crate::ItemKind::User, id.get()))?;
        if user.email.is_none() {
            return Err(Error::invalid(
                "email",
                "is not set: set one first, or set a password directly",
            ));
        }
        self.open_reset(user, self.clock.now()).await
    }

    /// Stores a reset grant for `user`, opened at `now`.
    async fn open_reset(&self, user: User, now: DateTime<Utc>) -> Result<ResetGrant> {
        let secret = new_secret("")?;
        let expires_at = now + self.reset_ttl;
        self.store
            .insert_reset(ResetRecord {
                key: SecretHash::of(&secret),
                user_id: user.id,
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(ResetGrant {
            user,
            secret,
            expires_at,
        })
    }

    /// The user a reset link is for, if the link is unused and unexpired (without using it).
    pub async fn reset_user(&self, secret: &str) -> Result<Option<User>> {
        match self.store.reset(&SecretHash::of(secret)).await? {
            Some(reset) if reset.expires_at > self.clock.now() => self.user(reset.user_id).await,
            _ => Ok(None),
        }
    }

    /// Uses a reset link: sets the new password and signs the user out everywhere. `None`
    /// if the link is unknown, used or expired; `InvalidInput` (link kept) for a password
    /// that is too short.
    pub async fn reset_password(&self, secret: &str, new_password: &str) -> Result<Option<User>> {
        validate_password(new_password)?;
        let Some(reset) = self.store.take_reset(&SecretHash::of(secret)).await? else {
            return Ok(None);
        };
        if reset.expires_at <= self.clock.now() {
            return Ok(None);
        }
        let Some(user) = self.user(reset.user_id).await? else {
            return Ok(None);
        };
        self.set_password(user.id, new_password).await?;
        Ok(Some(user))
    }
}

/// The refusal of a change that would leave no admin; stores answer it from
/// [`AccountStore::set_role`] and [`AccountStore::delete_user`].
pub fn last_admin_conflict() -> Error {
    Error::Conflict {
        message: "this is the last admin; make another user admin first".into(),
    }
}

/// The key that keeps usernames unique without regard to case.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

fn validate_username(username: &str) -> Result<()> {
    if username.trim().is_empty() {
        return Err(Error::invalid("username", "must not be blank"));
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(Error::invalid(
            "username",
            format!("must be at most {MAX_USERNAME_CHARS} characters"),
        ));
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::invalid(
            "username",
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<&str> {
    let well_formed = email.len() <= 254
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if well_formed {
        Ok(email)
    } else {
        Err(Error::invalid("email", "is not an email address"))
    }
}

fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}
