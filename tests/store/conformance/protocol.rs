//! Protocol bookkeeping: sender-key devices, LID mappings, base keys, device lists,
//! group metadata, tc tokens, sent messages, pending inbound.

use botwave_actors::wacore::store::traits::{
    Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow,
    TcTokenEntry,
};
use botwave_actors::wacore::time::now_secs;

use super::sorted;

const GROUP: &str = "120363000000000001@g.us";
const OTHER_GROUP: &str = "120363000000000002@g.us";

pub async fn sender_key_devices_track_status_per_group<B: Backend>(store: &B) {
    assert!(
        store
            .get_sender_key_devices(GROUP)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .set_sender_key_status(GROUP, &[("1:1@lid", true), ("2:1@lid", false)])
        .await
        .unwrap();
    store
        .set_sender_key_status(
            GROUP,
            &[("2:1@lid", true), ("3:1@lid", false), ("3:1@lid", true)],
        )
        .await
        .unwrap();
    store
        .set_sender_key_status(OTHER_GROUP, &[("1:1@lid", false)])
        .await
        .unwrap();
    store.set_sender_key_status(GROUP, &[]).await.unwrap();
    assert_eq!(
        sorted(store.get_sender_key_devices(GROUP).await.unwrap()),
        vec![
            ("1:1@lid".to_string(), true),
            ("2:1@lid".to_string(), true),
            ("3:1@lid".to_string(), true),
        ]
    );

    store.clear_sender_key_devices(GROUP).await.unwrap();
    assert!(
        store
            .get_sender_key_devices(GROUP)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_sender_key_devices(OTHER_GROUP).await.unwrap(),
        vec![("1:1@lid".to_string(), false)]
    );

    store.clear_all_sender_key_devices().await.unwrap();
    assert!(
        store
            .get_sender_key_devices(OTHER_GROUP)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn sender_key_device_rows_deleted_across_groups<B: Backend>(store: &B) {
    store
        .set_sender_key_status(GROUP, &[("1:1@lid", true), ("2:1@lid", true)])
        .await
        .unwrap();
    store
        .set_sender_key_status(OTHER_GROUP, &[("1:1@lid", true), ("3:1@lid", true)])
        .await
        .unwrap();
    store.delete_sender_key_device_rows(&[]).await.unwrap();
    store
        .delete_sender_key_device_rows(&["1:1@lid", "9:1@lid"])
        .await
        .unwrap();
    assert_eq!(
        store.get_sender_key_devices(GROUP).await.unwrap(),
        vec![("2:1@lid".to_string(), true)]
    );
    assert_eq!(
        store.get_sender_key_devices(OTHER_GROUP).await.unwrap(),
        vec![("3:1@lid".to_string(), true)]
    );
}

fn mapping(lid: &str, phone: &str, updated_at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.to_string(),
        phone_number: phone.to_string(),
        created_at: updated_at - 10,
        updated_at,
        learning_source: "usync".to_string(),
    }
}

fn lid_of(entry: Option<LidPnMappingEntry>) -> Option<String> {
    entry.map(|e| e.lid)
}

pub async fn lid_mappings_resolve_both_ways<B: Backend>(store: &B) {
    assert!(store.get_lid_mapping("100").await.unwrap().is_none());
    assert!(store.get_pn_mapping("5511").await.unwrap().is_none());

    store
        .put_lid_mapping(&mapping("100", "5511", 1000))
        .await
        .unwrap();
    let by_lid = store.get_lid_mapping("100").await.unwrap().unwrap();
    assert_eq!(by_lid.phone_number, "5511");
    assert_eq!(by_lid.created_at, 990);
    assert_eq!(by_lid.updated_at, 1000);
    assert_eq!(by_lid.learning_source, "usync");
    assert_eq!(
        lid_of(store.get_pn_mapping("5511").await.unwrap()),
        Some("100".into())
    );

    // Remapping a LID to another phone moves it off the old phone.
    let mut moved = mapping("100", "5522", 3000);
    moved.learning_source = "peer_pn_message".into();
    store.put_lid_mapping(&moved).await.unwrap();
    let by_lid = store.get_lid_mapping("100").await.unwrap().unwrap();
    assert_eq!(by_lid.phone_number, "5522");
    assert_eq!(by_lid.learning_source, "peer_pn_message");
    assert_eq!(
        lid_of(store.get_pn_mapping("5522").await.unwrap()),
        Some("100".into())
    );
    assert!(store.get_pn_mapping("5511").await.unwrap().is_none());

    // A newer LID for the same phone becomes the phone's LID.
    store
        .put_lid_mapping(&mapping("200", "5533", 4000))
        .await
        .unwrap();
    store
        .put_lid_mapping(&mapping("300", "5533", 5000))
        .await
        .unwrap();
    assert_eq!(
        lid_of(store.get_pn_mapping("5533").await.unwrap()),
        Some("300".into())
    );
    assert_eq!(
        lid_of(store.get_lid_mapping("200").await.unwrap()),
        Some("200".into())
    );
}

pub async fn lid_mapping_batch_and_listing<B: Backend>(store: &B) {
    assert!(store.get_all_lid_mappings().await.unwrap().is_empty());
    store.put_lid_mappings(&[]).await.unwrap();
    store
        .put_lid_mappings(&[
            mapping("1", "551", 10),
            mapping("2", "552", 10),
            mapping("1", "553", 20),
        ])
        .await
        .unwrap();
    let all = store.get_all_lid_mappings().await.unwrap();
    let pairs = sorted(
        all.into_iter()
            .map(|e| (e.lid, e.phone_number, e.updated_at))
            .collect(),
    );
    assert_eq!(
        pairs,
        vec![
            ("1".to_string(), "553".to_string(), 20),
            ("2".to_string(), "552".to_string(), 10),
        ]
    );
    assert_eq!(
        lid_of(store.get_pn_mapping("553").await.unwrap()),
        Some("1".into())
    );
    assert_eq!(
        lid_of(store.get_pn_mapping("552").await.unwrap()),
        Some("2".into())
    );
}

pub async fn base_keys_detect_collisions<B: Backend>(store: &B) {
    let address = "5511:3@s.whatsapp.net";
    assert!(
        !store
            .has_same_base_key(address, "M1", b"key")
            .await
            .unwrap()
    );

    store.save_base_key(address, "M1", b"key").await.unwrap();
    assert!(
        store
            .has_same_base_key(address, "M1", b"key")
            .await
            .unwrap()
    );
    assert!(
        !store
            .has_same_base_key(address, "M1", b"other")
            .await
            .unwrap()
    );
    assert!(
        !store
            .has_same_base_key(address, "M2", b"key")
            .await
            .unwrap()
    );

    store.save_base_key(address, "M1", b"other").await.unwrap();
    assert!(
        store
            .has_same_base_key(address, "M1", b"other")
            .await
            .unwrap()
    );

    store.delete_base_key(address, "M1").await.unwrap();
    assert!(
        !store
            .has_same_base_key(address, "M1", b"other")
            .await
            .unwrap()
    );
}

fn device_list(user: &str, devices: Vec<DeviceInfo>, timestamp: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.to_string(),
        devices,
        timestamp,
        phash: None,
        raw_id: None,
    }
}

/// The record's fields in comparable form.
fn summary(record: &DeviceListRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap()
}

pub async fn device_lists_round_trip_and_batch<B: Backend>(store: &B) {
    assert!(store.get_devices("5511").await.unwrap().is_none());

    let mut record = device_list(
        "5511",
        vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(7, Some(3)).with_hosting(true),
            DeviceInfo::new(u32::MAX, Some(u32::MAX)),
        ],
        1700,
    );
    record.phash = Some("2:abcd".into());
    record.raw_id = Some(u32::MAX);
    store.update_device_list(record.clone()).await.unwrap();
    let loaded = store.get_devices("5511").await.unwrap().unwrap();
    assert_eq!(summary(&loaded), summary(&record));

    // A new record replaces the old one entirely.
    let replacement = device_list("5511", vec![], 1800);
    store.update_device_list(replacement.clone()).await.unwrap();
    assert_eq!(
        summary(&store.get_devices("5511").await.unwrap().unwrap()),
        summary(&replacement)
    );

    store.update_device_lists(vec![]).await.unwrap();
    let batch = vec![
        device_list("a", vec![DeviceInfo::new(1, None)], 1),
        device_list("b", vec![DeviceInfo::new(2, Some(1))], 2),
        device_list("a", vec![DeviceInfo::new(3, Some(2))], 3),
    ];
    store.update_device_lists(batch.clone()).await.unwrap();
    assert_eq!(
        summary(&store.get_devices("a").await.unwrap().unwrap()),
        summary(&batch[2])
    );
    assert_eq!(
        summary(&store.get_devices("b").await.unwrap().unwrap()),
        summary(&batch[1])
    );

    store.delete_devices("a").await.unwrap();
    assert!(store.get_devices("a").await.unwrap().is_none());
    assert!(store.get_devices("b").await.unwrap().is_some());
}

