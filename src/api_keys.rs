//! The `api_keys` table: keys that authenticate the send API on behalf of their owner.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use crate::{
    auth::api_key::GeneratedKey,
    db::{DbError, DbPool},
    users::User,
};

/// A key as listed to its owner: never the secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, created_at, last_used_at";

fn from_row(row: &Row) -> ApiKey {
    ApiKey {
        id: row.get("id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
    }
}

pub async fn create(
    pool: &DbPool,
    user_id: Uuid,
    name: &str,
    key: &GeneratedKey,
) -> Result<ApiKey, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            &format!(
                "INSERT INTO api_keys (id, user_id, name, prefix, key_hash)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                (&Uuid::new_v4(), Type::UUID),
                (&user_id, Type::UUID),
                (&name, Type::TEXT),
                (&key.prefix, Type::TEXT),
                (&key.hash, Type::BYTEA),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// The owner's keys that still work, newest first.
pub async fn list(pool: &DbPool, user_id: Uuid) -> Result<Vec<ApiKey>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL
                 ORDER BY created_at DESC"
            ),
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes the owner's key. `false` when the owner has no such live key.
pub async fn revoke(pool: &DbPool, user_id: Uuid, key_id: Uuid) -> Result<bool, DbError> {
    let conn = pool.get().await?;
    let revoked = conn
        .execute_typed(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[(&key_id, Type::UUID), (&user_id, Type::UUID)],
        )
        .await?;
    Ok(revoked == 1)
}

/// Revokes every live key of `user_id` (after a password reset, or when its owner asks along
/// with a password change); how many there were.
pub async fn revoke_all(
    client: &impl tokio_postgres::GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute_typed(
            "UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[(&user_id, Type::UUID)],
        )
        .await
}

/// How many live keys `user_id` has.
pub async fn count(pool: &DbPool, user_id: Uuid) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL",
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(row.get(0))
}

/// The owner of a live key with this digest, recording the use. `last_used_at` is kept
/// to the minute: a busy integration's every request would otherwise update (and lock)
/// its key's row, and concurrent requests with one key would queue on that lock.
pub async fn authenticate(
    pool: &DbPool,
    key_hash: &[u8],
) -> Result<Option<(ApiKey, User)>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "WITH found AS (
                 SELECT k.id, k.name, k.prefix, k.created_at, k.last_used_at,
                        u.id AS user_id, u.email, u.role, u.token_version,
                        u.disabled_at IS NOT NULL AS disabled, u.created_at AS user_created_at
                 FROM api_keys k JOIN users u ON u.id = k.user_id
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL),
             touched AS (
                 UPDATE api_keys k SET last_used_at = now()
                 FROM found
                 WHERE k.id = found.id
                   AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
                 RETURNING k.last_used_at)
             SELECT found.id, found.name, found.prefix, found.created_at,
                    COALESCE((SELECT last_used_at FROM touched), found.last_used_at) AS last_used_at,
                    found.user_id, found.email, found.role, found.token_version, found.disabled,
                    found.user_created_at
             FROM found",
            &[(&key_hash, Type::BYTEA)],
        )
        .await?;
    let row = rows.into_iter().next();
    Ok(row.map(|row| {
        let user = User {
            id: row.get("user_id"),
            email: row.get("email"),
            role: row
                .get::<_, &str>("role")
                .parse()
                .unwrap_or(crate::domain::Role::User),
            token_version: row.get("token_version"),
            disabled: row.get("disabled"),
            created_at: row.get("user_created_at"),
        };
        (from_row(&row), user)
    }))
}
