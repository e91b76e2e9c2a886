//! Test helpers: start a simulator, run a real whatsapp-rust client against it, and
//! wait for the client's events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use botwave_wa_sim::{SimConfig, SimHandle, Simulator};
use tokio::sync::mpsc;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::store::traits::DeviceStore;
use whatsapp_rust::{Client, InboundDurabilityHook};

/// Generous upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub async fn start_sim(config: SimConfig) -> SimHandle {
    init_logs();
    Simulator::start(config).await.expect("simulator starts")
}

/// The client never needs HTTP here (its version is pinned); any call is a test bug.
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!(
            "unexpected HTTP request to {}",
            request.url
        ))
    }
}

pub struct TestClient {
    pub backend: Arc<InMemoryBackend>,
    pub client: Arc<Client>,
    pub events: Events,
    handle: Option<BotHandle>,
}

pub struct Events {
    rx: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl Events {
    /// The first event `pick` maps to `Some`, skipping the others; panics after `WAIT`.
    pub async fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        self.wait_for(WAIT, what, &mut pick)
            .await
            .unwrap_or_else(|| panic!("timed out waiting for {what}"))
    }

    /// Waits for an incoming text message `text`.
    pub async fn wait_text(&mut self, text: &str) {
        self.wait(&format!("the text {text:?}"), |e| match e {
            Event::Messages(batch) => batch
                .iter()
                .any(|m| m.message.conversation.as_deref() == Some(text))
                .then_some(()),
            _ => None,
        })
        .await
    }

    /// Like [`Self::wait`] but returns `None` after `timeout`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        _what: &str,
        pick: &mut impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            if let Some(found) = pick(&event) {
                return Some(found);
            }
        }
    }
}

/// A client's inbound durability hook that refuses messages while it is closed: the client
/// then sends no receipt, as when its application could not store a message.
#[derive(Default)]
pub struct AckGate {
    closed: AtomicBool,
    refused: AtomicUsize,
}

impl AckGate {
    pub fn closed() -> Arc<Self> {
        let gate = Self::default();
        gate.closed.store(true, Ordering::SeqCst);
        Arc::new(gate)
    }

    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }

    /// Batches refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

struct GateHook(Arc<AckGate>);

#[async_trait::async_trait]
impl InboundDurabilityHook for GateHook {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        _batch: &[whatsapp_rust::types::events::InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        if self.0.closed.load(Ordering::SeqCst) {
            self.0.refused.fetch_add(1, Ordering::SeqCst);
            return Err(whatsapp_rust::anyhow::anyhow!("the gate is closed"));
        }
        Ok(())
    }
}

impl TestClient {
    /// A client with a fresh store.
    pub async fn start(sim: &SimHandle) -> Self {
        Self::start_with(sim, Arc::new(InMemoryBackend::new())).await
    }

    /// A client on an existing store (a restart of the same device).
    pub async fn start_with(sim: &SimHandle, backend: Arc<InMemoryBackend>) -> Self {
        Self::build(sim, backend, true, None).await
    }

    /// Like [`Self::start_with`], for a client that processes the history the phone
    /// sends instead of skipping it.
    pub async fn start_with_history(sim: &SimHandle, backend: Arc<InMemoryBackend>) -> Self {
        Self::build(sim, backend, false, None).await
    }

    /// A client with a fresh store that acknowledges a received message only when `gate`
    /// lets it.
    pub async fn start_gated(sim: &SimHandle, gate: Arc<AckGate>) -> Self {
        Self::build(sim, Arc::new(InMemoryBackend::new()), true, Some(gate)).await
    }

    async fn build(
        sim: &SimHandle,
        backend: Arc<InMemoryBackend>,
        skip_history: bool,
        gate: Option<Arc<AckGate>>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend_arc(backend.clone())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(sim.ws_url()))
            .with_http_client(NoHttp)
            .with_version((2, 3000, 0));
        if skip_history {
            builder = builder.skip_history_sync();
        }
        if let Some(gate) = gate {
            builder = builder.with_inbound_durability_hook(GateHook(gate));
        }
        let bot = builder
            .on_event(move |event, _client| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .build()
            .await
            .expect("bot builds");
        let client = bot.client();
        let handle = bot.spawn();
        Self {
            backend,
            client,
            events: Events { rx },
            handle: Some(handle),
        }
    }

    pub async fn next_qr(&mut self) -> String {
        self.events
            .wait("a QR code", |e| match e {
                Event::PairingQrCode(qr) => Some(qr.code.clone()),
                _ => None,
            })
            .await
    }

    pub async fn connected(&mut self) {
        self.events
            .wait("Connected", |e| {
                matches!(e, Event::Connected(_)).then_some(())
            })
            .await
    }

    /// A new store holding this client's device credentials, as another node of a
    /// cluster would load them: a client on it logs in as the same device.
    pub async fn copy_of_store(&self) -> Arc<InMemoryBackend> {
        let device = self.client.persistence_manager().get_device_snapshot();
        let copy = Arc::new(InMemoryBackend::new());
        copy.save(&device).await.expect("the copy saves");
        copy
    }

    /// Stops the client and waits for its run loop to end.
    pub async fn stop(mut self) -> Arc<InMemoryBackend> {
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle.shutdown()).await;
        }
        self.backend.clone()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Pairs a new client to phone `number` and waits until it is connected.
pub async fn paired_client(sim: &SimHandle, number: &str) -> TestClient {
    pair(sim, number, TestClient::start(sim).await).await
}

/// [`paired_client`] for a client whose acknowledgements `gate` holds back.
pub async fn paired_gated_client(sim: &SimHandle, number: &str, gate: Arc<AckGate>) -> TestClient {
    pair(sim, number, TestClient::start_gated(sim, gate).await).await
}

async fn pair(sim: &SimHandle, number: &str, mut client: TestClient) -> TestClient {
    let qr = client.next_qr().await;
    sim.scan(number, &qr).await.expect("scan succeeds");
    client.connected().await;
    client
}

/// Polls `check` until it returns `Some`, panicking after `WAIT`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn pn(number: &str) -> whatsapp_rust::Jid {
    whatsapp_rust::Jid::pn(number)
}
