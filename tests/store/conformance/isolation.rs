//! Two namespaces never see or disturb each other's state.

use std::sync::Arc;

use botwave_actors::wacore::appstate::hash::HashState;
use botwave_actors::wacore::appstate::processor::AppStateMutationMAC;
use botwave_actors::wacore::store::Device;
use botwave_actors::wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    TcTokenEntry,
};

use super::device::{paired_device, persisted};

/// Fills `first` with one of everything, checks `second` sees none of it, then runs
/// `second`'s wide deletes and checks `first` kept everything.
pub async fn namespaces_are_isolated<B: Backend>(first: &B, second: &B) {
    let device = fill_one_of_everything(first).await;
    assert_holds_nothing(second).await;

    // Wide deletes in the second namespace stay there.
    second.clear_all_sender_key_devices().await.unwrap();
    second.clear_mutation_macs("regular").await.unwrap();
    second
        .delete_sender_key_device_rows(&["1:1@lid"])
        .await
        .unwrap();
    assert_eq!(
        second
            .delete_expired_tc_tokens(i64::MAX, i64::MAX)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        second.delete_expired_sent_messages(i64::MAX).await.unwrap(),
        0
    );
    assert_eq!(
        second
            .delete_expired_pending_inbound(i64::MAX)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        second.delete_expired_msg_secrets(i64::MAX).await.unwrap(),
        0
    );

    assert_holds_everything(first, &device).await;
}

/// Stores one item of every kind the backend keeps; returns the device it saved.
pub async fn fill_one_of_everything<B: Backend>(first: &B) -> Device {
    let device = paired_device();
    first.save(&device).await.unwrap();
    first.put_identity("1@lid", [1; 32]).await.unwrap();
    first
        .put_sessions_batch(&[(Arc::from("1@lid"), b"session".to_vec().into())])
        .await
        .unwrap();
    first.store_prekey(1, b"prekey", false).await.unwrap();
    first.store_signed_prekey(1, b"signed").await.unwrap();
    first.put_sender_key("g::1@lid", b"sender").await.unwrap();
    first
        .set_sync_key(
            b"key",
            AppStateSyncKey {
                key_data: vec![1],
                fingerprint: vec![],
                timestamp: 1,
            },
        )
        .await
        .unwrap();
    first
        .set_version(
            "regular",
            HashState {
                version: 5,
                ..HashState::default()
            },
        )
        .await
        .unwrap();
    first
        .put_mutation_macs(
            "regular",
            5,
            &[AppStateMutationMAC {
                index_mac: vec![1; 32],
                value_mac: vec![2; 32],
            }],
        )
        .await
        .unwrap();
    first
        .set_sender_key_status("g@g.us", &[("1:1@lid", true)])
        .await
        .unwrap();
    first
        .put_lid_mapping(&LidPnMappingEntry {
            lid: "100".into(),
            phone_number: "5511".into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "usync".into(),
        })
        .await
        .unwrap();
    first.save_base_key("1@lid", "M", b"base").await.unwrap();
    first
        .update_device_list(DeviceListRecord {
            user: "5511".into(),
            devices: vec![DeviceInfo::new(0, None)],
            timestamp: 1,
            phash: None,
            raw_id: None,
        })
        .await
        .unwrap();
    first.put_group_metadata("g@g.us", b"meta").await.unwrap();
    first
        .put_tc_token(
            "1@lid",
            &TcTokenEntry {
                token: b"t".to_vec(),
                token_timestamp: 1,
                sender_timestamp: Some(1),
            },
        )
        .await
        .unwrap();
    first.store_sent_message("c", "M", b"sent").await.unwrap();
    first
        .store_pending_inbound("c", "s", "M", b"pending")
        .await
        .unwrap();
    first
        .put_msg_secrets(vec![MsgSecretEntry {
            chat: "c".into(),
            sender: "s".into(),
            msg_id: "M".into(),
            secret: [9; 32],
            expires_at: 1,
            message_ts: 1,
        }])
        .await
        .unwrap();
    device
}

