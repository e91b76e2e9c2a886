//! Pairing, reconnects, supervision, logout, disconnect and node restarts.

use std::time::{Duration, Instant};

use botwave_actors::lease::LeaseTiming;
use botwave_actors::sessions::SessionState;
use botwave_actors::{SessionConfig, SessionEvent};
use botwave_wa_sim::{KickKind, SimConfig};

use crate::support::{self, Events, Harness, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_shows_a_qr_code_and_scanning_it_connects() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);

    let initial = h.manager.initialize(user).await.unwrap();
    assert!(!initial.paired);
    let qr = events.qr().await;
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Qr);
    assert_eq!(status.qr_code.as_deref(), Some(qr.as_str()));
    assert!(
        status
            .qr_expires_at
            .is_some_and(|at| at > chrono::Utc::now())
    );
    assert!(events.seen.iter().any(|e| matches!(
        e,
        SessionEvent::SessionState {
            state: SessionState::Qr,
            ..
        }
    )));

    // Initializing again while the QR is up neither fails nor starts a second session.
    let again = h.manager.initialize(user).await.unwrap();
    assert_eq!(again.state, SessionState::Qr);

    h.sim.scan("15550001001", &qr).await.expect("scan succeeds");
    assert_eq!(events.connected().await, "15550001001");
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Connected);
    assert_eq!(status.phone.as_deref(), Some("15550001001"));
    assert!(status.paired);
    assert!(status.connected_since.is_some());
    assert_eq!(status.qr_code, None);
    assert_eq!(status.restart_count, 0);
    assert_eq!(h.companions("15550001001").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_reconnects_and_a_crashed_session_is_restarted_without_a_qr() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550001002").await;
    let mut events = Events::new(&h.hub, user);

    // The server drops the socket: the client reconnects by itself.
    assert!(h.sim.kick("15550001002", 1, KickKind::Drop));
    events.disconnected().await;
    assert_eq!(events.connected().await, "15550001002");
    assert_eq!(h.status(user).await.restart_count, 0);

    // The actor panics: the supervisor starts a new one, which logs in with the stored device.
    assert!(h.manager.crash_for_test(user).await.unwrap());
    assert_eq!(events.connected().await, "15550001002");
    assert!(!events.saw_qr(), "a paired session never shows a QR code");
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Connected);
    assert_eq!(status.restart_count, 1);
    assert!(
        status.last_error.is_none(),
        "connecting again clears the crash"
    );
    assert!(h.sim.is_connected("15550001002", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_crashing_past_its_budget_is_marked_failed() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);
    h.manager.initialize(user).await.unwrap();
    // Crash it every time it comes back (budget 3: the fourth crash is final).
    for _ in 0..4 {
        events.qr().await;
        assert!(h.manager.crash_for_test(user).await.unwrap());
    }
    events
        .wait("the failed state", |e| match e {
            SessionEvent::SessionState {
                state: SessionState::Failed,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Failed);
    assert_eq!(status.restart_count, 3);
    let error = status.last_error.unwrap();
    assert!(error.contains("gave up after 3 restarts"), "{error}");
    assert!(error.contains("crash requested by a test"), "{error}");

    // The user may try again: initialize starts afresh.
    h.manager.initialize(user).await.unwrap();
    events.qr().await;
    assert_eq!(h.status(user).await.state, SessionState::Qr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_from_the_phone_forgets_the_device_and_pairing_again_works() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550001003").await;
    let mut events = Events::new(&h.hub, user);

    assert!(h.sim.kick("15550001003", 1, KickKind::Logout));
    let reason = events.disconnected().await;
    assert!(reason.contains("logged out"), "{reason}");
    let status = eventually("the device to be forgotten", || async {
        let status = h.status(user).await;
        (!status.paired).then_some(status)
    })
    .await;
    assert_eq!(status.state, SessionState::Disconnected);
    assert_eq!(status.phone, None);
    assert!(status.last_error.unwrap().contains("logged out"));

    h.manager.initialize(user).await.unwrap();
    let qr = events.qr().await;
    h.sim.scan("15550001003", &qr).await.expect("scan succeeds");
    assert_eq!(events.connected().await, "15550001003");
    assert!(h.status(user).await.paired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_logs_the_device_out_on_whatsapp() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550001004").await;
    assert_eq!(h.companions("15550001004").await.len(), 1);
    let mut events = Events::new(&h.hub, user);

    h.manager.disconnect(user).await.unwrap();
    assert!(
        events
            .disconnected()
            .await
            .contains("disconnected by the user")
    );
    assert!(
        h.companions("15550001004").await.is_empty(),
        "the simulator removed the device"
    );
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Idle);
    assert!(!status.paired);
    assert_eq!(status.phone, None);
    assert!(!h.sim.is_connected("15550001004", 1));

    h.manager.initialize(user).await.unwrap();
    events.qr().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_paired_sessions_and_sends_what_was_queued_once() {
    let mut h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550001005").await;
    h.sim.create_phone("15550002005", 1).unwrap();

    h.manager.shutdown().await;
    // Still wanted: it shows as reconnecting until a node (this one, restarted) runs it.
    let stopped = h.status(user).await;
    assert_eq!(stopped.state, SessionState::Connecting);
    assert_eq!(
        stopped.last_error.as_deref(),
        Some("moving to another node")
    );
    // The node has closed its socket; the simulator notices on its own time, as WhatsApp does.
    eventually("WhatsApp to see the connection closed", || async {
        (!h.sim.is_connected("15550001005", 1)).then_some(())
    })
    .await;
    let first = h.enqueue(user, "15550002005", "queued while down 1").await;
    let second = h.enqueue(user, "15550002005", "queued while down 2").await;

    let mut events = Events::new(&h.hub, user);
    h.restart_node().await;
    assert_eq!(events.connected().await, "15550001005");
    assert!(!events.saw_qr());
    events
        .message_status(second.id, botwave_actors::outbox::MessageStatus::Read)
        .await;

    let received = eventually("both texts at the phone", || async {
        let texts = h.sim.messages("15550002005");
        (texts.len() >= 2).then_some(texts)
    })
    .await;
    // Give a duplicate time to show up before counting.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let received = if h.sim.messages("15550002005").len() > received.len() {
        h.sim.messages("15550002005")
    } else {
        received
    };
    let texts: Vec<&str> = received.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        ["queued while down 1", "queued while down 2"],
        "in order, once each"
    );
    for message in [first, second] {
        let row = h.message(user, message.id).await;
        assert_eq!(row.attempts, 1);
        assert!(
            received
                .iter()
                .any(|t| Some(&t.id) == row.wa_message_id.as_ref())
        );
    }
}

/// A node with many paired sessions logs them in at its configured pace, not all at once:
/// at 2 per second, the fifth of six starts two ticks after the first, and every one is
/// connected again without a QR code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_its_sessions_at_the_configured_rate() {
    let mut h = Harness::start().await;
    let mut users = Vec::new();
    for n in 0..6 {
        let user = h.create_user().await;
        h.pair(user, &format!("1555000130{n}")).await;
        users.push(user);
    }
    h.manager.shutdown().await;

    let mut events = h.hub.subscribe();
    h.start_node_with(botwave_actors::SessionConfig {
        resume_rate: 2,
        ..crate::support::config(&h.sim)
    })
    .await;
    let mut started = std::collections::HashMap::new();
    let mut connected = std::collections::HashSet::new();
    let mut qr_shown = false;
    tokio::time::timeout(crate::support::WAIT, async {
        while connected.len() < users.len() {
            match events.recv().await.expect("events keep coming") {
                SessionEvent::SessionState {
                    user_id,
                    state: SessionState::Connecting,
                } => {
                    started
                        .entry(user_id)
                        .or_insert_with(std::time::Instant::now);
                }
                SessionEvent::WhatsappConnected { user_id, .. } => {
                    connected.insert(user_id);
                }
                SessionEvent::QrCode { .. } => qr_shown = true,
                _ => {}
            }
        }
    })
    .await
    .expect("every session connects again");

    assert!(!qr_shown, "resumed sessions log in without a QR code");
    let mut starts: Vec<std::time::Instant> = started.into_values().collect();
    assert_eq!(starts.len(), users.len(), "each session started once");
    starts.sort();
    let fifth_after_first = starts[4] - starts[0];
    assert!(
        fifth_after_first >= std::time::Duration::from_millis(1800),
        "the fifth session started {fifth_after_first:?} after the first: not paced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_stream_stops_the_session_which_resumes_without_a_qr() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550001006").await;
    let mut events = Events::new(&h.hub, user);

    assert!(h.sim.kick("15550001006", 1, KickKind::Replaced));
    assert_eq!(
        events.disconnected().await,
        "replaced by another connection"
    );
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Disconnected);
    assert_eq!(
        status.last_error.as_deref(),
        Some("replaced by another connection")
    );
    assert!(status.paired, "a replaced stream keeps the device");
    assert_eq!(status.restart_count, 0, "stopping on purpose is no crash");

    h.manager.initialize(user).await.unwrap();
    assert_eq!(events.connected().await, "15550001006");
    assert!(!events.saw_qr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscanned_qr_codes_run_out_and_initialize_brings_new_ones() {
    let h = Harness::start_with(SimConfig {
        qr_ref_count: 2,
        qr_ref_ttl: Some(std::time::Duration::from_millis(500)),
        ..SimConfig::default()
    })
    .await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);
    h.manager.initialize(user).await.unwrap();
    let first = events.qr().await;
    let reason = events.disconnected().await;
    assert!(reason.contains("QR code not scanned"), "{reason}");
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Disconnected);
    assert_eq!(status.qr_code, None);

    h.manager.initialize(user).await.unwrap();
    let fresh = events.qr().await;
    assert_ne!(fresh, first);
    assert_eq!(h.status(user).await.state, SessionState::Qr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_code_outlives_the_qr_codes_and_still_links_the_session() {
    let ttl = std::time::Duration::from_millis(300);
    let h = Harness::start_with(SimConfig {
        qr_ref_count: 2,
        qr_ref_ttl: Some(ttl),
        ..SimConfig::default()
    })
    .await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);

    // The request starts the session and waits for its socket.
    let code = h.manager.pair_code(user, "15550001777").await.unwrap();
    assert_eq!(code.code.len(), 8);
    let announced = events
        .wait("the pair_code event", |e| match e {
            SessionEvent::PairCode { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(announced, code.code);

    // Both QR codes run out (nothing is published for that): with a code outstanding the
    // client keeps its socket, and the session must keep running for the code's sake.
    tokio::time::sleep(ttl * 4).await;
    assert_eq!(h.status(user).await.state, SessionState::Qr);

    h.sim
        .enter_pair_code("15550001777", &code.code)
        .await
        .expect("the code still links");
    assert_eq!(events.connected().await, "15550001777");
    assert!(
        !events
            .seen
            .iter()
            .any(|e| matches!(e, SessionEvent::WhatsappDisconnected { .. })),
        "the session stopped while the link code was still valid: {:#?}",
        events.seen
    );

    // Linked: asking again is refused, without touching the session.
    let again = h.manager.pair_code(user, "15550001777").await;
    assert!(
        matches!(
            again,
            Err(botwave_actors::SessionError::PairCode(
                botwave_actors::PairCodeRefusal::AlreadyLinked
            ))
        ),
        "{again:?}"
    );
}

/// Lease work has connections of its own: with every connection of the node's pool held
/// for more than two lease lifetimes (session queries stuck behind a slow database, say),
/// the node keeps renewing, and its session stays logged in on the same lease instead of
/// being stopped at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_session_queries_hold_every_pooled_connection() {
    let mut h = Harness::start().await;
    h.manager.shutdown().await;
    let lease_ttl = Duration::from_secs(4);
    h.start_node_with(SessionConfig {
        lease: LeaseTiming::new(lease_ttl),
        placement_tick: Duration::from_millis(250),
        ..support::config(&h.sim)
    })
    .await;
    let user = h.create_user().await;
    h.pair(user, "15550001401").await;
    let logins = h.sim.stats().logins;

    // A connection of the test's own watches the lease while the pool is taken.
    let (watcher, connection) = tokio_postgres::connect(&h.db.url, tokio_postgres::NoTls)
        .await
        .expect("a watching connection");
    tokio::spawn(connection);
    let lease = || async {
        let row = watcher
            .query_one(
                "SELECT l.epoch, l.expires_at > now() FROM wa_leases l
                   JOIN wa_sessions s ON s.id = l.session_id WHERE s.user_id = $1",
                &[&user],
            )
            .await
            .expect("the lease");
        (row.get::<_, i64>(0), row.get::<_, bool>(1))
    };
    let (epoch, live) = lease().await;
    assert!(live);

    let mut held = Vec::new();
    while let Ok(conn) = tokio::time::timeout(Duration::from_millis(500), h.db.pool.get()).await {
        held.push(conn.expect("a pooled connection"));
    }
    assert!(!held.is_empty(), "the pool is taken");
    let until = Instant::now() + lease_ttl * 5 / 2;
    while Instant::now() < until {
        assert_eq!(
            lease().await,
            (epoch, true),
            "the lease stays ours and live"
        );
        assert!(h.sim.is_connected("15550001401", 1), "the session stays up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);

    assert_eq!(h.sim.stats().logins, logins, "no reconnect");
    assert_eq!(h.status(user).await.state, SessionState::Connected);
}
