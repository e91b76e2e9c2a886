//! Running the installation: managing accounts, watching sessions, usage analytics and the
//! audit log of what administrators did. The queries live here; `http::admin` serves them.

pub mod analytics;
pub mod audit;
pub mod pacing;
pub mod sessions;
pub mod users;

use crate::db::DbError;

/// Why an admin operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change would leave the installation without an enabled admin.
    #[error("this would leave no enabled admin; promote another account first")]
    LastAdmin,
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The report PostgreSQL built does not match its Rust type: a bug, not bad input.
    #[error("analytics report does not match its type: {0}")]
    Report(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for AdminError {
    fn from(error: tokio_postgres::Error) -> Self {
        AdminError::Db(error.into())
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for AdminError {
    fn from(error: bb8::RunError<tokio_postgres::Error>) -> Self {
        AdminError::Db(error.into())
    }
}