pub async fn group_metadata_round_trip<B: Backend>(store: &B) {
    assert_eq!(store.get_group_metadata(GROUP).await.unwrap(), None);
    store.put_group_metadata(GROUP, b"v1").await.unwrap();
    store.put_group_metadata(GROUP, b"v2").await.unwrap();
    assert_eq!(
        store.get_group_metadata(GROUP).await.unwrap(),
        Some(b"v2".to_vec())
    );
    assert_eq!(store.get_group_metadata(OTHER_GROUP).await.unwrap(), None);
    store.delete_group_metadata(GROUP).await.unwrap();
    assert_eq!(store.get_group_metadata(GROUP).await.unwrap(), None);
}

fn token_state(entry: Option<TcTokenEntry>) -> Option<(Vec<u8>, i64, Option<i64>)> {
    entry.map(|e| (e.token, e.token_timestamp, e.sender_timestamp))
}

pub async fn tc_tokens_round_trip<B: Backend>(store: &B) {
    assert!(store.get_tc_token("1@lid").await.unwrap().is_none());
    assert!(store.get_all_tc_token_jids().await.unwrap().is_empty());

    let entry = TcTokenEntry {
        token: b"tok".to_vec(),
        token_timestamp: 100,
        sender_timestamp: Some(90),
    };
    store.put_tc_token("1@lid", &entry).await.unwrap();
    store
        .put_tc_token(
            "2@lid",
            &TcTokenEntry {
                sender_timestamp: None,
                ..entry.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((b"tok".to_vec(), 100, Some(90)))
    );
    // put replaces the whole entry, sender timestamp included.
    store
        .put_tc_token(
            "1@lid",
            &TcTokenEntry {
                token: b"new".to_vec(),
                token_timestamp: 50,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((b"new".to_vec(), 50, None))
    );
    assert_eq!(
        sorted(store.get_all_tc_token_jids().await.unwrap()),
        vec!["1@lid".to_string(), "2@lid".to_string()]
    );

    store.delete_tc_token("1@lid").await.unwrap();
    assert!(store.get_tc_token("1@lid").await.unwrap().is_none());
    assert_eq!(
        store.get_all_tc_token_jids().await.unwrap(),
        vec!["2@lid".to_string()]
    );
}

pub async fn tc_token_touch_creates_placeholder_and_only_advances<B: Backend>(store: &B) {
    store
        .touch_tc_token_sender_timestamp("1@lid", 500)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((vec![], 500, Some(500)))
    );

    store
        .touch_tc_token_sender_timestamp("1@lid", 400)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((vec![], 500, Some(500)))
    );

    // A real token keeps its bytes when the sender bucket moves.
    store
        .put_tc_token(
            "2@lid",
            &TcTokenEntry {
                token: b"real".to_vec(),
                token_timestamp: 100,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
    store
        .touch_tc_token_sender_timestamp("2@lid", 300)
        .await
        .unwrap();
    store
        .touch_tc_token_sender_timestamp("2@lid", 600)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("2@lid").await.unwrap()),
        Some((b"real".to_vec(), 100, Some(600)))
    );
}

