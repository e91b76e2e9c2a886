//! Signal state: identities, sessions, pre-keys, signed pre-keys, sender keys.

use std::sync::Arc;

use botwave_actors::wacore::store::traits::Backend;

use super::sorted;

pub async fn identities_round_trip_overwrite_and_delete<B: Backend>(store: &B) {
    let address = "5511999990001:2@s.whatsapp.net";
    assert_eq!(store.load_identity(address).await.unwrap(), None);

    store.put_identity(address, [1; 32]).await.unwrap();
    assert_eq!(store.load_identity(address).await.unwrap(), Some([1; 32]));

    store.put_identity(address, [2; 32]).await.unwrap();
    assert_eq!(store.load_identity(address).await.unwrap(), Some([2; 32]));

    store.delete_identity(address).await.unwrap();
    assert_eq!(store.load_identity(address).await.unwrap(), None);
    // Deleting what is not there is not an error.
    store.delete_identity(address).await.unwrap();
}

pub async fn identity_batch_last_write_wins<B: Backend>(store: &B) {
    store.put_identity("a@lid", [9; 32]).await.unwrap();
    store.put_identities_batch(&[]).await.unwrap();
    store
        .put_identities_batch(&[
            (Arc::from("a@lid"), [1; 32]),
            (Arc::from("b@lid"), [2; 32]),
            (Arc::from("a@lid"), [3; 32]),
        ])
        .await
        .unwrap();
    assert_eq!(store.load_identity("a@lid").await.unwrap(), Some([3; 32]));
    assert_eq!(store.load_identity("b@lid").await.unwrap(), Some([2; 32]));
}

