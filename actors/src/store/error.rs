//! Mapping of pool and driver failures into wacore's [`StoreError`].

use wacore::store::error::StoreError;

/// A failed statement. A dead connection is reported as a connection problem, the
/// rest as a database error; the driver error stays reachable as the source.
pub(super) fn db_err(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        StoreError::Connection(Box::new(e))
    } else {
        StoreError::Database(Box::new(e))
    }
}

/// No connection could be checked out of the pool (timeout or connect failure).
pub(super) fn pool_err(e: bb8::RunError<tokio_postgres::Error>) -> StoreError {
    StoreError::Connection(Box::new(e))
}

/// A stored value that cannot be turned back into its wacore type.
pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Validation(format!("stored {what} is invalid: {detail}"))
}

/// A statement refused because the session's lease is no longer this node's, locally or
/// by the database's fence; other session errors keep their kind.
pub(super) fn fence_err(e: crate::error::SessionError) -> StoreError {
    match e {
        crate::error::SessionError::Database(e) => db_err(e),
        other => StoreError::Database(Box::new(other)),
    }
}
