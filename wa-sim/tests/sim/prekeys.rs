//! The key-bundle digest: what WhatsApp answers to `<iq xmlns="encrypt"><digest/></iq>`, so
//! that a client can tell without re-uploading whether the server holds its current keys.

use std::time::{Duration, Instant};

use botwave_wa_sim::SimConfig;
use wacore::iq::prekeys::DigestKeyBundleSpec;
use wacore::store::traits::SignalStore as _;
use whatsapp_rust::request::IqError;

use crate::common::{paired_client, start_sim};

const PHONE: &str = "15553334444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_describes_the_uploaded_bundle_and_its_hash_matches_the_clients_keys() {
    let sim = start_sim(SimConfig::default()).await;
    let client = paired_client(&sim, PHONE).await;
    // The client uploads its prekeys right after logging in; until then there is no record.
    let deadline = Instant::now() + Duration::from_secs(15);
    let digest = loop {
        match client.client.execute(DigestKeyBundleSpec::new()).await {
            Ok(digest) => break digest,
            Err(IqError::ServerError { code: 404, .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("digest query failed: {error:?}"),
        }
    };

    let device = client.client.persistence_manager().get_device_snapshot();
    assert_eq!(digest.reg_id, device.registration_id);
    assert_eq!(
        digest.identity,
        device.identity_key.public_key.public_key_bytes()
    );
    assert_eq!(
        digest.skey_pubkey,
        device.signed_pre_key.public_key.public_key_bytes()
    );
    assert_eq!(
        digest.skey_signature,
        device.signed_pre_key_signature.to_vec()
    );
    assert!(
        !digest.prekey_ids.is_empty(),
        "the one-time prekeys are listed"
    );

    // The hash is over what the client itself holds for those ids, in the listed order.
    let stored = client
        .backend
        .load_prekeys_batch(&digest.prekey_ids)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        digest.prekey_ids.len(),
        "every listed prekey is the client's"
    );
    let by_id: std::collections::HashMap<u32, bytes::Bytes> = stored.into_iter().collect();
    let publics: Vec<&[u8]> = digest
        .prekey_ids
        .iter()
        .map(|id| wacore::prekeys::extract_prekey_public_key(&by_id[id]).unwrap())
        .collect();
    let expected = wacore::prekeys::compute_key_bundle_digest(
        &digest.identity,
        &digest.skey_pubkey,
        &digest.skey_signature,
        &publics,
    );
    assert_eq!(digest.hash, expected);
}
