//! Spawns a real node (the same `Application` the binary runs) on port 0 with its own fresh
//! database, and speaks HTTP to it like any client would.

use std::time::Duration;

use botwave::{
    config::{
        DatabaseSettings, LimitSettings, PacingSettings, PlanSettings, Settings, WhatsappSettings,
    },
    startup::Application,
};
use botwave_wa_sim::{SimConfig, SimHandle, Simulator};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::common::TestDatabase;

pub const PASSWORD: &str = "Correct-Horse-42";

/// A running node, its database and the WhatsApp simulator it talks to.
pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub sim: SimHandle,
    pub client: reqwest::Client,
    /// The running node's event hub.
    pub events: botwave_actors::EventHub,
    /// The (method, path template) of every operation the running node's router serves.
    pub served_operations: Vec<(String, String)>,
    settings: Settings,
    node: Option<RunningNode>,
}

struct RunningNode {
    shutdown: tokio::sync::oneshot::Sender<()>,
    stopped: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = node.shutdown.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Request rate limits no test trips by sending fast (the fuzz and contract tests send
/// thousands of requests with one key); the limit tests set small ones.
pub const GENEROUS_LIMITS: LimitSettings = LimitSettings {
    requests_per_second: 1_000_000.0,
    burst: 1_000_000,
};

/// Settings for a test node: port 0, a private data directory, this test's database and
/// simulator, and generous request rate limits.
pub fn node_settings(db: &TestDatabase, sim: &SimHandle) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("botwave-test-{}", uuid::Uuid::new_v4())),
        database: DatabaseSettings {
            url: Some(db.url.clone()),
            pool_size: 8,
        },
        whatsapp: WhatsappSettings {
            url: Some(sim.ws_url()),
            ..WhatsappSettings::default()
        },
        limits: GENEROUS_LIMITS,
        // Tests send far more than the default plan's quotas allow; the plan tests turn
        // enforcement on (`plans.enforce = true`, the production default) for themselves.
        plans: PlanSettings { enforce: false },
        // Tests send many messages at once; the pacing tests set it per account.
        pacing: PacingSettings {
            enabled: false,
            ..PacingSettings::default()
        },
        ..Settings::default()
    }
}

/// A node whose settings the test adjusts first (rate limits, token lifetime, …).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create().await;
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let mut settings = node_settings(&db, &sim);
    configure(&mut settings);

    let mut app = TestApp {
        address: String::new(),
        db,
        sim,
        // Longer than anything the node or the simulator waits for itself (the simulator gives
        // a typed link code 30 s to complete), so their own answer is what a test sees.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        events: botwave_actors::EventHub::default(),
        served_operations: Vec::new(),
        settings,
        node: None,
    };
    app.start_node().await;
    app
}

impl RunningNode {
    /// Builds a node from `settings` and serves it in the background; answers its address,
    /// event hub and the operations it serves.
    async fn start(
        settings: &Settings,
    ) -> (
        String,
        botwave_actors::EventHub,
        Vec<(String, String)>,
        RunningNode,
    ) {
        let node = Application::build(settings).await.expect("node starts");
        let address = format!("http://{}", node.local_addr());
        let events = node.events();
        let served = node.served_operations();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let stopped = tokio::spawn(node.run_until(async {
            let _ = stop.await;
        }));
        (address, events, served, RunningNode { shutdown, stopped })
    }

    /// Stops the node as SIGTERM would (its sessions handed over) and waits until it has.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.stopped.await.unwrap();
    }
}

/// Another node on a test app's database and simulator: the two form a cluster (without
/// links between them, which placement and the admin cluster page do not need). Used by the
/// browser suite.
#[allow(dead_code)]
pub struct PeerNode {
    pub address: String,
    node: Option<RunningNode>,
}

#[allow(dead_code)]
impl PeerNode {
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }
}

impl Drop for PeerNode {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = node.shutdown.send(());
        }
    }
}

impl TestApp {
    async fn start_node(&mut self) {
        let (address, events, served, node) = RunningNode::start(&self.settings).await;
        self.address = address;
        self.events = events;
        self.served_operations = served;
        self.node = Some(node);
    }

    /// Stops the node completely (its sessions included); the database and simulator stay.
    pub async fn stop_node(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    /// Starts a second node called `name` on this app's database and simulator (with a data
    /// directory of its own).
    #[allow(dead_code)]
    pub async fn spawn_peer(&self, name: &str) -> PeerNode {
        let mut settings = node_settings(&self.db, &self.sim);
        settings.cluster = self.settings.cluster.clone();
        settings.cluster.node_name = Some(name.to_owned());
        settings.webhooks = self.settings.webhooks.clone();
        settings.limits = self.settings.limits.clone();
        settings.plans = self.settings.plans.clone();
        let (address, _, _, node) = RunningNode::start(&settings).await;
        PeerNode {
            address,
            node: Some(node),
        }
    }

    /// Starts a new node on the same database, data directory and simulator.
    pub async fn restart_node(&mut self) {
        self.stop_node().await;
        self.start_node().await;
    }
}

/// A registered account and its login token.
pub struct Account {
    pub email: String,
    pub token: String,
    pub id: String,
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers a fresh account with a unique email.
    pub async fn new_account(&self) -> Account {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self.register(&email, PASSWORD).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        Account {
            email,
            token: body["token"].as_str().unwrap().to_owned(),
            id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn me(&self, bearer: &str) -> Response {
        self.request(Method::GET, "/api/auth/me")
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }
}

/// The `error.code` of a JSON error answer, checking its shape on the way.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("errors are JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    body["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

impl TestApp {
    /// A fresh account promoted to admin, logged in again so its token carries the role.
    pub async fn new_admin(&self) -> Account {
        let account = self.new_account().await;
        botwave::users::set_role(
            &self.db.pool,
            account.id.parse().unwrap(),
            botwave::domain::Role::Admin,
        )
        .await
        .unwrap();
        let body: Value = self
            .login(&account.email, PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        Account {
            token: body["token"].as_str().unwrap().to_owned(),
            ..account
        }
    }
}
