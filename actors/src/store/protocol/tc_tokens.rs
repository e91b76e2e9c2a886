//! Trusted-contact privacy tokens. Two writers own one field each (the received token
//! and our sender timestamp); both merges are single upserts so concurrent writers
//! converge without a read-modify-write race.

use tokio_postgres::types::Type;
use wacore::store::error::Result;
use wacore::store::traits::TcTokenEntry;

use crate::store::PgStore;
use crate::store::codec::count;
use crate::store::error::db_err;

pub(super) async fn get(store: &PgStore, jid: &str) -> Result<Option<TcTokenEntry>> {
    let row = store
        .row(
            "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens
             WHERE session_id = $1 AND jid = $2",
            &[(&jid, Type::TEXT)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(TcTokenEntry {
        token: row.try_get(0).map_err(db_err)?,
        token_timestamp: row.try_get(1).map_err(db_err)?,
        sender_timestamp: row.try_get(2).map_err(db_err)?,
    }))
}

/// Replaces the whole entry.
pub(super) async fn put(store: &PgStore, jid: &str, entry: &TcTokenEntry) -> Result<()> {
    store
        .execute(
            "INSERT INTO wa_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id, jid) DO UPDATE SET
                 token = EXCLUDED.token,
                 token_timestamp = EXCLUDED.token_timestamp,
                 sender_timestamp = EXCLUDED.sender_timestamp",
            &[
                (&jid, Type::TEXT),
                (&entry.token, Type::BYTEA),
                (&entry.token_timestamp, Type::INT8),
                (&entry.sender_timestamp, Type::INT8),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete(store: &PgStore, jid: &str) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_tc_tokens WHERE session_id = $1 AND jid = $2",
            &[(&jid, Type::TEXT)],
        )
        .await?;
    Ok(())
}

pub(super) async fn all_jids(store: &PgStore) -> Result<Vec<String>> {
    store
        .rows(
            "SELECT jid FROM wa_tc_tokens WHERE session_id = $1 ORDER BY jid",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0).map_err(db_err))
        .collect()
}

/// Drops rows where neither the received token nor the sender bucket is live.
pub(super) async fn delete_expired(
    store: &PgStore,
    token_cutoff: i64,
    sender_cutoff: i64,
) -> Result<u32> {
    let deleted = store
        .execute(
            "DELETE FROM wa_tc_tokens WHERE session_id = $1
               AND (octet_length(token) = 0 OR token_timestamp < $2)
               AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
            &[(&token_cutoff, Type::INT8), (&sender_cutoff, Type::INT8)],
        )
        .await?;
    Ok(count(deleted))
}

/// Moves the sender timestamp forward (never back), creating a token-less placeholder
/// when the contact has no entry yet.
pub(super) async fn touch_sender_timestamp(
    store: &PgStore,
    jid: &str,
    sender_timestamp: i64,
) -> Result<()> {
    store
        .execute(
            "INSERT INTO wa_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp)
             VALUES ($1, $2, '\\x'::bytea, $3, $3)
             ON CONFLICT (session_id, jid) DO UPDATE SET
                 sender_timestamp = GREATEST(wa_tc_tokens.sender_timestamp, EXCLUDED.sender_timestamp)",
            &[(&jid, Type::TEXT), (&sender_timestamp, Type::INT8)],
        )
        .await?;
    Ok(())
}

/// Stores a received token unless a real token at least as new is already stored,
/// keeping the sender timestamp either way.
pub(super) async fn store_received(
    store: &PgStore,
    jid: &str,
    token: &[u8],
    token_timestamp: i64,
) -> Result<()> {
    store
        .execute(
            "INSERT INTO wa_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp)
             VALUES ($1, $2, $3, $4, NULL)
             ON CONFLICT (session_id, jid) DO UPDATE SET
                 token = EXCLUDED.token,
                 token_timestamp = EXCLUDED.token_timestamp
             WHERE octet_length(wa_tc_tokens.token) = 0
                OR EXCLUDED.token_timestamp >= wa_tc_tokens.token_timestamp",
            &[
                (&jid, Type::TEXT),
                (&token, Type::BYTEA),
                (&token_timestamp, Type::INT8),
            ],
        )
        .await?;
    Ok(())
}
