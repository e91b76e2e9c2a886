//! The phone's app state: a new companion learns its push name from `critical_block`, the
//! key share comes once per linking, a restarted client takes the fast login path, and a
//! client that lost its app-state key gets it again by asking the phone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botwave_wa_sim::{SimConfig, SimHandle};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::store::traits::DeviceStore;

use crate::common::{TestClient, eventually, paired_client, start_sim};

/// whatsapp-rust waits this long for an unasked key share before it syncs without one.
const CLIENT_KEY_GRACE: Duration = Duration::from_secs(10);

fn stored_push_name(client: &TestClient) -> String {
    client
        .client
        .persistence_manager()
        .get_device_snapshot()
        .push_name
        .clone()
}

async fn wait_push_name(client: &TestClient, sim: &SimHandle, number: &str) {
    let expected = sim.push_name(number).expect("the phone exists");
    assert!(!expected.is_empty());
    eventually("the client to store the phone's push name", || {
        (stored_push_name(client) == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sync_brings_the_push_name_and_a_restart_needs_no_second_key_share() {
    const PHONE: &str = "15557770001";
    let sim = start_sim(SimConfig::default()).await;
    let client = paired_client(&sim, PHONE).await;
    wait_push_name(&client, &sim, PHONE).await;
    assert_eq!(sim.stats().app_state_key_shares, 1);

    // A restart on the same store: the client knows its name, so it logs in without
    // re-running its initial sync, and the phone sends no key again.
    let backend = client.stop().await;
    let started = Instant::now();
    let mut again = TestClient::start_with(&sim, backend).await;
    again.connected().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "restart to Connected took {elapsed:?} (the client's key grace is {CLIENT_KEY_GRACE:?})"
    );
    assert_eq!(
        stored_push_name(&again),
        sim.push_name(PHONE).unwrap_or_default()
    );
    // Anything the phone would still send comes right after the offline marker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = sim.stats();
    assert_eq!(stats.app_state_key_shares, 1, "{stats:?}");
    assert_eq!(stats.app_state_key_requests, 0, "{stats:?}");
    assert!(stats.logins >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_lost_its_key_asks_the_phone_and_gets_it() {
    const PHONE: &str = "15557770002";
    let sim = start_sim(SimConfig::default()).await;
    let client = paired_client(&sim, PHONE).await;
    wait_push_name(&client, &sim, PHONE).await;
    let mut device = (*client.client.persistence_manager().get_device_snapshot()).clone();
    client.stop().await;

    // The same device on a store with its credentials only: no app-state key, no name.
    // It re-runs its initial sync, finds a patch under a key it lacks and asks its own
    // devices for it.
    device.push_name.clear();
    let backend = Arc::new(InMemoryBackend::new());
    backend.save(&device).await.expect("the store saves");
    let mut again = TestClient::start_with(&sim, backend).await;
    again.connected().await;
    wait_push_name(&again, &sim, PHONE).await;
    let stats = sim.stats();
    assert!(stats.app_state_key_requests >= 1, "{stats:?}");
    assert_eq!(stats.app_state_key_shares, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_shares_no_key_leaves_the_client_without_a_name() {
    const PHONE: &str = "15557770003";
    let sim = start_sim(SimConfig {
        share_app_state_key: false,
        ..SimConfig::default()
    })
    .await;
    let mut client = TestClient::start(&sim).await;
    let qr = client.next_qr().await;
    let scanned = Instant::now();
    sim.scan(PHONE, &qr).await.expect("scan succeeds");
    client.connected().await;
    // The client waited out its grace for a key, then synced collections it could read.
    assert!(scanned.elapsed() >= CLIENT_KEY_GRACE - Duration::from_secs(1));
    assert_eq!(stored_push_name(&client), "");
    assert_eq!(sim.stats().app_state_key_shares, 0);

    // Without a name the client never says it is available, and acknowledges what it
    // gets as `inactive`, as WhatsApp Web does.
    sim.create_phone("15557770004", 1).expect("a second phone");
    let sent = sim
        .send_text("15557770004", PHONE, "still there?")
        .expect("the phone sends");
    client.events.wait_text("still there?").await;
    let delivered = eventually("the delivery receipt at the sending phone", || {
        sim.receipts("15557770004")
            .into_iter()
            .find(|r| r.id == sent.id)
    })
    .await;
    assert_eq!(delivered.kind, "inactive");
}
