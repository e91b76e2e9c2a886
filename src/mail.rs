//! Outgoing email: the SMTP relay of `smtp.url`, or, in `botwave demo` (which has none), the
//! node's log. Messages are plain text; the only ones today are password reset links.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    message::header::ContentType,
};

use crate::config::SmtpSettings;

/// How long one delivery to the relay may take, connecting included.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the email could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP relay refused or failed the email: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// One email to one recipient.
pub struct Email {
    pub to: Mailbox,
    pub subject: String,
    pub body: String,
}

/// The configured relay and the sender it mails as.
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

pub enum Mailer {
    /// Sends through the configured relay.
    Smtp(Box<Relay>),
    /// Writes each email to the log instead: `botwave demo`, which has no relay.
    Log,
    /// No way to send email is configured.
    Off,
}

/// Whether `smtp` can make a [`Mailer`]: a URL lettre understands, and a sender with it.
pub fn check_settings(smtp: &SmtpSettings) -> Result<(), String> {
    match (&smtp.url, &smtp.from) {
        (None, _) => Ok(()),
        (Some(_), None) => Err("smtp.from is required with smtp.url".into()),
        (Some(url), Some(from)) => {
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|error| format!("smtp.url is not usable: {error}"))?;
            from.parse::<Mailbox>()
                .map_err(|error| format!("smtp.from is not an address: {error}"))?;
            Ok(())
        }
    }
}

impl Mailer {
    /// The mailer `smtp` describes (checked by [`check_settings`] when the config was
    /// loaded); `demo` logs instead when no relay is configured.
    pub fn from_settings(smtp: &SmtpSettings, demo: bool) -> Result<Self, String> {
        check_settings(smtp)?;
        match (&smtp.url, &smtp.from) {
            (Some(url), Some(from)) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|error| error.to_string())?
                    .timeout(Some(SEND_TIMEOUT))
                    .build();
                let from = from.parse().map_err(|error| format!("{error}"))?;
                Ok(Mailer::Smtp(Box::new(Relay { transport, from })))
            }
            _ if demo => Ok(Mailer::Log),
            _ => Ok(Mailer::Off),
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self, Mailer::Off)
    }

    pub async fn send(&self, email: Email) -> Result<(), MailError> {
        match self {
            Mailer::Smtp(relay) => {
                let message = Message::builder()
                    .from(relay.from.clone())
                    .to(email.to)
                    .subject(email.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(email.body)?;
                relay.transport.send(message).await?;
                Ok(())
            }
            Mailer::Log => {
                tracing::info!(to = %email.to, subject = %email.subject, body = %email.body, "demo: email not sent (no SMTP relay), here it is");
                Ok(())
            }
            Mailer::Off => Ok(()),
        }
    }
}
