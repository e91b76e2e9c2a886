//! A session that cannot reach WhatsApp says why in its status.

use botwave_actors::sessions::SessionState;
use botwave_actors::{SessionConfig, SessionManager};

use crate::support::{Events, Harness, eventually};

/// Nothing listens there: the client keeps retrying, the status names the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_in_the_status() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    // The harness's own node would otherwise be free to claim the session (pointed at the
    // simulator) between this node's request and its lease.
    h.manager.shutdown().await;
    let config = SessionConfig {
        whatsapp_url: Some("ws://127.0.0.1:9/ws/chat".into()),
        ..crate::support::config(&h.sim)
    };
    let manager = SessionManager::start(
        h.db.pool.clone(),
        h.db.lease_pool().await,
        h.hub.clone(),
        config,
        crate::support::node(),
    )
    .await
    .unwrap();
    manager.initialize(user).await.unwrap();
    let status = eventually("an error in the status", || async {
        let status = h.status(user).await;
        status.last_error.is_some().then_some(status)
    })
    .await;
    assert_eq!(status.state, SessionState::Connecting);
    let error = status.last_error.unwrap();
    assert!(error.contains("cannot connect to WhatsApp"), "{error}");
    manager.shutdown().await;
}

/// A default build verifies WhatsApp's real certificate chain, which the simulator
/// cannot produce: the session fails with that reason instead of retrying forever.
#[cfg(not(feature = "simulator"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_simulator_feature_the_simulator_is_refused() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);
    h.manager.initialize(user).await.unwrap();
    let reason = events.disconnected().await;
    assert!(reason.contains("cannot connect to WhatsApp"), "{reason}");
    let status = h.status(user).await;
    assert_eq!(status.state, SessionState::Failed);
    assert!(!events.saw_qr());
}

#[cfg(feature = "simulator")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_simulator_feature_the_simulator_is_trusted() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let mut events = Events::new(&h.hub, user);
    h.manager.initialize(user).await.unwrap();
    events.qr().await;
    assert_eq!(h.status(user).await.last_error, None);
}
