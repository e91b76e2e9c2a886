//! Every WhatsApp session of the installation as admins watch them: whose, in what state, on
//! which node, how healthy, and how much is waiting to be sent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::AdminError;
use crate::db::DbPool;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionOverview {
    pub user_id: Uuid,
    pub email: String,
    pub user_disabled: bool,
    pub state: String,
    /// The node running the session (holding its live lease); `None` while nobody runs it.
    pub owner_node: Option<String>,
    pub phone: Option<String>,
    pub push_name: Option<String>,
    pub connected_since: Option<DateTime<Utc>>,
    pub restart_count: i32,
    pub last_error: Option<String>,
    /// Seconds since the QR code now on offer was issued; `None` when there is none.
    pub qr_age_seconds: Option<f64>,
    /// Messages queued or being sent.
    pub queued_messages: i64,
    pub updated_at: DateTime<Utc>,
}

/// Every session (or only `only_user`'s), oldest account first, with the node that runs
/// it (the holder of its live lease; none while nobody runs it).
pub async fn list(
    pool: &DbPool,
    only_user: Option<Uuid>,
) -> Result<Vec<SessionOverview>, AdminError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT s.user_id, u.email, u.disabled_at IS NOT NULL AS user_disabled, s.state,
                    (SELECT n.name FROM wa_leases l
                       JOIN cluster_nodes n ON n.incarnation = l.owner
                      WHERE l.session_id = s.id AND l.expires_at > now()) AS owner_node,
                    s.phone, s.push_name,
                    s.connected_since, s.restart_count, s.last_error, s.updated_at,
                    CASE WHEN s.qr_code IS NOT NULL AND s.qr_issued_at IS NOT NULL
                         THEN extract(epoch FROM now() - s.qr_issued_at)::float8 END AS qr_age,
                    (SELECT count(*) FROM messages m
                     WHERE m.user_id = s.user_id AND m.status IN ('queued', 'sending')) AS queued
             FROM wa_sessions s
             JOIN users u ON u.id = s.user_id
             WHERE $1::uuid IS NULL OR s.user_id = $1
             ORDER BY u.created_at, u.id",
            &[(&only_user, Type::UUID)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| SessionOverview {
            user_id: row.get("user_id"),
            email: row.get("email"),
            user_disabled: row.get("user_disabled"),
            state: row.get("state"),
            owner_node: row.get("owner_node"),
            phone: row.get("phone"),
            push_name: row.get("push_name"),
            connected_since: row.get("connected_since"),
            restart_count: row.get("restart_count"),
            last_error: row.get("last_error"),
            qr_age_seconds: row.get("qr_age"),
            queued_messages: row.get("queued"),
            updated_at: row.get("updated_at"),
        })
        .collect())
}

/// Whether `user_id` has a session row (ever started one).
pub async fn exists(pool: &DbPool, user_id: Uuid) -> Result<bool, AdminError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            "SELECT 1 FROM wa_sessions WHERE user_id = $1",
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(row.is_some())
}
