//! LID <-> phone number mappings. A LID maps to one phone number; a phone number
//! resolves to the mapping updated last (ties: written last).

use tokio_postgres::Row;
use tokio_postgres::types::Type;
use wacore::store::error::Result;
use wacore::store::traits::LidPnMappingEntry;

use crate::store::PgStore;
use crate::store::batch::last_write_wins;
use crate::store::error::db_err;

const COLUMNS: &str = "lid, phone_number, created_at, updated_at, learning_source";

fn entry(row: &Row) -> Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: row.try_get("lid").map_err(db_err)?,
        phone_number: row.try_get("phone_number").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
        learning_source: row.try_get("learning_source").map_err(db_err)?,
    })
}

pub(super) async fn by_lid(store: &PgStore, lid: &str) -> Result<Option<LidPnMappingEntry>> {
    let sql =
        format!("SELECT {COLUMNS} FROM wa_lid_pn_mappings WHERE session_id = $1 AND lid = $2");
    store
        .row(&sql, &[(&lid, Type::TEXT)])
        .await?
        .as_ref()
        .map(entry)
        .transpose()
}

pub(super) async fn by_phone(store: &PgStore, phone: &str) -> Result<Option<LidPnMappingEntry>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM wa_lid_pn_mappings WHERE session_id = $1 AND phone_number = $2
         ORDER BY updated_at DESC, write_seq DESC LIMIT 1"
    );
    store
        .row(&sql, &[(&phone, Type::TEXT)])
        .await?
        .as_ref()
        .map(entry)
        .transpose()
}

/// Stores or replaces the mappings, keyed by LID, in one statement.
pub(super) async fn put(store: &PgStore, entries: &[LidPnMappingEntry]) -> Result<()> {
    let entries = last_write_wins(entries, |e| e.lid.as_str());
    if entries.is_empty() {
        return Ok(());
    }
    let lids: Vec<&str> = entries.iter().map(|e| e.lid.as_str()).collect();
    let phones: Vec<&str> = entries.iter().map(|e| e.phone_number.as_str()).collect();
    let created: Vec<i64> = entries.iter().map(|e| e.created_at).collect();
    let updated: Vec<i64> = entries.iter().map(|e| e.updated_at).collect();
    let sources: Vec<&str> = entries.iter().map(|e| e.learning_source.as_str()).collect();
    store
        .execute(
            "INSERT INTO wa_lid_pn_mappings
                 (session_id, lid, phone_number, created_at, updated_at, learning_source)
             SELECT $1, lid, phone_number, created_at, updated_at, learning_source
             FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[])
                  WITH ORDINALITY AS t(lid, phone_number, created_at, updated_at, learning_source, position)
             ORDER BY position
             ON CONFLICT (session_id, lid) DO UPDATE SET
                 phone_number = EXCLUDED.phone_number,
                 created_at = EXCLUDED.created_at,
                 updated_at = EXCLUDED.updated_at,
                 learning_source = EXCLUDED.learning_source,
                 write_seq = nextval('wa_store_write_seq')",
            &[
                (&lids, Type::TEXT_ARRAY),
                (&phones, Type::TEXT_ARRAY),
                (&created, Type::INT8_ARRAY),
                (&updated, Type::INT8_ARRAY),
                (&sources, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn all(store: &PgStore) -> Result<Vec<LidPnMappingEntry>> {
    let sql =
        format!("SELECT {COLUMNS} FROM wa_lid_pn_mappings WHERE session_id = $1 ORDER BY lid");
    store.rows(&sql, &[]).await?.iter().map(entry).collect()
}
