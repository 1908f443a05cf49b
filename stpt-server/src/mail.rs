//! Password-reset emails over SMTP.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use stpt_core::{BoxError, Error, Result};
use stpt_http::{Mail, Mailer};

/// Sends stpt's emails through an SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// An SMTP mailer for `url` (`smtp://user:pass@host:587?tls=required` for STARTTLS,
    /// `smtps://user:pass@host:465` for TLS, `smtp://host:25` plain), sending as `from`
    /// (`Name <address>` or an address). Does not connect yet.
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| Error::invalid("smtp-url", error.to_string()))?
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|error| Error::invalid("mail-from", error.to_string()))?;
        Ok(SmtpMailer { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), BoxError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse::<Mailbox>()?)
            .subject(mail.subject)
            .body(mail.body)?;
        self.transport.send(message).await?;
        Ok(())
    }
}
