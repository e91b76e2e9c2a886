//! Account management for admins: listing with session and message figures, and every change
//! an admin makes to an account, each in one transaction with its audit row.
//!
//! The last-admin rule: no change may leave the installation without an enabled admin.
//! Changes that could break it take one transaction-scoped advisory lock, so two admins
//! demoting each other at the same moment cannot both succeed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{
    AdminError,
    audit::{self, Target},
};
use crate::{
    db::DbPool,
    domain::{Email, Role},
    users::{self, User, UserError},
};

pub const DEFAULT_PER_PAGE: i64 = 25;
pub const MAX_PER_PAGE: i64 = 100;

/// Arbitrary constant: "the set of admins is being changed".
const ADMIN_SET_LOCK_KEY: i64 = 0x6164_6d69_6e73;

/// One account as the admin user list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// The WhatsApp session, if the user ever started one.
    pub session: Option<SessionSummary>,
    pub messages: MessageCounts,
    /// The plan the account is on now, and its use of the message quotas.
    pub plan: PlanUsageSummary,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanUsageSummary {
    pub id: Uuid,
    pub name: String,
    pub messages_today: i32,
    pub messages_per_day: Option<i32>,
    pub messages_this_month: i32,
    pub messages_per_month: Option<i32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionSummary {
    pub state: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageCounts {
    pub total: i64,
    pub failed: i64,
    pub last_at: Option<DateTime<Utc>>,
}

pub struct UserPage {
    pub users: Vec<UserSummary>,
    pub total: i64,
}

/// Accounts whose email contains `search` (any case), oldest first, one page of them.
pub async fn list(
    pool: &DbPool,
    search: Option<&str>,
    page: i64,
    per_page: i64,
) -> Result<UserPage, AdminError> {
    let conn = pool.get().await?;
    let search = search.map(str::to_lowercase);
    let offset = (page - 1).saturating_mul(per_page);
    let total: i64 = conn
        .query_typed_one(
            "SELECT count(*) FROM users WHERE $1::text IS NULL OR strpos(email, $1) > 0",
            &[(&search, Type::TEXT)],
        )
        .await?
        .get(0);
    // The page is cut first so the per-user counts run only for the accounts shown.
    let rows = conn
        .query_typed(
            "WITH page AS (
                 SELECT id, email, role, disabled_at IS NOT NULL AS disabled, created_at
                 FROM users
                 WHERE $1::text IS NULL OR strpos(email, $1) > 0
                 ORDER BY created_at, id
                 LIMIT $2 OFFSET $3
             )
             SELECT p.*, s.state AS session_state, s.phone AS session_phone,
                    m.total, m.failed, m.last_at,
                    pl.id AS plan_id, pl.name AS plan_name, pl.messages_per_day,
                    pl.messages_per_month,
                    coalesce(CASE WHEN u.day = usage_day() THEN u.day_count END, 0)
                        AS messages_today,
                    coalesce(CASE WHEN u.month = usage_month() THEN u.month_count END, 0)
                        AS messages_this_month
             FROM page p
             JOIN effective_plans e ON e.user_id = p.id
             JOIN plans pl ON pl.id = e.plan_id
             LEFT JOIN plan_usage u ON u.user_id = p.id
             LEFT JOIN wa_sessions s ON s.user_id = p.id
             CROSS JOIN LATERAL (
                 SELECT count(*) AS total,
                        count(*) FILTER (WHERE status = 'failed') AS failed,
                        max(created_at) AS last_at
                 FROM messages WHERE user_id = p.id
             ) m
             ORDER BY p.created_at, p.id",
            &[
                (&search, Type::TEXT),
                (&per_page, Type::INT8),
                (&offset, Type::INT8),
            ],
        )
        .await?;
    let users = rows
        .iter()
        .map(|row| UserSummary {
            id: row.get("id"),
            email: row.get("email"),
            role: row.get::<_, &str>("role").parse().unwrap_or(Role::User),
            disabled: row.get("disabled"),
            created_at: row.get("created_at"),
            session: row
                .get::<_, Option<String>>("session_state")
                .map(|state| SessionSummary {
                    state,
                    phone: row.get("session_phone"),
                }),
            messages: MessageCounts {
                total: row.get("total"),
                failed: row.get("failed"),
                last_at: row.get("last_at"),
            },
            plan: PlanUsageSummary {
                id: row.get("plan_id"),
                name: row.get("plan_name"),
                messages_today: row.get("messages_today"),
                messages_per_day: row.get("messages_per_day"),
                messages_this_month: row.get("messages_this_month"),
                messages_per_month: row.get("messages_per_month"),
            },
        })
        .collect();
    Ok(UserPage { users, total })
}

/// Creates an account with the given role.
pub async fn create(
    pool: &DbPool,
    actor: &User,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = users::insert(&tx, email, password_hash, role)
        .await
        .map_err(|error| match error {
            UserError::EmailTaken => AdminError::EmailTaken,
            UserError::Db(error) => AdminError::Db(error),
        })?;
    audit::record(
        &tx,
        actor,
        "user.create",
        Some(Target::from(&user)),
        json!({ "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Disables (voiding the account's tokens) or re-enables an account.
pub async fn set_disabled(
    pool: &DbPool,
    actor: &User,
    id: Uuid,
    disabled: bool,
) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let before = lock_target(&tx, id).await?;
    if disabled && before.role == Role::Admin {
        ensure_another_admin(&tx, id).await?;
    }
    let user = users::update_disabled(&tx, id, disabled)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audit::record(
        &tx,
        actor,
        action,
        Some(Target::from(&user)),
        json!({ "was_disabled": before.disabled }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Promotes or demotes an account.
pub async fn set_role(
    pool: &DbPool,
    actor: &User,
    id: Uuid,
    role: Role,
) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let before = lock_target(&tx, id).await?;
    if before.role == Role::Admin && role != Role::Admin && !before.disabled {
        ensure_another_admin(&tx, id).await?;
    }
    let user = users::update_role(&tx, id, role)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    audit::record(
        &tx,
        actor,
        "user.role",
        Some(Target::from(&user)),
        json!({ "from": before.role, "to": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Replaces an account's password and voids every token issued to it.
pub async fn set_password(
    pool: &DbPool,
    actor: &User,
    id: Uuid,
    password_hash: &str,
) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = users::update_password(&tx, id, password_hash)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    // Whoever needed a reset may have lost more than the password: keys go with it.
    let keys_revoked = crate::api_keys::revoke_all(&tx, id).await?;
    audit::record(
        &tx,
        actor,
        "user.password_reset",
        Some(Target::from(&user)),
        json!({ "api_keys_revoked": keys_revoked }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// The account, if deleting it now would keep the last-admin rule; for checks before the
/// slow parts of a delete (logging its WhatsApp out) run.
pub async fn check_deletable(pool: &DbPool, id: Uuid) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = lock_target(&tx, id).await?;
    if user.role == Role::Admin && !user.disabled {
        ensure_another_admin(&tx, id).await?;
    }
    Ok(user)
}

/// Deletes an account. Its API keys, WhatsApp session (device state included) and messages go
/// with it (foreign-key cascades); the audit row keeps its id and email, and how many
/// messages went.
pub async fn delete(pool: &DbPool, actor: &User, id: Uuid) -> Result<User, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = lock_target(&tx, id).await?;
    if user.role == Role::Admin && !user.disabled {
        ensure_another_admin(&tx, id).await?;
    }
    let messages: i64 = tx
        .query_typed_one(
            "SELECT count(*) FROM messages WHERE user_id = $1",
            &[(&id, Type::UUID)],
        )
        .await?
        .get(0);
    tx.execute_typed("DELETE FROM users WHERE id = $1", &[(&id, Type::UUID)])
        .await?;
    audit::record(
        &tx,
        actor,
        "user.delete",
        Some(Target::from(&user)),
        json!({ "role": user.role, "messages_deleted": messages }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Serialises changes to the admin set, then locks and returns the target account.
async fn lock_target(tx: &Transaction<'_>, id: Uuid) -> Result<User, AdminError> {
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&ADMIN_SET_LOCK_KEY, Type::INT8)],
    )
    .await?;
    let row = tx
        .query_typed_opt(
            &format!(
                "SELECT {} FROM users WHERE id = $1 FOR UPDATE",
                users::COLUMNS
            ),
            &[(&id, Type::UUID)],
        )
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    Ok(users::from_row(&row))
}

/// Refuses unless an enabled admin other than `leaving` remains.
async fn ensure_another_admin(tx: &Transaction<'_>, leaving: Uuid) -> Result<(), AdminError> {
    let others: i64 = tx
        .query_typed_one(
            "SELECT count(*) FROM users
             WHERE role = 'admin' AND disabled_at IS NULL AND id <> $1",
            &[(&leaving, Type::UUID)],
        )
        .await?
        .get(0);
    if others == 0 {
        return Err(AdminError::LastAdmin);
    }
    Ok(())
}
