//! The `api_keys` table: keys that authenticate the API on behalf of their owner, within their
//! scopes, and the request rate buckets that a key's every use spends from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use crate::{
    auth::{
        api_key::GeneratedKey,
        request_limit::{Bucket, Rate, RateStatus},
        scope::{self, Scope},
    },
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
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// The key's own request rate, when it has one lower than the account's; `null`: the
    /// account's rate alone applies.
    pub rate_limit: Option<KeyRate>,
}

/// A key's own request rate.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct KeyRate {
    /// Requests per second, sustained.
    pub requests_per_second: f64,
    /// Requests that may arrive at once.
    pub burst: u32,
}

impl From<KeyRate> for Rate {
    fn from(rate: KeyRate) -> Rate {
        Rate {
            per_second: rate.requests_per_second,
            burst: rate.burst,
        }
    }
}

const COLUMNS: &str =
    "id, name, prefix, created_at, last_used_at, scopes, requests_per_second, burst";

fn from_row(row: &Row) -> ApiKey {
    let scopes: Vec<String> = row.get("scopes");
    let per_second: Option<f64> = row.get("requests_per_second");
    let burst: Option<i32> = row.get("burst");
    ApiKey {
        id: row.get("id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        scopes: scope::from_stored(&scopes),
        rate_limit: per_second.zip(burst).map(|(per_second, burst)| KeyRate {
            requests_per_second: per_second,
            burst: u32::try_from(burst).unwrap_or(1),
        }),
    }
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|scope| scope.as_str()).collect()
}

/// The rate columns' values: both set, or both NULL.
fn rate_columns(rate: Option<KeyRate>) -> (Option<f64>, Option<i32>) {
    match rate {
        Some(rate) => (
            Some(rate.requests_per_second),
            Some(i32::try_from(rate.burst).unwrap_or(i32::MAX)),
        ),
        None => (None, None),
    }
}

/// What a new key is: its name, what it may do, and its own rate if it has one.
pub struct NewKey<'a> {
    pub name: &'a str,
    pub scopes: &'a [Scope],
    pub rate_limit: Option<KeyRate>,
}

