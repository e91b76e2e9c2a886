//! Message secrets: keys, merge rules on re-persist, expiry.

use botwave_actors::wacore::store::traits::{Backend, MsgSecretEntry};

const CHAT: &str = "120363000000000001@g.us";
const SENDER: &str = "5511@s.whatsapp.net";

fn entry(msg_id: &str, secret: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: CHAT.into(),
        sender: SENDER.into(),
        msg_id: msg_id.into(),
        secret: [secret; 32],
        expires_at,
        message_ts,
    }
}

pub async fn msg_secrets_round_trip_keyed_by_all_three_columns<B: Backend>(store: &B) {
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "M1").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "M1")
            .await
            .unwrap(),
        None
    );

    store
        .put_msg_secret(CHAT, SENDER, "M1", &[1; 32])
        .await
        .unwrap();
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "M1").await.unwrap(),
        Some(vec![1; 32])
    );
    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "M1")
            .await
            .unwrap(),
        Some((vec![1; 32], 0))
    );

    // Same message id under another chat or sender is another secret.
    store
        .put_msg_secret("other@g.us", SENDER, "M1", &[2; 32])
        .await
        .unwrap();
    store
        .put_msg_secret(CHAT, "other@s.whatsapp.net", "M1", &[3; 32])
        .await
        .unwrap();
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "M1").await.unwrap(),
        Some(vec![1; 32])
    );
    assert_eq!(
        store
            .get_msg_secret("other@g.us", SENDER, "M1")
            .await
            .unwrap(),
        Some(vec![2; 32])
    );
    assert_eq!(
        store
            .get_msg_secret(CHAT, "other@s.whatsapp.net", "M1")
            .await
            .unwrap(),
        Some(vec![3; 32])
    );

    // Batches report how many entries they were given, repeats included.
    assert_eq!(store.put_msg_secrets(vec![]).await.unwrap(), 0);
    let stored = store
        .put_msg_secrets(vec![
            entry("B1", 4, 0, 7),
            entry("B2", 5, 0, 0),
            entry("B1", 6, 0, 0),
        ])
        .await
        .unwrap();
    assert_eq!(stored, 3);
    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "B1")
            .await
            .unwrap(),
        Some((vec![6; 32], 7))
    );
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "B2").await.unwrap(),
        Some(vec![5; 32])
    );
}

pub async fn msg_secret_upserts_merge_deadlines_and_times<B: Backend>(store: &B) {
    let now = 1_700_000_000;
    store
        .put_msg_secrets(vec![
            entry("later", 1, now + 100, 50),
            entry("never", 1, 0, 0),
            entry("to-never", 1, now + 100, 60),
        ])
        .await
        .unwrap();
    store
        .put_msg_secrets(vec![
            // An earlier deadline never shrinks the window; the secret still updates.
            entry("later", 2, now + 10, 0),
            // A deadline never replaces "never".
            entry("never", 2, now + 10, 40),
            // "never" replaces a deadline.
            entry("to-never", 2, 0, 70),
        ])
        .await
        .unwrap();

    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "later")
            .await
            .unwrap(),
        Some((vec![2; 32], 50))
    );
    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "never")
            .await
            .unwrap(),
        Some((vec![2; 32], 40))
    );
    assert_eq!(
        store
            .get_msg_secret_with_ts(CHAT, SENDER, "to-never")
            .await
            .unwrap(),
        Some((vec![2; 32], 70))
    );

    // The merged deadlines show in what expiry removes: only "later" had one left.
    assert_eq!(store.delete_expired_msg_secrets(now + 99).await.unwrap(), 0);
    assert_eq!(
        store.delete_expired_msg_secrets(now + 100).await.unwrap(),
        1
    );
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "later").await.unwrap(),
        None
    );
    assert!(
        store
            .get_msg_secret(CHAT, SENDER, "never")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_msg_secret(CHAT, SENDER, "to-never")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn expired_msg_secrets_pruned_by_deadline<B: Backend>(store: &B) {
    store
        .put_msg_secrets(vec![
            entry("past", 1, 100, 0),
            entry("at-cutoff", 1, 200, 0),
            entry("future", 1, 300, 0),
            entry("never", 1, 0, 0),
        ])
        .await
        .unwrap();
    assert_eq!(store.delete_expired_msg_secrets(200).await.unwrap(), 2);
    assert_eq!(
        store.get_msg_secret(CHAT, SENDER, "past").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_msg_secret(CHAT, SENDER, "at-cutoff")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .get_msg_secret(CHAT, SENDER, "future")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_msg_secret(CHAT, SENDER, "never")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 1);
    assert!(
        store
            .get_msg_secret(CHAT, SENDER, "never")
            .await
            .unwrap()
            .is_some()
    );
}
