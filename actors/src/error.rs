//! Errors of the session layer, as the HTTP layer sees them.

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("database error: {0}")]
    Database(#[source] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(String),
    #[error("no such user")]
    UnknownUser,
    #[error("the session supervisor is not running")]
    SupervisorGone,
    #[error("session actor error: {0}")]
    Actor(String),
    #[error("WhatsApp device store error: {0}")]
    Store(String),
    #[error(transparent)]
    PairCode(#[from] PairCodeRefusal),
    /// This node no longer holds the session's lease (lost, expired or handed over), or
    /// the database's fence refused a write made with it.
    #[error("this node no longer owns the WhatsApp session")]
    LeaseLost,
    /// Another node runs the session and could not be reached in time; whether it acted
    /// is unknown.
    #[error("the node running this WhatsApp session did not answer; retry in a moment")]
    OwnerUnreachable,
    /// An insert into the outbox neither queued its message nor met the one its idempotency
    /// key names (that key's message was deleted in between).
    #[error("the message was not queued; retry")]
    NotQueued,
}

impl From<tokio_postgres::Error> for SessionError {
    fn from(error: tokio_postgres::Error) -> Self {
        if crate::lease::is_fenced(&error) {
            SessionError::LeaseLost
        } else {
            SessionError::Database(error)
        }
    }
}

/// Why a session gave no link code (linking by phone number).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PairCodeRefusal {
    #[error("this account's WhatsApp is already linked")]
    AlreadyLinked,
    #[error("a link code for this account is already being requested")]
    InProgress,
    /// The request lost its flow before a code came: a newer request replaced it, or
    /// the connection to WhatsApp dropped meanwhile.
    #[error(
        "the link code request was interrupted (by a newer one, or a dropped connection); request a new code"
    )]
    Interrupted,
    #[error("the WhatsApp session is not running; retry in a moment")]
    NotRunning,
    /// WhatsApp (or the client) refused the request; WhatsApp uses this for its rate
    /// limit too.
    #[error("WhatsApp refused the link code request: {0}")]
    Refused(String),
}

impl From<bb8::RunError<tokio_postgres::Error>> for SessionError {
    fn from(error: bb8::RunError<tokio_postgres::Error>) -> Self {
        match error {
            bb8::RunError::User(error) => SessionError::from(error),
            bb8::RunError::TimedOut => {
                SessionError::Pool("timed out waiting for a connection".into())
            }
        }
    }
}