pub async fn create(
    pool: &DbPool,
    user_id: Uuid,
    new: NewKey<'_>,
    key: &GeneratedKey,
) -> Result<ApiKey, DbError> {
    let conn = pool.get().await?;
    let (per_second, burst) = rate_columns(new.rate_limit);
    let row = conn
        .query_typed_one(
            &format!(
                "INSERT INTO api_keys
                     (id, user_id, name, prefix, key_hash, scopes, requests_per_second, burst)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ),
            &[
                (&Uuid::new_v4(), Type::UUID),
                (&user_id, Type::UUID),
                (&new.name, Type::TEXT),
                (&key.prefix, Type::TEXT),
                (&key.hash, Type::BYTEA),
                (&scope_names(new.scopes), Type::TEXT_ARRAY),
                (&per_second, Type::FLOAT8),
                (&burst, Type::INT4),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// Changes the owner's live key: new `scopes` if given, and a new rate of its own if
/// `rate` is given (`Some(None)` removes it; a new rate starts with a full bucket). `None`
/// when the owner has no such key.
pub async fn change(
    pool: &DbPool,
    user_id: Uuid,
    key_id: Uuid,
    scopes: Option<&[Scope]>,
    rate: Option<Option<KeyRate>>,
) -> Result<Option<ApiKey>, DbError> {
    let conn = pool.get().await?;
    let scopes = scopes.map(scope_names);
    let rate_given = rate.is_some();
    let (per_second, burst) = rate_columns(rate.flatten());
    let row = conn
        .query_typed_opt(
            &format!(
                "UPDATE api_keys
                 SET scopes = COALESCE($3, scopes),
                     requests_per_second = CASE WHEN $4 THEN $5 ELSE requests_per_second END,
                     burst = CASE WHEN $4 THEN $6 ELSE burst END,
                     bucket_tokens = CASE WHEN $4 THEN NULL ELSE bucket_tokens END,
                     bucket_refilled_at = CASE WHEN $4 THEN NULL ELSE bucket_refilled_at END
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
                 RETURNING {COLUMNS}"
            ),
            &[
                (&key_id, Type::UUID),
                (&user_id, Type::UUID),
                (&scopes, Type::TEXT_ARRAY),
                (&rate_given, Type::BOOL),
                (&per_second, Type::FLOAT8),
                (&burst, Type::INT4),
            ],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
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

/// A live key, its owner, and what its use just cost.
pub struct Authenticated {
    pub key: ApiKey,
    pub user: User,
    /// Whether the request may go on under the buckets it spent from, and what to tell the
    /// client about them.
    pub rate: RateStatus,
}

/// The owner of a live key with this digest, recording the use and spending one token from
/// the account's bucket (at `account_rate`) and from the key's own, if it has one — from both,
/// or, when either is empty, from neither (the request is then refused).
///
/// The key and account rows are locked while it runs (`FOR NO KEY UPDATE`, which inserts
/// referencing them do not wait for), so concurrent requests of one account — on any node —
/// spend from the buckets one after the other. The account row is locked first, as every
/// transaction that writes both (password changes and resets, deletion) does, so that none of
/// them can deadlock with a request. A
/// bucket is its tokens at a time; it is refilled by the time passed since, up to its size.
/// `last_used_at` is kept to the minute, so a key without a rate of its own is written at
/// most once a minute.
pub async fn authenticate(
    pool: &DbPool,
    key_hash: &[u8],
    account_rate: Rate,
) -> Result<Option<Authenticated>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // The account row first, in a statement of its own: the one below then reads the rows as
    // they are once they are this request's to change. Locked and updated in one statement,
    // a row another request had changed meanwhile was updated through its old version, and
    // concurrent requests of one key deadlocked on that version's tuple lock.
    tx.execute_typed(
        "SELECT 1 FROM users
         WHERE id = (SELECT user_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL)
         FOR NO KEY UPDATE",
        &[(&key_hash, Type::BYTEA)],
    )
    .await?;
    let account_per_second = account_rate.per_second;
    let account_burst = f64::from(account_rate.burst);
    let rows = tx
        .query_typed(
            "WITH found AS (
                 SELECT k.id, k.name, k.prefix, k.created_at, k.last_used_at, k.scopes,
                        k.requests_per_second, k.burst,
                        u.id AS user_id, u.email, u.role, u.token_version,
                        u.disabled_at IS NOT NULL AS disabled, u.created_at AS user_created_at,
                        -- NULL: the key has no bucket of its own.
                        least(k.burst::float8,
                              COALESCE(k.bucket_tokens
                                       + greatest(0, extract(epoch FROM now() - k.bucket_refilled_at)::float8)
                                         * k.requests_per_second,
                                       k.burst::float8)) AS key_tokens,
                        least($3,
                              COALESCE(u.request_tokens
                                       + greatest(0, extract(epoch FROM now() - u.request_refilled_at)::float8)
                                         * $2,
                                       $3)) AS user_tokens,
                        k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' AS stale
                 FROM users u JOIN api_keys k ON k.user_id = u.id
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL
                 FOR NO KEY UPDATE OF u, k),
             decided AS (
                 SELECT found.*, COALESCE(key_tokens >= 1, true) AND user_tokens >= 1 AS allowed
                 FROM found),
             touched AS (
                 UPDATE api_keys k
                 SET last_used_at = CASE WHEN d.stale THEN now() ELSE k.last_used_at END,
                     bucket_tokens = d.key_tokens - CASE WHEN d.allowed THEN 1 ELSE 0 END,
                     bucket_refilled_at = CASE WHEN d.key_tokens IS NOT NULL
                                               THEN greatest(k.bucket_refilled_at, now()) END
                 FROM decided d
                 WHERE k.id = d.id AND (d.stale OR d.key_tokens IS NOT NULL)
                 RETURNING k.last_used_at),
             spent AS (
                 UPDATE users u
                 SET request_tokens = d.user_tokens - CASE WHEN d.allowed THEN 1 ELSE 0 END,
                     request_refilled_at = greatest(u.request_refilled_at, now())
                 FROM decided d
                 WHERE u.id = d.user_id)
             SELECT d.id, d.name, d.prefix, d.created_at, d.scopes, d.requests_per_second, d.burst,
                    COALESCE((SELECT last_used_at FROM touched), d.last_used_at) AS last_used_at,
                    d.user_id, d.email, d.role, d.token_version, d.disabled, d.user_created_at,
                    d.allowed,
                    d.key_tokens - CASE WHEN d.allowed THEN 1 ELSE 0 END AS key_left,
                    d.user_tokens - CASE WHEN d.allowed THEN 1 ELSE 0 END AS user_left
             FROM decided d",
            &[
                (&key_hash, Type::BYTEA),
                (&account_per_second, Type::FLOAT8),
                (&account_burst, Type::FLOAT8),
            ],
        )
        .await?;
    tx.commit().await?;
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
        let key = from_row(&row);
        let mut buckets = vec![Bucket {
            rate: account_rate,
            tokens: row.get("user_left"),
        }];
        if let (Some(rate), Some(tokens)) = (key.rate_limit, row.get::<_, Option<f64>>("key_left"))
        {
            buckets.push(Bucket {
                rate: rate.into(),
                tokens,
            });
        }
        let rate = RateStatus::of(row.get("allowed"), &buckets);
        Authenticated { key, user, rate }
    }))
}
