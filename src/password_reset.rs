//! Password reset links: issuing one for an account (the `password_resets` table keeps only
//! the SHA-256 of its token) and using one to set a new password. A link works once, until it
//! expires; using it voids the account's login tokens and its other links.

use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{
    db::{DbError, DbPool},
    domain::Email,
    users::{self, User},
};

/// Links an account may be sent per hour, whichever node it asks: a cap on the mail anyone
/// can make botwave send to someone else's address.
pub const MAX_LINKS_PER_HOUR: i64 = 3;

/// A link's secret: 256 random bits, URL-safe.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh link's token for the enabled account of `email`, valid for `ttl`; `None` for an
/// unknown or disabled account, or one already sent [`MAX_LINKS_PER_HOUR`] links this hour.
pub async fn issue(pool: &DbPool, email: &Email, ttl: Duration) -> Result<Option<String>, DbError> {
    let token = new_token();
    let conn = pool.get().await?;
    let minutes = i64::try_from(ttl.as_secs() / 60).unwrap_or(i64::MAX).max(1);
    let rows = conn
        .query_typed(
            "WITH target AS (
                 SELECT id FROM users WHERE email = $1 AND disabled_at IS NULL),
             recent AS (
                 SELECT count(*) AS links FROM password_resets r JOIN target t ON r.user_id = t.id
                 WHERE r.created_at > now() - interval '1 hour')
             INSERT INTO password_resets (id, user_id, token_hash, expires_at)
             SELECT $2, target.id, $3, now() + $4 * interval '1 minute'
             FROM target, recent WHERE recent.links < $5
             RETURNING user_id",
            &[
                (&email.as_str(), Type::TEXT),
                (&Uuid::new_v4(), Type::UUID),
                (&digest(&token), Type::BYTEA),
                (&(minutes as f64), Type::FLOAT8),
                (&MAX_LINKS_PER_HOUR, Type::INT8),
            ],
        )
        .await?;
    Ok((!rows.is_empty()).then_some(token))
}

/// Sets `password_hash` as the password of the account `token` was issued for, if the link
/// is unused, unexpired and the account enabled; the account, or `None` for a link that does
/// not (or no longer) work. The password change voids every login token and other link.
pub async fn redeem(
    pool: &DbPool,
    token: &str,
    password_hash: &str,
) -> Result<Option<User>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let used = tx
        .query_typed(
            "UPDATE password_resets r SET used_at = now()
             FROM users u
             WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
               AND u.id = r.user_id AND u.disabled_at IS NULL
             RETURNING r.user_id",
            &[(&digest(token), Type::BYTEA)],
        )
        .await?;
    let Some(user_id) = used.first().map(|row| row.get::<_, Uuid>(0)) else {
        return Ok(None);
    };
    let user = users::update_password(&tx, user_id, password_hash).await?;
    tx.commit().await?;
    Ok(user)
}
