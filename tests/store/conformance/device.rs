//! The paired device row.

use std::sync::Arc;

use botwave_actors::wacore::store::Device;
use botwave_actors::wacore::store::device::{
    CachedNoiseCert, CachedServerCertChain, account_serde,
};
use botwave_actors::wacore::store::traits::Backend;

/// The persisted fields of a device (wacore's own serde form skips the runtime-only
/// ones), for comparing devices.
pub fn persisted(device: &Device) -> serde_json::Value {
    serde_json::to_value(device).unwrap()
}

/// A protobuf `ADVSignedDeviceIdentity` with all four bytes fields set.
fn signed_identity_bytes() -> Vec<u8> {
    let mut bytes = Vec::new();
    for (field, value) in [
        (1u8, &b"details"[..]),
        (2, &[7; 32]),
        (3, &[8; 64]),
        (4, &[9; 64]),
    ] {
        bytes.push(field << 3 | 2);
        bytes.push(value.len() as u8);
        bytes.extend_from_slice(value);
    }
    bytes
}

/// A device with every optional field set and every counter away from its default.
pub fn paired_device() -> Device {
    let mut device = Device::new();
    device.pn = Some("5511999990001:12@s.whatsapp.net".parse().unwrap());
    device.lid = Some("100000012345678:12@lid".parse().unwrap());
    device.registration_id = u32::MAX;
    device.signed_pre_key_id = 7;
    device.adv_secret_key = [3; 32];
    device.account = Some(Arc::new(
        account_serde::from_bytes(&signed_identity_bytes()).unwrap(),
    ));
    device.push_name = "Zoë's bot 🤖".into();
    device.app_version_primary = 2;
    device.app_version_secondary = 3000;
    device.app_version_tertiary = 4_000_000_000;
    device.app_version_last_fetched_ms = 1_700_000_000_123;
    device.edge_routing_info = Some(vec![0, 1, 2, 255]);
    device.props_hash = Some("hash".into());
    device.next_pre_key_id = 812;
    device.first_unupload_pre_key_id = 800;
    device.server_has_prekeys = true;
    device.nct_salt = Some(vec![4; 16]);
    device.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert {
            key: [5; 32],
            not_before: 1,
            not_after: 2,
        },
        leaf: CachedNoiseCert {
            key: [6; 32],
            not_before: 3,
            not_after: 4,
        },
    });
    device.login_counter = -3;
    device.lid_migrated = true;
    device.last_signed_pre_key_rotation_ms = 1_700_000_000_456;
    device.read_receipts_disabled = true;
    device
}

pub async fn device_created_once_then_saved_and_loaded<B: Backend>(store: &B) {
    assert!(!store.exists().await.unwrap());
    assert!(store.load().await.unwrap().is_none());

    store.create().await.unwrap();
    assert!(store.exists().await.unwrap());
    let created = store
        .load()
        .await
        .unwrap()
        .expect("create materialises a device");
    assert!(created.pn.is_none());

    // Creating again keeps the device that is there.
    store.create().await.unwrap();
    assert_eq!(
        persisted(&store.load().await.unwrap().unwrap()),
        persisted(&created)
    );

    let device = paired_device();
    store.save(&device).await.unwrap();
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(persisted(&loaded), persisted(&device));
    assert_eq!(loaded.account.as_deref(), device.account.as_deref());

    // Saving again overwrites, including clearing optional fields.
    let mut unpaired = paired_device();
    unpaired.pn = None;
    unpaired.account = None;
    unpaired.server_cert_chain = None;
    unpaired.nct_salt = None;
    store.save(&unpaired).await.unwrap();
    assert_eq!(
        persisted(&store.load().await.unwrap().unwrap()),
        persisted(&unpaired)
    );
}
