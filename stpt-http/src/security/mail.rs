//! Sending password-reset links.

use async_trait::async_trait;
use std::fmt::Debug;
use stpt_core::BoxError;

/// One plain-text email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Sends the emails stpt writes (password-reset links). The reference server sends them
/// over SMTP; without one configured, [`LogMailer`] writes them to the log.
#[async_trait]
pub trait Mailer: Send + Sync + Debug + 'static {
    /// Sends `mail`; an error is logged and the requester is told nothing different.
    async fn send(&self, mail: Mail) -> Result<(), BoxError>;
}

/// Writes each email to the log (at `warn`, so it shows at the default level) instead of
/// sending it: for development, where the operator reads reset links from the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> Result<(), BoxError> {
        tracing::warn!(
            to = %super::text::loggable(&mail.to),
            subject = %mail.subject,
            body = %mail.body,
            "no SMTP server configured: email written to the log instead of sent"
        );
        Ok(())
    }
}