/// Checks that nothing stored by [`fill_one_of_everything`] is visible.
pub async fn assert_holds_nothing<B: Backend>(second: &B) {
    assert!(!second.exists().await.unwrap());
    assert!(second.load().await.unwrap().is_none());
    assert_eq!(second.load_identity("1@lid").await.unwrap(), None);
    assert!(!second.has_session("1@lid").await.unwrap());
    assert!(!second.has_signal_state_for_user("1").await.unwrap());
    assert_eq!(second.load_prekey(1).await.unwrap(), None);
    assert_eq!(second.get_max_prekey_id().await.unwrap(), 0);
    assert!(second.load_all_signed_prekeys().await.unwrap().is_empty());
    assert_eq!(second.get_sender_key("g::1@lid").await.unwrap(), None);
    assert!(second.get_sync_key(b"key").await.unwrap().is_none());
    assert_eq!(second.get_latest_sync_key_id().await.unwrap(), None);
    assert_eq!(second.get_version("regular").await.unwrap().version, 0);
    assert_eq!(
        second.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        None
    );
    assert!(
        second
            .get_sender_key_devices("g@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(second.get_all_lid_mappings().await.unwrap().is_empty());
    assert!(second.get_pn_mapping("5511").await.unwrap().is_none());
    assert!(
        !second
            .has_same_base_key("1@lid", "M", b"base")
            .await
            .unwrap()
    );
    assert!(second.get_devices("5511").await.unwrap().is_none());
    assert_eq!(second.get_group_metadata("g@g.us").await.unwrap(), None);
    assert!(second.get_all_tc_token_jids().await.unwrap().is_empty());
    assert_eq!(second.take_sent_message("c", "M").await.unwrap(), None);
    assert_eq!(
        second.get_pending_inbound("c", "s", "M").await.unwrap(),
        None
    );
    assert_eq!(second.get_msg_secret("c", "s", "M").await.unwrap(), None);
}

/// Checks that everything stored by [`fill_one_of_everything`] is still there (taking
/// the sent message on the way).
pub async fn assert_holds_everything<B: Backend>(first: &B, device: &Device) {
    assert_eq!(
        persisted(&first.load().await.unwrap().unwrap()),
        persisted(device)
    );
    assert_eq!(first.load_identity("1@lid").await.unwrap(), Some([1; 32]));
    assert!(first.has_session("1@lid").await.unwrap());
    assert!(first.load_prekey(1).await.unwrap().is_some());
    assert_eq!(first.load_all_signed_prekeys().await.unwrap().len(), 1);
    assert!(first.get_sender_key("g::1@lid").await.unwrap().is_some());
    assert!(first.get_sync_key(b"key").await.unwrap().is_some());
    assert_eq!(
        first.get_latest_sync_key_id().await.unwrap(),
        Some(b"key".to_vec())
    );
    assert!(first.get_pn_mapping("5511").await.unwrap().is_some());
    assert!(
        first
            .has_same_base_key("1@lid", "M", b"base")
            .await
            .unwrap()
    );
    assert!(first.get_devices("5511").await.unwrap().is_some());
    assert!(first.get_group_metadata("g@g.us").await.unwrap().is_some());
    assert_eq!(first.get_version("regular").await.unwrap().version, 5);
    assert_eq!(
        first.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        Some(vec![2; 32])
    );
    assert_eq!(
        first.get_sender_key_devices("g@g.us").await.unwrap(),
        vec![("1:1@lid".to_string(), true)]
    );
    assert_eq!(
        first.get_all_tc_token_jids().await.unwrap(),
        vec!["1@lid".to_string()]
    );
    assert_eq!(
        first.take_sent_message("c", "M").await.unwrap(),
        Some(b"sent".to_vec())
    );
    assert_eq!(
        first.get_pending_inbound("c", "s", "M").await.unwrap(),
        Some(b"pending".to_vec())
    );
    assert_eq!(
        first.get_msg_secret("c", "s", "M").await.unwrap(),
        Some(vec![9; 32])
    );
}