pub async fn received_tc_token_is_newer_wins_and_keeps_sender_timestamp<B: Backend>(store: &B) {
    // First real token over nothing.
    store
        .store_received_tc_token("1@lid", b"t1", 100)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((b"t1".to_vec(), 100, None))
    );

    // Stale write loses; equal or newer wins.
    store
        .store_received_tc_token("1@lid", b"stale", 99)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((b"t1".to_vec(), 100, None))
    );
    store
        .store_received_tc_token("1@lid", b"same-time", 100)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("1@lid").await.unwrap()),
        Some((b"same-time".to_vec(), 100, None))
    );

    // A placeholder never blocks a real token, even an older one, and its sender
    // timestamp is kept.
    store
        .touch_tc_token_sender_timestamp("2@lid", 900)
        .await
        .unwrap();
    store
        .store_received_tc_token("2@lid", b"older", 10)
        .await
        .unwrap();
    assert_eq!(
        token_state(store.get_tc_token("2@lid").await.unwrap()),
        Some((b"older".to_vec(), 10, Some(900)))
    );
}

pub async fn expired_tc_tokens_pruned_only_when_both_windows_stale<B: Backend>(store: &B) {
    let put = |jid: &'static str, token: &'static [u8], token_ts: i64, sender_ts: Option<i64>| {
        let entry = TcTokenEntry {
            token: token.to_vec(),
            token_timestamp: token_ts,
            sender_timestamp: sender_ts,
        };
        async move { store.put_tc_token(jid, &entry).await.unwrap() }
    };
    put("live-token", b"t", 200, None).await;
    put("live-sender", b"t", 10, Some(200)).await;
    put("both-stale", b"t", 10, Some(10)).await;
    put("stale-no-sender", b"t", 10, None).await;
    put("placeholder-live", b"", 500, Some(200)).await;
    put("placeholder-stale", b"", 500, Some(10)).await;
    put("at-cutoff", b"t", 100, Some(100)).await;

    let deleted = store.delete_expired_tc_tokens(100, 100).await.unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(
        sorted(store.get_all_tc_token_jids().await.unwrap()),
        vec![
            "at-cutoff".to_string(),
            "live-sender".to_string(),
            "live-token".to_string(),
            "placeholder-live".to_string(),
        ]
    );
    assert_eq!(store.delete_expired_tc_tokens(100, 100).await.unwrap(), 0);
}

