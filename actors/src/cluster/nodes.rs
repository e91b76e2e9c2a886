//! The `cluster_nodes` table: one row per node process, heartbeated with its lease
//! renewals. Placement reads the live ones; the admin cluster page lists them all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::NodeIdentity;
use crate::PgPool;
use crate::error::SessionError;

/// Records a starting node. Rows of nodes gone for a day are pruned on the way.
pub async fn register(
    pool: &PgPool,
    node: &NodeIdentity,
    http_addr: &str,
    cluster_addr: Option<&str>,
) -> Result<(), SessionError> {
    let conn = pool.get().await?;
    conn.execute_typed(
        "DELETE FROM cluster_nodes WHERE heartbeat_at < now() - interval '1 day'",
        &[],
    )
    .await?;
    conn.execute_typed(
        "INSERT INTO cluster_nodes (incarnation, name, http_addr, cluster_addr)
         VALUES ($1, $2, $3, $4)",
        &[
            (&node.incarnation, Type::UUID),
            (&node.name, Type::TEXT),
            (&http_addr, Type::TEXT),
            (&cluster_addr, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

/// Marks the node alive now; answers whether it is asked to drain.
pub async fn heartbeat(pool: &PgPool, incarnation: Uuid) -> Result<bool, SessionError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            "UPDATE cluster_nodes SET heartbeat_at = now() WHERE incarnation = $1
             RETURNING draining",
            &[(&incarnation, Type::UUID)],
        )
        .await?;
    Ok(row.is_some_and(|row| row.get(0)))
}

/// The node stopped cleanly (its sessions are handed over).
pub async fn mark_stopped(pool: &PgPool, incarnation: Uuid) -> Result<(), SessionError> {
    let conn = pool.get().await?;
    conn.execute_typed(
        "UPDATE cluster_nodes SET stopped_at = now(), draining = true WHERE incarnation = $1",
        &[(&incarnation, Type::UUID)],
    )
    .await?;
    Ok(())
}

/// Asks every live node called `name` to hand its sessions over (or, with `false`, to
/// take sessions again). Answers how many nodes were told.
pub async fn set_draining(pool: &PgPool, name: &str, draining: bool) -> Result<u64, SessionError> {
    let conn = pool.get().await?;
    let changed = conn
        .execute_typed(
            "UPDATE cluster_nodes SET draining = $2 WHERE name = $1 AND stopped_at IS NULL",
            &[(&name, Type::TEXT), (&draining, Type::BOOL)],
        )
        .await?;
    Ok(changed)
}

/// What placement needs to know about the cluster right now.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Nodes that heartbeated within a lease's lifetime and take sessions.
    pub live_nodes: i64,
    /// Sessions that should run.
    pub wanted: i64,
    /// The fewest live leases any live node holds.
    pub least_loaded: usize,
}

impl Load {
    /// The most sessions a node should run: wanted sessions over live nodes, rounded up.
    pub fn fair_share(&self) -> usize {
        let nodes = self.live_nodes.max(1);
        ((self.wanted + nodes - 1) / nodes).max(0) as usize
    }
}

pub async fn load(pool: &PgPool, ttl: Duration) -> Result<Load, SessionError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            "WITH live AS (
                 SELECT incarnation FROM cluster_nodes
                  WHERE stopped_at IS NULL AND NOT draining
                    AND heartbeat_at > now() - make_interval(secs => $1)
             ), held AS (
                 SELECT live.incarnation, count(l.session_id) AS leases
                   FROM live LEFT JOIN wa_leases l
                     ON l.owner = live.incarnation AND l.expires_at > now()
                  GROUP BY live.incarnation
             )
             SELECT (SELECT count(*) FROM live),
                    (SELECT count(*) FROM wa_sessions s JOIN users u ON u.id = s.user_id
                      WHERE s.wanted AND u.disabled_at IS NULL),
                    (SELECT coalesce(min(leases), 0) FROM held)",
            &[(&ttl.as_secs_f64(), Type::FLOAT8)],
        )
        .await?;
    Ok(Load {
        live_nodes: row.get(0),
        wanted: row.get(1),
        least_loaded: usize::try_from(row.get::<_, i64>(2)).unwrap_or(0),
    })
}

/// A node as the admin cluster page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub name: String,
    pub incarnation: Uuid,
    pub http_addr: String,
    pub cluster_addr: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub draining: bool,
    /// Heartbeated within a lease's lifetime and not stopped.
    pub alive: bool,
    /// Sessions it holds a live lease of.
    pub sessions: i64,
}

/// Every node seen in the last day, live ones first, then by name.
pub async fn list(pool: &PgPool, ttl: Duration) -> Result<Vec<NodeInfo>, SessionError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT n.name, n.incarnation, n.http_addr, n.cluster_addr, n.started_at,
                    n.heartbeat_at, n.stopped_at, n.draining,
                    (n.stopped_at IS NULL AND n.heartbeat_at > now() - make_interval(secs => $1))
                        AS alive,
                    (SELECT count(*) FROM wa_leases l
                      WHERE l.owner = n.incarnation AND l.expires_at > now()) AS sessions
               FROM cluster_nodes n
              ORDER BY alive DESC, n.name, n.started_at DESC",
            &[(&ttl.as_secs_f64(), Type::FLOAT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| NodeInfo {
            name: row.get(0),
            incarnation: row.get(1),
            http_addr: row.get(2),
            cluster_addr: row.get(3),
            started_at: row.get(4),
            last_heartbeat: row.get(5),
            stopped_at: row.get(6),
            draining: row.get(7),
            alive: row.get(8),
            sessions: row.get(9),
        })
        .collect())
}

/// Live nodes other than `me` that take cluster connections: whom to dial.
pub async fn peers(
    pool: &PgPool,
    me: Uuid,
    ttl: Duration,
) -> Result<Vec<(Uuid, String)>, SessionError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT incarnation, cluster_addr FROM cluster_nodes
              WHERE incarnation <> $1 AND cluster_addr IS NOT NULL AND stopped_at IS NULL
                AND heartbeat_at > now() - make_interval(secs => $2)",
            &[(&me, Type::UUID), (&ttl.as_secs_f64(), Type::FLOAT8)],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
