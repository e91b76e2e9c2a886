//! Applies the SQL files of `migrations/` (embedded at build time) in order, each in its own
//! transaction, recording what ran in `schema_migrations`.
//!
//! Several nodes may start at once against one database: a transaction-scoped advisory lock makes
//! them take turns, and whoever comes second finds the work done.

use super::{DbError, DbPool};

/// One embedded migration file.
pub struct Migration {
    /// File stem, e.g. `0001_accounts`; the numeric prefix is the version.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration known to this build, oldest first.
pub const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary constant shared by every botwave node; identifies "the migration lock".
const MIGRATION_LOCK_KEY: i64 = 0x0062_6f74_7761_7665; // "botwave" in ASCII

/// The schema version this build expects: the newest embedded migration.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| version_of(m.name)).unwrap_or(0)
}

fn version_of(name: &str) -> i32 {
    name.split('_')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// Brings the database up to [`latest_version`]. Returns the names of the migrations it applied.
pub async fn run(pool: &DbPool) -> Result<Vec<&'static str>, DbError> {
    let mut conn = pool.get().await?;
    // Under the lock too: racing `CREATE TABLE IF NOT EXISTS` statements can still collide in
    // the catalog (on the table's row type or its unique index).
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    tx.commit().await?;

    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let version = version_of(migration.name);
        let tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(migration.sql)
            .await
            .map_err(|source| DbError::Migration {
                name: migration.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &migration.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = migration.name, "applied migration");
        applied.push(migration.name);
    }
    Ok(applied)
}

/// The newest applied version, or `None` before the first migration ran.
pub async fn applied_version(pool: &DbPool) -> Result<Option<i32>, DbError> {
    let conn = pool.get().await?;
    let exists: bool = conn
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = conn
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_embedded_in_version_order_without_gaps() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| version_of(m.name)).collect();
        let expected: Vec<i32> = (1..=versions.len() as i32).collect();
        assert_eq!(versions, expected);
    }
}