pub async fn sessions_round_trip_overwrite_and_delete<B: Backend>(store: &B) {
    let address = "100000012345678:3@lid";
    assert_eq!(store.get_session(address).await.unwrap(), None);
    assert!(!store.has_session(address).await.unwrap());

    store.put_session(address, b"first").await.unwrap();
    assert_eq!(
        store.get_session(address).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(store.has_session(address).await.unwrap());

    store.put_session(address, b"second").await.unwrap();
    assert_eq!(
        store.get_session(address).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    // An empty record is still a record.
    store.put_session("empty@lid", b"").await.unwrap();
    assert_eq!(
        store.get_session("empty@lid").await.unwrap().as_deref(),
        Some(&b""[..])
    );

    store.delete_session(address).await.unwrap();
    assert_eq!(store.get_session(address).await.unwrap(), None);
    assert!(!store.has_session(address).await.unwrap());
}

pub async fn session_batch_inserts_and_updates<B: Backend>(store: &B) {
    store.put_session("old@lid", b"stale").await.unwrap();
    store.put_sessions_batch(&[]).await.unwrap();
    store
        .put_sessions_batch(&[
            (Arc::from("old@lid"), b"fresh".to_vec().into()),
            (Arc::from("new@lid"), b"one".to_vec().into()),
            (Arc::from("new@lid"), b"two".to_vec().into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get_session("old@lid").await.unwrap().as_deref(),
        Some(&b"fresh"[..])
    );
    assert_eq!(
        store.get_session("new@lid").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

pub async fn signal_state_for_user_matches_user_prefix_only<B: Backend>(store: &B) {
    assert!(!store.has_signal_state_for_user("123").await.unwrap());

    // A longer user and a user differing after the prefix do not count.
    store
        .put_session("1234@s.whatsapp.net", b"s")
        .await
        .unwrap();
    store.put_session("12@s.whatsapp.net", b"s").await.unwrap();
    assert!(!store.has_signal_state_for_user("123").await.unwrap());

    store
        .put_session("123:7@s.whatsapp.net", b"s")
        .await
        .unwrap();
    assert!(store.has_signal_state_for_user("123").await.unwrap());
    store.delete_session("123:7@s.whatsapp.net").await.unwrap();
    assert!(!store.has_signal_state_for_user("123").await.unwrap());

    // An identity alone is Signal state too, for device 0 as well.
    store.put_identity("123@lid", [5; 32]).await.unwrap();
    assert!(store.has_signal_state_for_user("123").await.unwrap());
    assert!(!store.has_signal_state_for_user("124").await.unwrap());
}

pub async fn prekeys_round_trip<B: Backend>(store: &B) {
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 0);
    assert_eq!(store.load_prekey(7).await.unwrap(), None);

    store.store_prekey(7, b"seven", false).await.unwrap();
    store.store_prekey(3, b"three", true).await.unwrap();
    assert_eq!(
        store.load_prekey(7).await.unwrap().as_deref(),
        Some(&b"seven"[..])
    );
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 7);

    store.store_prekey(7, b"seven again", true).await.unwrap();
    assert_eq!(
        store.load_prekey(7).await.unwrap().as_deref(),
        Some(&b"seven again"[..])
    );

    store.remove_prekey(7).await.unwrap();
    assert_eq!(store.load_prekey(7).await.unwrap(), None);
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 3);

    // Ids use the full u32 range.
    store.store_prekey(u32::MAX, b"max", false).await.unwrap();
    assert_eq!(store.get_max_prekey_id().await.unwrap(), u32::MAX);
}

pub async fn prekey_batches<B: Backend>(store: &B) {
    store.store_prekeys_batch(&[], false).await.unwrap();
    store
        .store_prekeys_batch(
            &[
                (1, b"one".to_vec().into()),
                (2, b"two".to_vec().into()),
                (3, b"three".to_vec().into()),
                (2, b"two again".to_vec().into()),
            ],
            false,
        )
        .await
        .unwrap();

    let loaded = store.load_prekeys_batch(&[3, 99, 1, 2]).await.unwrap();
    let loaded: Vec<(u32, Vec<u8>)> = loaded.into_iter().map(|(id, r)| (id, r.to_vec())).collect();
    // Only the keys that exist, in the order asked for.
    assert_eq!(
        loaded,
        vec![
            (3, b"three".to_vec()),
            (1, b"one".to_vec()),
            (2, b"two again".to_vec()),
        ]
    );
    assert!(store.load_prekeys_batch(&[]).await.unwrap().is_empty());
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 3);
}

pub async fn marking_uploaded_never_resurrects_prekeys<B: Backend>(store: &B) {
    store
        .store_prekeys_batch(
            &[(10, b"a".to_vec().into()), (11, b"b".to_vec().into())],
            false,
        )
        .await
        .unwrap();
    store.remove_prekey(10).await.unwrap();
    store.mark_prekeys_uploaded(&[10, 11, 12]).await.unwrap();
    store.mark_prekeys_uploaded(&[]).await.unwrap();

    assert_eq!(store.load_prekey(10).await.unwrap(), None);
    assert_eq!(store.load_prekey(12).await.unwrap(), None);
    assert_eq!(
        store.load_prekey(11).await.unwrap().as_deref(),
        Some(&b"b"[..])
    );
}

pub async fn signed_prekeys_round_trip<B: Backend>(store: &B) {
    assert_eq!(store.load_signed_prekey(1).await.unwrap(), None);
    assert!(store.load_all_signed_prekeys().await.unwrap().is_empty());

    store.store_signed_prekey(2, b"two").await.unwrap();
    store.store_signed_prekey(1, b"one").await.unwrap();
    store.store_signed_prekey(2, b"two v2").await.unwrap();
    assert_eq!(
        store.load_signed_prekey(2).await.unwrap(),
        Some(b"two v2".to_vec())
    );
    assert_eq!(
        sorted(store.load_all_signed_prekeys().await.unwrap()),
        vec![(1, b"one".to_vec()), (2, b"two v2".to_vec())]
    );

    store.remove_signed_prekey(1).await.unwrap();
    assert_eq!(
        store.load_all_signed_prekeys().await.unwrap(),
        vec![(2, b"two v2".to_vec())]
    );
}

pub async fn sender_keys_round_trip_and_batch<B: Backend>(store: &B) {
    let name = "120363000000000001@g.us::5511999990001:2@s.whatsapp.net";
    assert_eq!(store.get_sender_key(name).await.unwrap(), None);

    store.put_sender_key(name, b"k1").await.unwrap();
    store.put_sender_key(name, b"k2").await.unwrap();
    assert_eq!(
        store.get_sender_key(name).await.unwrap(),
        Some(b"k2".to_vec())
    );

    store.put_sender_keys_batch(&[]).await.unwrap();
    store
        .put_sender_keys_batch(&[
            (Arc::from(name), b"k3".to_vec().into()),
            (Arc::from("g@g.us::other"), b"o1".to_vec().into()),
            (Arc::from("g@g.us::other"), b"o2".to_vec().into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get_sender_key(name).await.unwrap(),
        Some(b"k3".to_vec())
    );
    assert_eq!(
        store.get_sender_key("g@g.us::other").await.unwrap(),
        Some(b"o2".to_vec())
    );

    store.delete_sender_key(name).await.unwrap();
    assert_eq!(store.get_sender_key(name).await.unwrap(), None);
    assert!(
        store
            .get_sender_key("g@g.us::other")
            .await
            .unwrap()
            .is_some()
    );
}
