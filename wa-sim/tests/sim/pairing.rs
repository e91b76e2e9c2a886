//! QR pairing, the fast first login, the phone's initial history, reconnects without QR,
//! ref rotation and exhaustion.

use std::time::{Duration, Instant};

use botwave_wa_sim::{ScanError, SimConfig};
use whatsapp_rust::types::events::Event;

use crate::common::{TestClient, start_sim};

/// `HistorySync.syncType` of the first chunk a phone sends a new companion.
const INITIAL_BOOTSTRAP: i32 = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_client_connects_within_a_second_and_later_logs_in_without_qr() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = TestClient::start(&sim).await;
    let qr = client.next_qr().await;
    assert!(qr.starts_with("2@"), "QR carries a server ref: {qr}");

    let scanned_at = Instant::now();
    let paired = sim.scan("15550001111", &qr).await.expect("scan succeeds");
    assert_eq!(paired.jid.user, "15550001111");
    assert!(paired.jid.device >= 1, "a companion is never device 0");
    let pn = client
        .events
        .wait("PairSuccess", |e| match e {
            Event::PairSuccess(success) => Some(success.id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(pn.user, "15550001111");
    assert_eq!(pn.device, paired.jid.device);
    client.connected().await;
    let elapsed = scanned_at.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "scan to Connected took {elapsed:?}"
    );
    assert!(sim.is_connected("15550001111", paired.jid.device));

    // The same store comes back as a logged-in device: no QR this time.
    let backend = client.stop().await;
    let mut again = TestClient::start_with(&sim, backend).await;
    let first = again
        .events
        .wait("Connected or a QR code", |e| match e {
            Event::Connected(_) => Some(true),
            Event::PairingQrCode(_) => Some(false),
            _ => None,
        })
        .await;
    assert!(first, "a paired device must log in without a QR code");
    let stats = sim.stats();
    assert_eq!(stats.pairings, 1);
    assert!(stats.logins >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_keep_the_device_lid_pairing_gave_the_client() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = TestClient::start(&sim).await;
    let qr = client.next_qr().await;
    let paired = sim.scan("15550001313", &qr).await.expect("scan succeeds");
    assert_eq!(paired.lid.device, paired.jid.device, "{paired:?}");
    client.connected().await;
    // The client stores the LID of pair-success and replaces it with the one <success>
    // carries: both name this device.
    assert_eq!(client.client.lid(), Some(paired.lid.clone()));

    let backend = client.stop().await;
    let mut again = TestClient::start_with(&sim, backend).await;
    again.connected().await;
    assert_eq!(again.client.lid(), Some(paired.lid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_sends_a_new_companion_its_initial_history_once() {
    let sim = start_sim(SimConfig::default()).await;
    let backend = std::sync::Arc::new(whatsapp_rust::wacore::store::InMemoryBackend::new());
    let mut client = TestClient::start_with_history(&sim, backend).await;
    let qr = client.next_qr().await;
    sim.scan("15550001212", &qr).await.expect("scan succeeds");
    let chunk = client
        .events
        .wait("the initial history chunk", |e| match e {
            Event::HistorySync(history) => Some((
                history.sync_type(),
                history.get().map(|h| h.conversations.len()),
            )),
            _ => None,
        })
        .await;
    assert_eq!(
        chunk,
        (INITIAL_BOOTSTRAP, Some(0)),
        "an INITIAL_BOOTSTRAP chunk the client can decode, with no chats"
    );

    // A phone sends it once per linking: the next login gets none.
    let backend = client.stop().await;
    let mut again = TestClient::start_with_history(&sim, backend).await;
    again.connected().await;
    let repeated = again
        .events
        .wait_for(Duration::from_secs(1), "a second history chunk", &mut |e| {
            matches!(e, Event::HistorySync(_)).then_some(())
        })
        .await;
    assert_eq!(repeated, None, "history was sent again on a reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_rotate_and_an_expired_ref_cannot_be_scanned() {
    let sim = start_sim(SimConfig {
        qr_ref_ttl: Some(Duration::from_millis(400)),
        ..SimConfig::default()
    })
    .await;
    let mut client = TestClient::start(&sim).await;
    let first = client.next_qr().await;
    let second = client.next_qr().await;
    assert_ne!(
        first.split(',').next(),
        second.split(',').next(),
        "the client shows a new ref after the server retired the first"
    );
    assert!(matches!(
        sim.scan("15550002222", &first).await,
        Err(ScanError::ExpiredRef)
    ));
    let paired = sim
        .scan("15550002222", &second)
        .await
        .expect("current ref scans");
    assert_eq!(paired.jid.user, "15550002222");
    client.connected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_refs_run_out_the_client_reports_exhaustion_and_disconnects() {
    let sim = start_sim(SimConfig {
        qr_ref_count: 2,
        qr_ref_ttl: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .await;
    let mut client = TestClient::start(&sim).await;
    let mut codes = 0;
    let disconnected = client
        .events
        .wait("PairingQrCodesExhausted", |e| match e {
            Event::PairingQrCode(_) => {
                codes += 1;
                None
            }
            Event::PairingQrCodesExhausted(exhausted) => Some(exhausted.disconnected),
            _ => None,
        })
        .await;
    assert_eq!(codes, 2, "one QR code per ref");
    assert!(disconnected, "a QR-only client disconnects itself");
    assert!(matches!(
        sim.scan("15550003333", "2@nope,AAAA,AAAA,AAAA,9").await,
        Err(ScanError::InvalidQr(_))
    ));
}
