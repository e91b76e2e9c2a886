//! Double connections: two connections of one companion device logged in at once, as
//! when a client cluster moves a session without closing the old socket first.
//! WhatsApp replaces the older connection; the simulator counts the overlap.

use botwave_wa_sim::{DoubleConnections, PhoneInfo, SimConfig, SimHandle, StatsSnapshot};
use whatsapp_rust::types::events::Event;

use crate::common::{TestClient, eventually, paired_client, start_sim};

const PHONE: &str = "15553340000";

async fn get_json<T: serde::de::DeserializeOwned>(url: String) -> T {
    let response = reqwest::get(&url).await.expect("an answer");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("JSON from {url}: {e}"))
}

/// The double-connection records over HTTP: all devices (`/control/stats`) and the
/// companion `device` of `PHONE` (its entry in the phone's info).
async fn records_over_http(sim: &SimHandle, device: u16) -> (DoubleConnections, DoubleConnections) {
    let control = sim.control_url();
    let stats: StatsSnapshot = get_json(format!("{control}/stats")).await;
    let phones: Vec<PhoneInfo> = get_json(format!("{control}/phones")).await;
    let jid = format!("{PHONE}:{device}@s.whatsapp.net");
    let companion = phones
        .iter()
        .filter(|phone| phone.number == PHONE)
        .flat_map(|phone| &phone.companion_devices)
        .find(|companion| companion.jid == jid)
        .unwrap_or_else(|| panic!("{jid} among the phone's companions: {phones:?}"));
    (stats.double_connections, companion.double_connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_of_the_same_device_replaces_the_first_and_counts_as_double() {
    let sim = start_sim(SimConfig::default()).await;
    let mut first = paired_client(&sim, PHONE).await;
    let device = first.client.pn().expect("paired").device;

    let mut second = TestClient::start_with(&sim, first.copy_of_store().await).await;
    second.connected().await;
    first
        .events
        .wait("StreamReplaced on the older connection", |e| {
            matches!(e, Event::StreamReplaced(_)).then_some(())
        })
        .await;
    // Only the second client's socket is left: the replaced one hung up for good.
    eventually("the replaced socket closed", || {
        (sim.stats().connections.current == 1).then_some(())
    })
    .await;

    let (total, of_device) = records_over_http(&sim, device).await;
    assert_eq!(total.count, 1);
    assert_eq!(of_device, total);
    assert_eq!(sim.stats().double_connections, total);
    assert_eq!(sim.double_connections(PHONE, device), total);
    assert_eq!(sim.stats().conflicts, 1);
    assert!(
        sim.is_connected(PHONE, device),
        "the newer connection stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_before_the_next_login_is_no_double_connection() {
    let sim = start_sim(SimConfig::default()).await;
    let first = paired_client(&sim, PHONE).await;
    let device = first.client.pn().expect("paired").device;
    let copy = first.copy_of_store().await;
    first.stop().await;
    // A login before the server saw the close would be a real overlap; this test is
    // about the orderly handover.
    eventually("the first connection gone", || {
        (!sim.is_connected(PHONE, device)).then_some(())
    })
    .await;

    let mut second = TestClient::start_with(&sim, copy).await;
    second.connected().await;

    let (total, of_device) = records_over_http(&sim, device).await;
    assert_eq!(total, DoubleConnections::default());
    assert_eq!(of_device, total);
    assert_eq!(sim.stats().logins, 2, "both connections logged in");
    assert!(sim.is_connected(PHONE, device));
}
