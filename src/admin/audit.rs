//! The audit log: one row per admin action, written in the transaction of the change it
//! records, listed newest first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::AdminError;
use crate::{db::DbPool, users::User};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The account an action was done to, as it was at the time.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub id: Uuid,
    pub email: &'a str,
}

impl<'a> From<&'a User> for Target<'a> {
    fn from(user: &'a User) -> Self {
        Target {
            id: user.id,
            email: &user.email,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Uuid,
    pub actor_email: String,
    pub action: String,
    pub target_id: Option<Uuid>,
    pub target_email: Option<String>,
    pub details: Value,
}

/// Records that `actor` did `action` (to `target`). Pass the transaction of the change so
/// both land or neither does.
pub async fn record(
    client: &impl GenericClient,
    actor: &User,
    action: &str,
    target: Option<Target<'_>>,
    details: Value,
) -> Result<(), AdminError> {
    client
        .execute_typed(
            "INSERT INTO audit_log (actor_id, actor_email, action, target_id, target_email, details)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[(&actor.id, Type::UUID), (&actor.email, Type::TEXT), (&action, Type::TEXT), (&target.map(|t| t.id), Type::UUID), (&target.map(|t| t.email), Type::TEXT), (&details, Type::JSONB)],
        )
        .await?;
    Ok(())
}

/// Up to `limit` entries older than `before` (an entry id: the previous page's cursor),
/// newest first.
pub async fn list(
    pool: &DbPool,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<Entry>, AdminError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT id, at, actor_id, actor_email, action, target_id, target_email, details
             FROM audit_log
             WHERE $1::bigint IS NULL OR id < $1
             ORDER BY id DESC
             LIMIT $2",
            &[(&before, Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Entry {
            id: row.get("id"),
            at: row.get("at"),
            actor_id: row.get("actor_id"),
            actor_email: row.get("actor_email"),
            action: row.get("action"),
            target_id: row.get("target_id"),
            target_email: row.get("target_email"),
            details: row.get("details"),
        })
        .collect())
}
