//! botwave's per-user actors and the state they keep in PostgreSQL.
//!
//! - [`SessionManager`] starts the [`supervisor`], which runs one [`session`] actor per
//!   user, each owning one whatsapp-rust client on a [`store::PgStore`].
//! - [`sessions`] is the `wa_sessions` table, [`outbox`] the write side of `messages`.
//! - [`events`] is the hub every state change is published on.
//! - [`lease`] decides which node runs a session and fences its writes; [`cluster`]
//!   joins the nodes, routes requests to owners and carries events between them.

pub mod cluster;
pub mod config;
#[cfg(feature = "simulator")]
#[doc(hidden)]
pub mod crash_point;
pub mod db;
pub mod error;
pub mod events;
pub mod inbound;
pub mod lease;
pub mod manager;
pub mod outbox;
pub mod pacing;
pub mod session;
pub mod sessions;
pub mod store;
pub mod supervisor;
pub mod telemetry;

pub use cluster::NodeIdentity;
pub use config::SessionConfig;
pub use error::{PairCodeRefusal, SessionError};
pub use events::{EventHub, SessionEvent};
pub use manager::SessionManager;

/// wacore, re-exported so dependants name the store traits and types from the exact
/// version this crate implements them for.
pub use wacore;

/// The PostgreSQL connection pool shared by everything that talks to the database.
pub type PgPool = bb8::Pool<db::PgManager>;
