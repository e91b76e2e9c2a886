//! Test fixtures: a database, a simulator, a session manager, and waiting for events.
#![cfg_attr(not(feature = "simulator"), allow(dead_code, unused_imports))]

use std::time::Duration;

use botwave_actors::outbox::{self, Message, MessageSource, MessageStatus, NewMessage};
use botwave_actors::sessions::{self, SessionStatus};
use botwave_actors::{EventHub, NodeIdentity, SessionConfig, SessionEvent, SessionManager};
use botwave_wa_sim::{PhoneInfo, SimConfig, SimHandle, Simulator};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::common::TestDatabase;

/// Generous: the first login after pairing alone takes seconds in a debug build.
pub const WAIT: Duration = Duration::from_secs(90);

pub struct Harness {
    pub db: TestDatabase,
    pub sim: SimHandle,
    pub hub: EventHub,
    pub manager: SessionManager,
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn config(sim: &SimHandle) -> SessionConfig {
    SessionConfig {
        whatsapp_url: Some(sim.ws_url()),
        restart_base: Duration::from_millis(200),
        restart_max: Duration::from_secs(2),
        restart_budget: 3,
        // Tests send many messages at once; pacing tests set their own.
        pacing: botwave_actors::pacing::PacingSettings {
            enabled: false,
            ..Default::default()
        },
        ..SessionConfig::default()
    }
}

/// A fresh node incarnation, as each process start is.
pub fn node() -> NodeIdentity {
    NodeIdentity::new("test-node")
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(sim_config: SimConfig) -> Self {
        init_logs();
        let db = TestDatabase::create().await;
        let sim = Simulator::start(sim_config)
            .await
            .expect("simulator starts");
        let hub = EventHub::new(4096);
        let manager = SessionManager::start(
            db.pool.clone(),
            db.lease_pool().await,
            hub.clone(),
            config(&sim),
            node(),
        )
        .await
        .expect("manager starts");
        Self {
            db,
            sim,
            hub,
            manager,
        }
    }

    /// Stops the manager and starts a fresh one on the same database (a node restart).
    pub async fn restart_node(&mut self) {
        self.manager.shutdown().await;
        self.start_node_with(config(&self.sim)).await;
    }

    /// Starts a fresh manager with `config` on the same database, the old one stopped.
    pub async fn start_node_with(&mut self, config: SessionConfig) {
        self.manager = SessionManager::start(
            self.db.pool.clone(),
            self.db.lease_pool().await,
            self.hub.clone(),
            config,
            node(),
        )
        .await
        .expect("manager restarts");
    }

    pub async fn create_user(&self) -> Uuid {
        let id = Uuid::new_v4();
        let conn = self.db.pool.get().await.unwrap();
        conn.execute(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')",
            &[&id, &format!("{id}@example.test")],
        )
        .await
        .unwrap();
        id
    }

    pub async fn status(&self, user_id: Uuid) -> SessionStatus {
        sessions::status(&self.db.pool, user_id)
            .await
            .unwrap()
            .expect("a session row")
    }

    /// Initializes `user_id`'s session and links it to `phone` by scanning its QR code.
    pub async fn pair(&self, user_id: Uuid, phone: &str) {
        let mut events = Events::new(&self.hub, user_id);
        self.manager.initialize(user_id).await.unwrap();
        let qr = events.qr().await;
        self.sim.scan(phone, &qr).await.expect("scan succeeds");
        let connected_phone = events.connected().await;
        assert_eq!(connected_phone, phone);
    }

    pub async fn enqueue(&self, user_id: Uuid, recipient: &str, body: &str) -> Message {
        let (message, created) = outbox::enqueue(
            &self.db.pool,
            NewMessage {
                user_id,
                recipient: recipient.to_owned(),
                body: body.to_owned(),
                source: MessageSource::Api,
                api_key_id: None,
                idempotency_key: None,
            },
        )
        .await
        .unwrap();
        assert!(created);
        assert_eq!(message.status, MessageStatus::Queued);
        message
    }

    pub async fn message(&self, user_id: Uuid, id: Uuid) -> Message {
        outbox::get(&self.db.pool, user_id, id)
            .await
            .unwrap()
            .expect("the message row")
    }

    /// The companions the simulator has paired to `phone`.
    pub async fn companions(&self, phone: &str) -> Vec<String> {
        let phones: Vec<PhoneInfo> = reqwest::get(format!("{}/phones", self.sim.control_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        phones
            .into_iter()
            .find(|p| p.number == phone)
            .map(|p| p.companions)
            .unwrap_or_default()
    }
}

/// One user's events, in order.
pub struct Events {
    rx: broadcast::Receiver<SessionEvent>,
    user_id: Uuid,
    /// Everything seen so far, for assertions about what did (not) happen.
    pub seen: Vec<SessionEvent>,
}

impl Events {
    pub fn new(hub: &EventHub, user_id: Uuid) -> Self {
        Self {
            rx: hub.subscribe(),
            user_id,
            seen: Vec::new(),
        }
    }

    /// The first event of this user that `pick` maps to `Some`; panics after [`WAIT`].
    pub async fn wait<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&SessionEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Ok(event)) => event,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("hub closed"),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
            };
            if event.user_id() != self.user_id {
                continue;
            }
            self.seen.push(event.clone());
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    pub async fn qr(&mut self) -> String {
        self.wait("a QR code", |e| match e {
            SessionEvent::QrCode { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for `whatsapp_connected`; returns the phone number.
    pub async fn connected(&mut self) -> String {
        self.wait("whatsapp_connected", |e| match e {
            SessionEvent::WhatsappConnected { phone, .. } => Some(phone.clone()),
            _ => None,
        })
        .await
    }

    pub async fn disconnected(&mut self) -> String {
        self.wait("whatsapp_disconnected", |e| match e {
            SessionEvent::WhatsappDisconnected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    /// Waits until message `id` reaches `status`; returns the event's error.
    /// Waits until message `id` was announced in `status` (also if that came before other
    /// events waited for: messages to different chats go out side by side); its error.
    pub async fn message_status(&mut self, id: Uuid, status: MessageStatus) -> Option<String> {
        let pick = |e: &SessionEvent| match e {
            SessionEvent::MessageStatus {
                message_id,
                status: s,
                error,
                ..
            } if *message_id == id && *s == status => Some(error.clone()),
            _ => None,
        };
        if let Some(error) = self.seen.iter().find_map(pick) {
            return error;
        }
        self.wait(&format!("message {id} {status:?}"), pick).await
    }

    pub fn saw_qr(&self) -> bool {
        self.seen
            .iter()
            .any(|e| matches!(e, SessionEvent::QrCode { .. }))
    }
}

/// Polls `check` until it returns `Some`, panicking after [`WAIT`].
pub async fn eventually<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
