//! App-state sync: sync keys, collection versions, mutation MACs.

use std::collections::HashMap;

use botwave_actors::wacore::appstate::hash::HashState;
use botwave_actors::wacore::appstate::processor::AppStateMutationMAC;
use botwave_actors::wacore::store::traits::{AppStateSyncKey, Backend};

fn sync_key(byte: u8, timestamp: i64) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: vec![byte, 0, byte],
        timestamp,
    }
}

fn mac(index: u8, value: u8) -> AppStateMutationMAC {
    AppStateMutationMAC {
        index_mac: vec![index; 32],
        value_mac: vec![value; 32],
    }
}

fn assert_same_key(got: Option<AppStateSyncKey>, want: &AppStateSyncKey) {
    let got = got.expect("sync key stored");
    assert_eq!(got.key_data, want.key_data);
    assert_eq!(got.fingerprint, want.fingerprint);
    assert_eq!(got.timestamp, want.timestamp);
}

pub async fn sync_keys_round_trip_and_latest<B: Backend>(store: &B) {
    assert!(store.get_sync_key(b"k1").await.unwrap().is_none());
    assert_eq!(store.get_latest_sync_key_id().await.unwrap(), None);

    store.set_sync_key(b"k1", sync_key(1, 100)).await.unwrap();
    store.set_sync_key(b"k2", sync_key(2, 50)).await.unwrap();
    assert_same_key(store.get_sync_key(b"k1").await.unwrap(), &sync_key(1, 100));
    assert_same_key(store.get_sync_key(b"k2").await.unwrap(), &sync_key(2, 50));
    // Latest means stored last, not the largest timestamp.
    assert_eq!(
        store.get_latest_sync_key_id().await.unwrap(),
        Some(b"k2".to_vec())
    );

    store.set_sync_key(b"k1", sync_key(3, 10)).await.unwrap();
    assert_same_key(store.get_sync_key(b"k1").await.unwrap(), &sync_key(3, 10));
    assert_eq!(
        store.get_latest_sync_key_id().await.unwrap(),
        Some(b"k1".to_vec())
    );
}

pub async fn versions_default_round_trip_and_overwrite<B: Backend>(store: &B) {
    let missing = store.get_version("regular").await.unwrap();
    let default = HashState::default();
    assert_eq!(missing.version, default.version);
    assert_eq!(missing.hash, default.hash);
    assert!(missing.index_value_map.is_empty());
    assert!(!missing.mac_mismatch_fatal);

    let mut hash = [0u8; 128];
    hash.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let state = HashState {
        version: 42,
        hash,
        index_value_map: HashMap::from([
            ("aW5kZXgx".to_string(), vec![1; 32]),
            ("aW5kZXgy".to_string(), vec![]),
        ]),
        mac_mismatch_fatal: true,
    };
    store.set_version("regular", state.clone()).await.unwrap();
    let loaded = store.get_version("regular").await.unwrap();
    assert_eq!(loaded.version, 42);
    assert_eq!(loaded.hash, hash);
    assert_eq!(loaded.index_value_map, state.index_value_map);
    assert!(loaded.mac_mismatch_fatal);

    // Other collections are untouched; a new state replaces the whole old one.
    assert_eq!(
        store.get_version("critical_block").await.unwrap().version,
        0
    );
    let replacement = HashState {
        version: 43,
        ..HashState::default()
    };
    store.set_version("regular", replacement).await.unwrap();
    let loaded = store.get_version("regular").await.unwrap();
    assert_eq!(loaded.version, 43);
    assert!(loaded.index_value_map.is_empty());
    assert!(!loaded.mac_mismatch_fatal);
}

pub async fn mutation_macs_round_trip_batch_and_delete<B: Backend>(store: &B) {
    assert_eq!(
        store.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        None
    );
    store.put_mutation_macs("regular", 1, &[]).await.unwrap();
    store
        .put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20), mac(1, 11)])
        .await
        .unwrap();
    store
        .put_mutation_macs("regular", 2, &[mac(3, 30)])
        .await
        .unwrap();
    assert_eq!(
        store.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        Some(vec![11; 32])
    );

    let found = store
        .get_mutation_macs("regular", &[[1; 32], [3; 32], [4; 32]])
        .await
        .unwrap();
    assert_eq!(
        found,
        HashMap::from([([1; 32], vec![11; 32]), ([3; 32], vec![30; 32])])
    );
    assert!(
        store
            .get_mutation_macs("regular", &[])
            .await
            .unwrap()
            .is_empty()
    );

    store
        .delete_mutation_macs("regular", &[vec![1; 32], vec![9; 32]])
        .await
        .unwrap();
    store.delete_mutation_macs("regular", &[]).await.unwrap();
    assert_eq!(
        store.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        Some(vec![20; 32])
    );
}

pub async fn clearing_mutation_macs_touches_one_collection<B: Backend>(store: &B) {
    store
        .put_mutation_macs("regular", 1, &[mac(1, 10)])
        .await
        .unwrap();
    store
        .put_mutation_macs("regular_low", 1, &[mac(1, 99)])
        .await
        .unwrap();
    // The same index MAC lives separately per collection.
    assert_eq!(
        store
            .get_mutation_mac("regular_low", &[1; 32])
            .await
            .unwrap(),
        Some(vec![99; 32])
    );

    store.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(
        store.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_mutation_mac("regular_low", &[1; 32])
            .await
            .unwrap(),
        Some(vec![99; 32])
    );
}