pub async fn sent_messages_taken_once_and_expired<B: Backend>(store: &B) {
    let chat = "5511@s.whatsapp.net";
    assert_eq!(store.take_sent_message(chat, "M1").await.unwrap(), None);

    store
        .store_sent_message(chat, "M1", b"first")
        .await
        .unwrap();
    store
        .store_sent_message(chat, "M1", b"payload")
        .await
        .unwrap();
    store
        .store_sent_message(chat, "M2", b"other")
        .await
        .unwrap();
    store
        .store_sent_message("other@s.whatsapp.net", "M1", b"elsewhere")
        .await
        .unwrap();
    assert_eq!(
        store.take_sent_message(chat, "M1").await.unwrap(),
        Some(b"payload".to_vec())
    );
    assert_eq!(store.take_sent_message(chat, "M1").await.unwrap(), None);

    // Nothing was sent an hour ago; everything was sent before a minute from now.
    let now = now_secs();
    assert_eq!(
        store
            .delete_expired_sent_messages(now - 3600)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.delete_expired_sent_messages(now + 60).await.unwrap(),
        2
    );
    assert_eq!(store.take_sent_message(chat, "M2").await.unwrap(), None);
}

pub async fn pending_inbound_round_trip_and_batches<B: Backend>(store: &B) {
    let (chat, sender) = ("g@g.us", "1:2@lid");
    assert_eq!(
        store.get_pending_inbound(chat, sender, "A").await.unwrap(),
        None
    );

    store
        .store_pending_inbound(chat, sender, "A", b"a1")
        .await
        .unwrap();
    store
        .store_pending_inbound(chat, sender, "A", b"a2")
        .await
        .unwrap();
    assert_eq!(
        store.get_pending_inbound(chat, sender, "A").await.unwrap(),
        Some(b"a2".to_vec())
    );
    // Ids are scoped by chat and sender.
    assert_eq!(
        store
            .get_pending_inbound(chat, "other@lid", "A")
            .await
            .unwrap(),
        None
    );

    let row = |id: &'static str, message: &'static [u8]| PendingInboundRow {
        chat,
        sender,
        id,
        message,
    };
    store.store_pending_inbound_batch(&[]).await.unwrap();
    store
        .store_pending_inbound_batch(&[row("B", b"b"), row("C", b"c1"), row("C", b"c2")])
        .await
        .unwrap();
    assert_eq!(
        store.get_pending_inbound(chat, sender, "C").await.unwrap(),
        Some(b"c2".to_vec())
    );

    store
        .delete_pending_inbound(chat, sender, "A")
        .await
        .unwrap();
    assert_eq!(
        store.get_pending_inbound(chat, sender, "A").await.unwrap(),
        None
    );

    let key = |id: &'static str| PendingInboundKey { chat, sender, id };
    store.delete_pending_inbound_batch(&[]).await.unwrap();
    store
        .delete_pending_inbound_batch(&[key("B"), key("missing")])
        .await
        .unwrap();
    assert_eq!(
        store.get_pending_inbound(chat, sender, "B").await.unwrap(),
        None
    );
    assert!(
        store
            .get_pending_inbound(chat, sender, "C")
            .await
            .unwrap()
            .is_some()
    );

    let now = now_secs();
    assert_eq!(
        store
            .delete_expired_pending_inbound(now - 3600)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_expired_pending_inbound(now + 60)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_pending_inbound(chat, sender, "C").await.unwrap(),
        None
    );
}
