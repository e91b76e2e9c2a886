//! Server-side session events: dropped socket, conflict, device removal, 401 and ban
//! on the next login.

use botwave_wa_sim::{KickKind, SimConfig};
use whatsapp_rust::types::events::Event;

use crate::common::{paired_client, start_sim};

const PHONE: &str = "15553330000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_reconnected_by_the_client() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    let logins = sim.stats().logins;
    assert!(sim.kick(PHONE, device, KickKind::Drop));
    client.connected().await;
    assert!(sim.stats().logins > logins, "the client logged in again");
    assert!(sim.is_connected(PHONE, device));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_reports_stream_replaced() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    assert!(sim.kick(PHONE, device, KickKind::Replaced));
    client
        .events
        .wait("StreamReplaced", |e| {
            matches!(e, Event::StreamReplaced(_)).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_is_logged_out_and_cannot_log_in_again() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    assert!(sim.kick(PHONE, device, KickKind::Logout));
    let out = client
        .events
        .wait("LoggedOut", |e| match e {
            Event::LoggedOut(out) => Some(out.clone()),
            _ => None,
        })
        .await;
    assert!(!out.on_connect);
    // As WhatsApp says it: code 401 (a logout, not the 440 of a replacement) and the conflict.
    let stanza = out.raw.expect("the stream error");
    assert_eq!(stanza.tag, "stream:error");
    assert_eq!(
        stanza.attrs().optional_string("code").as_deref(),
        Some("401")
    );
    let conflict = stanza.get_optional_child("conflict").expect("a conflict");
    assert_eq!(
        conflict.attrs().optional_string("type").as_deref(),
        Some("device_removed")
    );
    // The same store trying again is refused at login.
    let backend = client.stop().await;
    let mut again = crate::common::TestClient::start_with(&sim, backend).await;
    let on_connect = again
        .events
        .wait("LoggedOut at login", |e| match e {
            Event::LoggedOut(out) => Some(out.on_connect),
            _ => None,
        })
        .await;
    assert!(on_connect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_401_on_the_next_login_logs_the_client_out() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    assert!(sim.kick(PHONE, device, KickKind::Failure401));
    let on_connect = client
        .events
        .wait("LoggedOut", |e| match e {
            Event::LoggedOut(out) => Some(out.on_connect),
            _ => None,
        })
        .await;
    assert!(on_connect, "the 401 answers the reconnect's login");
    assert_eq!(sim.stats().logins_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_the_next_login_is_reported() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    assert!(sim.kick(PHONE, device, KickKind::Ban));
    client
        .events
        .wait("TemporaryBan", |e| {
            matches!(e, Event::TemporaryBan(_)).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_logs_itself_out_is_unlinked() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let device = client.client.pn().expect("paired").device;
    client.client.logout().await;
    client
        .events
        .wait("LoggedOut", |e| {
            matches!(e, Event::LoggedOut(_)).then_some(())
        })
        .await;
    crate::common::eventually("the companion removed", || {
        (!sim.is_connected(PHONE, device)).then_some(())
    })
    .await;
    let backend = client.stop().await;
    let mut again = crate::common::TestClient::start_with(&sim, backend).await;
    let on_connect = again
        .events
        .wait("LoggedOut at login", |e| match e {
            Event::LoggedOut(out) => Some(out.on_connect),
            _ => None,
        })
        .await;
    assert!(on_connect, "an unlinked device is refused at login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_simulator_down_closes_client_connections() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let shutdown = tokio::time::timeout(std::time::Duration::from_secs(10), sim.shutdown()).await;
    assert!(
        shutdown.is_ok(),
        "shutdown returns while a client is connected"
    );
    client
        .events
        .wait("Disconnected", |e| {
            matches!(e, Event::Disconnected(_)).then_some(())
        })
        .await;
}
