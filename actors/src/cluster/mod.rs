//! The cluster: nodes joined by ractor_cluster, each running the sessions it holds the
//! lease of (see [`crate::lease`]).
//!
//! ractor_cluster is transport only. Who owns a session is decided by the lease table in
//! PostgreSQL, never by membership, since ractor_cluster has no failure detector and
//! a frozen peer looks alive to it. Over the links travel two things, both through one
//! remotable [`gateway`] actor per node: requests for a session owned elsewhere, and the
//! events every node publishes, for the dashboards connected to the others.
//!
//! - [`membership`]: the node server, our own listener and dialer (for keepalive and
//!   `TCP_USER_TIMEOUT`), reconnects and a ping-based failure detector;
//! - [`gateway`]: the actor, and the handle the session manager routes through;
//! - [`wire`]: the versioned messages between nodes;
//! - [`nodes`]: the `cluster_nodes` table;
//! - [`tls`]: mutual TLS on the links, when the node has a certificate.

pub mod gateway;
pub mod membership;
pub mod nodes;
pub mod tls;
pub mod wire;

use uuid::Uuid;

/// Who this node is: its configured name, and an incarnation that is new on every
/// process start (a restarted node must not pass for its former self, whose leases may
/// still be alive).
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub incarnation: Uuid,
}

impl NodeIdentity {
    /// A fresh incarnation of the node called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            incarnation: Uuid::new_v4(),
        }
    }
}
