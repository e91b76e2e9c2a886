//! botwave's per-user actors and the state they keep in PostgreSQL.

pub mod store;

/// wacore, re-exported so dependants name the store traits and types from the exact
/// version this crate implements them for.
pub use wacore;

/// The PostgreSQL connection pool shared by everything that talks to the database.
pub type PgPool = bb8::Pool<bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>>;
