//! The `users` table: accounts, their password hashes, roles and whether they are disabled.
//!
//! Each statement is written once, against any client, so that the admin module can run it
//! inside a transaction together with its audit row; the pool-taking functions are the everyday
//! entry points.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row, error::SqlState, types::Type};
use uuid::Uuid;

use crate::{
    db::{DbError, DbPool},
    domain::{Email, Role},
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    #[serde(skip)]
    pub token_version: i32,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The columns [`from_row`] reads.
pub const COLUMNS: &str =
    "id, email, role, token_version, disabled_at IS NOT NULL AS disabled, created_at";

pub fn from_row(row: &Row) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        role: row
            .get::<_, &str>("role")
            .parse()
            // The column's CHECK constraint admits only the two roles.
            .unwrap_or(Role::User),
        token_version: row.get("token_version"),
        disabled: row.get("disabled"),
        created_at: row.get("created_at"),
    }
}

/// `INSERT`s an account; a taken email is [`UserError::EmailTaken`].
pub async fn insert(
    client: &impl GenericClient,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<User, UserError> {
    let row = client
        .query_typed_one(
            &format!(
                "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)
                 RETURNING {COLUMNS}"
            ),
            &[
                (&Uuid::new_v4(), Type::UUID),
                (&email.as_str(), Type::TEXT),
                (&password_hash, Type::TEXT),
                (&role.as_str(), Type::TEXT),
            ],
        )
        .await
        .map_err(|error| match error.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => UserError::EmailTaken,
            _ => UserError::Db(error.into()),
        })?;
    Ok(from_row(&row))
}

/// Replaces the password and voids every login token issued so far and every unused
/// password reset link.
pub async fn update_password(
    client: &impl GenericClient,
    id: Uuid,
    password_hash: &str,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_typed_opt(
            &format!(
                "WITH voided AS (
                     UPDATE password_resets SET used_at = now()
                     WHERE user_id = $1 AND used_at IS NULL)
                 UPDATE users SET password_hash = $2, token_version = token_version + 1,
                        updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[(&id, Type::UUID), (&password_hash, Type::TEXT)],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Disables (voiding its tokens) or re-enables an account.
pub async fn update_disabled(
    client: &impl GenericClient,
    id: Uuid,
    disabled: bool,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_typed_opt(
            &format!(
                "UPDATE users SET
                     disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END,
                     token_version = token_version + CASE WHEN $2 THEN 1 ELSE 0 END,
                     updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[(&id, Type::UUID), (&disabled, Type::BOOL)],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn update_role(
    client: &impl GenericClient,
    id: Uuid,
    role: Role,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_typed_opt(
            &format!(
                "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[(&id, Type::UUID), (&role.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn create(
    pool: &DbPool,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<User, UserError> {
    let conn = pool.get().await.map_err(DbError::from)?;
    insert(&**conn, email, password_hash, role).await
}

/// The account and its password hash, for logging in.
pub async fn find_by_email(
    pool: &DbPool,
    email: &Email,
) -> Result<Option<(User, String)>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            &format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = $1"),
            &[(&email.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(row.map(|row| (from_row(&row), row.get("password_hash"))))
}

pub async fn find_by_id(pool: &DbPool, id: Uuid) -> Result<Option<User>, DbError> {
    let conn = pool.get().await?;
    // Typed: on every authenticated request, so parse, bind and execute go in one round trip.
    let rows = conn
        .query_typed(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[(&id, Type::UUID)],
        )
        .await?;
    Ok(rows.first().map(from_row))
}

pub async fn password_hash(pool: &DbPool, id: Uuid) -> Result<Option<String>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            "SELECT password_hash FROM users WHERE id = $1",
            &[(&id, Type::UUID)],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Replaces the password (voiding every token) and, with `revoke_api_keys`, the account's API
/// keys too, in one transaction; the account and how many keys were revoked.
pub async fn set_password(
    pool: &DbPool,
    id: Uuid,
    password_hash: &str,
    revoke_api_keys: bool,
) -> Result<Option<(User, u64)>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let Some(user) = update_password(&tx, id, password_hash).await? else {
        return Ok(None);
    };
    let revoked = if revoke_api_keys {
        crate::api_keys::revoke_all(&tx, id).await?
    } else {
        0
    };
    tx.commit().await?;
    Ok(Some((user, revoked)))
}

pub async fn set_disabled(
    pool: &DbPool,
    id: Uuid,
    disabled: bool,
) -> Result<Option<User>, DbError> {
    let conn = pool.get().await?;
    Ok(update_disabled(&**conn, id, disabled).await?)
}

pub async fn set_role(pool: &DbPool, id: Uuid, role: Role) -> Result<Option<User>, DbError> {
    let conn = pool.get().await?;
    Ok(update_role(&**conn, id, role).await?)
}
