//! Per-message secrets used to decrypt add-ons (poll votes, reactions, edits) that
//! refer back to a message ([`MsgSecretStore`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_trait::async_trait;
use tokio_postgres::types::Type;
use wacore::store::error::Result;
use wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::PgStore;
use super::codec::count;
use super::error::db_err;

/// Folds entries repeating a `(chat, sender, msg_id)` key into one, with the same rules
/// the upsert applies against a stored row: the secret is the last one written, the
/// deadline never shrinks and a known parent time is never forgotten.
fn merge_repeated_keys(entries: Vec<MsgSecretEntry>) -> Vec<MsgSecretEntry> {
    let mut merged: Vec<MsgSecretEntry> = Vec::with_capacity(entries.len());
    let mut position: HashMap<(String, String, String), usize> = HashMap::new();
    for entry in entries {
        let key = (
            entry.chat.to_string(),
            entry.sender.to_string(),
            entry.msg_id.to_string(),
        );
        match position.entry(key) {
            Entry::Occupied(slot) => {
                let kept = &mut merged[*slot.get()];
                kept.secret = entry.secret;
                kept.expires_at = merge_msg_secret_expiry(kept.expires_at, entry.expires_at);
                kept.message_ts = merge_msg_secret_message_ts(kept.message_ts, entry.message_ts);
            }
            Entry::Vacant(slot) => {
                slot.insert(merged.len());
                merged.push(entry);
            }
        }
    }
    merged
}

#[async_trait]
impl MsgSecretStore for PgStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let entries = merge_repeated_keys(entries);
        if entries.is_empty() {
            return Ok(0);
        }
        let chats: Vec<&str> = entries.iter().map(|e| e.chat.as_ref()).collect();
        let senders: Vec<&str> = entries.iter().map(|e| e.sender.as_ref()).collect();
        let msg_ids: Vec<&str> = entries.iter().map(|e| e.msg_id.as_ref()).collect();
        let secrets: Vec<&[u8]> = entries.iter().map(|e| e.secret.as_slice()).collect();
        let expiries: Vec<i64> = entries.iter().map(|e| e.expires_at).collect();
        let message_times: Vec<i64> = entries.iter().map(|e| e.message_ts).collect();
        // Merge rules of merge_msg_secret_expiry / merge_msg_secret_message_ts:
        // 0 = "never" wins, otherwise the later deadline; the later parent time wins.
        self.execute(
            "INSERT INTO wa_msg_secrets (session_id, chat, sender, msg_id, secret, expires_at, message_ts)
             SELECT $1, chat, sender, msg_id, secret, expires_at, message_ts
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[], $6::int8[], $7::int8[])
                  AS t(chat, sender, msg_id, secret, expires_at, message_ts)
             ON CONFLICT (session_id, chat, sender, msg_id) DO UPDATE SET
                 secret = EXCLUDED.secret,
                 expires_at = CASE
                     WHEN wa_msg_secrets.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0
                     ELSE GREATEST(wa_msg_secrets.expires_at, EXCLUDED.expires_at)
                 END,
                 message_ts = GREATEST(wa_msg_secrets.message_ts, EXCLUDED.message_ts)",
            &[
                (&chats, Type::TEXT_ARRAY),
                (&senders, Type::TEXT_ARRAY),
                (&msg_ids, Type::TEXT_ARRAY),
                (&secrets, Type::BYTEA_ARRAY),
                (&expiries, Type::INT8_ARRAY),
                (&message_times, Type::INT8_ARRAY),
            ],
        )
        .await?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .row(
                "SELECT secret, message_ts FROM wa_msg_secrets
                 WHERE session_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
                &[
                    (&chat, Type::TEXT),
                    (&sender, Type::TEXT),
                    (&msg_id, Type::TEXT),
                ],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            row.try_get(0).map_err(db_err)?,
            row.try_get(1).map_err(db_err)?,
        )))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let deleted = self
            .execute(
                "DELETE FROM wa_msg_secrets
                 WHERE session_id = $1 AND expires_at <> 0 AND expires_at <= $2",
                &[(&cutoff_timestamp, Type::INT8)],
            )
            .await?;
        Ok(count(deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(msg_id: &str, secret: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
        MsgSecretEntry {
            chat: "chat@g.us".into(),
            sender: "1@s.whatsapp.net".into(),
            msg_id: msg_id.into(),
            secret: [secret; 32],
            expires_at,
            message_ts,
        }
    }

    #[test]
    fn repeated_keys_merge_like_sequential_upserts() {
        let merged = merge_repeated_keys(vec![
            entry("a", 1, 100, 50),
            entry("b", 2, 10, 0),
            entry("a", 3, 90, 0),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(&*merged[0].msg_id, "a");
        assert_eq!(merged[0].secret, [3; 32]);
        assert_eq!(merged[0].expires_at, 100);
        assert_eq!(merged[0].message_ts, 50);
        assert_eq!(&*merged[1].msg_id, "b");

        let never = merge_repeated_keys(vec![entry("a", 1, 0, 0), entry("a", 1, 500, 7)]);
        assert_eq!(never[0].expires_at, 0);
        assert_eq!(never[0].message_ts, 7);
    }
}
