//! An account's own pacing settings, as admins set and reset them, each change in the audit
//! log with the settings it stored.

use serde_json::json;
use tokio_postgres::types::Type;
use uuid::Uuid;

use botwave_actors::pacing::{PacingSettings, store};

use super::{
    AdminError,
    audit::{self, Target},
};
use crate::{
    db::DbPool,
    users::{self, User},
};

/// The account's own settings, or `None` (the node's defaults), once it is known to exist.
pub async fn get(pool: &DbPool, id: Uuid) -> Result<Option<store::StoredPacing>, AdminError> {
    users::find_by_id(pool, id)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    let conn = pool.get().await?;
    Ok(store::get(&**conn, id).await?)
}

/// Stores `settings` (checked) as the account's own.
pub async fn set(
    pool: &DbPool,
    actor: &User,
    id: Uuid,
    settings: &PacingSettings,
) -> Result<store::StoredPacing, AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = target(&tx, id).await?;
    let stored = store::put(&tx, id, settings).await?;
    audit::record(
        &tx,
        actor,
        "user.pacing.set",
        Some(Target::from(&user)),
        json!({ "pacing": settings }),
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// Drops the account's own settings: the node's defaults apply again.
pub async fn reset(pool: &DbPool, actor: &User, id: Uuid) -> Result<(), AdminError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user = target(&tx, id).await?;
    if store::clear(&tx, id).await? {
        audit::record(
            &tx,
            actor,
            "user.pacing.reset",
            Some(Target::from(&user)),
            json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn target(tx: &tokio_postgres::Transaction<'_>, id: Uuid) -> Result<User, AdminError> {
    let row = tx
        .query_typed_opt(
            &format!("SELECT {} FROM users WHERE id = $1", users::COLUMNS),
            &[(&id, Type::UUID)],
        )
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    Ok(users::from_row(&row))
}
