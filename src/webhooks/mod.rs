//! Webhooks: users register HTTPS endpoints and receive signed POSTs of the events they
//! subscribed to (`message.status`, `message.received`, `session.state`).
//!
//! Events are written by database triggers in the same statement as the change they report
//! (`migrations/0011_webhooks.sql`), fanned out into one delivery per subscribed endpoint;
//! [`worker`] claims and sends them from any node; [`client`] makes the requests, to checked
//! addresses only ([`target`]), signed by [`signature`]; [`store`] holds the queries.

pub mod client;
pub mod signature;
pub mod store;
pub mod target;
pub mod worker;

/// Event types an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] = &["message.status", "message.received", "session.state"];
