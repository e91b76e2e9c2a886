//! Building and stopping the whatsapp-rust client a session owns, with the tasks that work
//! beside it: its outbox pipeline ([`Sender`]) and its receipts ([`Receipts`]).

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::{Client, ConnectError};

use super::acks::ServerAcks;
use super::fenced_transport::FencedTransports;
use super::inbound::InboundHook;
use super::receipts::Receipts;
use super::sender::Sender;
use super::{WaSessionMsg, Writer};
use crate::store::PgStore;

/// The WhatsApp Web version the client announces. Pinned, so the client never fetches
/// WhatsApp's service worker to learn it (and needs no HTTP client for that).
const WHATSAPP_WEB_VERSION: (u32, u32, u32) = (2, 3000, 1_023_000_000);

/// How long a graceful stop may take before the client task is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Texts only: the client's HTTP needs (version fetch, media) never arise.
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!(
            "botwave sessions make no HTTP requests (asked for {})",
            request.url
        ))
    }
}

fn transport(whatsapp_url: Option<&str>) -> TokioWebSocketTransportFactory {
    let factory = TokioWebSocketTransportFactory::new();
    match whatsapp_url {
        Some(url) => factory.with_url(url),
        None => factory,
    }
}

/// Why the WhatsApp server cannot be reached.
pub struct Unreachable {
    pub reason: String,
    /// Retrying cannot help (e.g. the server's certificate chain is not WhatsApp's).
    pub permanent: bool,
}

/// Connects once with a throwaway device and reports what went wrong, if anything.
///
/// The client's own loop only logs connect failures and retries forever, so a session
/// that makes no progress asks this to learn (and show) why.
pub async fn probe(whatsapp_url: Option<&str>) -> Result<(), Unreachable> {
    let bot = Bot::builder()
        .with_backend(InMemoryBackend::new())
        .with_transport_factory(transport(whatsapp_url))
        .with_http_client(NoHttp)
        .with_version(WHATSAPP_WEB_VERSION)
        .skip_history_sync()
        .build()
        .await
        .map_err(|error| Unreachable {
            reason: format!("cannot build a WhatsApp client: {error}"),
            permanent: false,
        })?;
    let client = bot.client();
    let connected = tokio::time::timeout(STOP_TIMEOUT, client.connect()).await;
    client.disconnect().await;
    match connected {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Unreachable {
            permanent: matches!(&error, ConnectError::Handshake(h) if !h.is_transient()),
            reason: format!("cannot connect to WhatsApp: {error:#}"),
        }),
        Err(_) => Err(Unreachable {
            reason: "cannot connect to WhatsApp: no answer in time".into(),
            permanent: false,
        }),
    }
}

/// A running whatsapp-rust client whose events go to a session actor.
///
/// Dropping it (a killed or panicked actor drops its state) still shuts the client down,
/// in the background: a client outliving its actor would fight the restarted one for
/// the same device.
pub struct RunningClient {
    /// Declared first: the outbox pipeline stops before the client does.
    sender: Sender,
    _receipts: Receipts,
    client: Arc<Client>,
    handle: Option<BotHandle>,
    /// Cuts the client off when the lease is lost; ends with the client.
    fence_watch: tokio::task::AbortHandle,
    /// Tells the inbound hook to stop retrying a write: the client is being stopped (dropping
    /// it tells the same).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl RunningClient {
    /// Builds the client on `store` and starts its connection loop, its outbox pipeline
    /// (idle until [`RunningClient::set_connected`]) and its receipts task. The moment the
    /// lease is lost its socket is closed, whatever the session actor is busy with (a node
    /// cut off from the database may be stuck in a query), the actor is told, and the client
    /// is disconnected; it opens no connection without the lease.
    pub async fn start(
        store: PgStore,
        whatsapp_url: Option<&str>,
        pacing: Arc<crate::pacing::PacingSettings>,
        writer: Writer,
        session: ActorRef<WaSessionMsg>,
    ) -> Result<Self, String> {
        let watcher = session.clone();
        let (receipts, receipt_sink) = Receipts::start(writer.clone());
        let acks = Arc::new(ServerAcks::default());
        let acks_seen = acks.clone();
        let transports = FencedTransports::new(transport(whatsapp_url), writer.fence.clone());
        let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
        let bot = Bot::builder()
            .with_backend(store)
            .with_transport_factory(transports.clone())
            .with_http_client(NoHttp)
            .with_version(WHATSAPP_WEB_VERSION)
            .skip_history_sync()
            .with_inbound_durability_hook(InboundHook::new(writer.clone(), stopping_seen))
            .on_event(move |event, _client| {
                let session = session.clone();
                let receipts = receipt_sink.clone();
                let acks = acks_seen.clone();
                async move {
                    match &*event {
                        // Only the sends care, and they must not wait behind the actor.
                        Event::ServerAck(ack) => {
                            acks.offer(ack);
                            return;
                        }
                        Event::Disconnected(_) => acks.connection_lost(),
                        _ => {}
                    }
                    // Stored by the inbound hook already (see `inbound`).
                    if matches!(&*event, Event::Messages(_)) {
                        return;
                    }
                    if let Event::Receipt(receipt) = &*event
                        && receipts.offer(receipt).await
                    {
                        return;
                    }
                    // A stopped actor has nobody left to tell.
                    let _ = session.cast(WaSessionMsg::Client(event));
                }
            })
            .build()
            .await
            .map_err(|error| format!("cannot build the WhatsApp client: {error}"))?;
        let client = bot.client();
        let handle = bot.spawn();
        let cut_off = client.clone();
        let fence = writer.fence.clone();
        let sender = Sender::start(writer, client.clone(), acks, pacing);
        let fence_watch = tokio::spawn(async move {
            fence.lost().await;
            // The socket first: the client's own disconnect writes to the database before
            // it closes it, and that may hang as long as the database does.
            transports.close_current().await;
            let _ = watcher.cast(WaSessionMsg::LeaseLost);
            cut_off.disconnect().await;
        })
        .abort_handle();
        Ok(Self {
            sender,
            _receipts: receipts,
            client,
            handle: Some(handle),
            fence_watch,
            stopping,
        })
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Logged in and past the initial sync (or not any more): the outbox goes out (or waits).
    pub fn set_connected(&self, connected: bool) {
        self.sender.set_connected(connected);
    }

    /// The outbox may hold something new.
    pub fn wake_sender(&self) {
        self.sender.wake();
    }

    /// Disconnects (flushing what the client buffers) and waits for its loop to end.
    pub async fn stop(mut self) {
        self.stopping.send_replace(true);
        if let Some(handle) = self.handle.take()
            && tokio::time::timeout(STOP_TIMEOUT, handle.shutdown())
                .await
                .is_err()
        {
            tracing::warn!("WhatsApp client did not stop in time; aborted");
        }
    }

    /// Removes this device from the WhatsApp account (best effort when offline), then
    /// waits for the client to stop.
    pub async fn logout(mut self) {
        self.stopping.send_replace(true);
        if tokio::time::timeout(STOP_TIMEOUT, self.client.logout())
            .await
            .is_err()
        {
            tracing::warn!("WhatsApp logout did not finish in time");
        }
        if let Some(handle) = self.handle.take() {
            stop_handle(handle).await;
        }
    }
}

/// Stops a client loop and waits for it, with a deadline (dropping the handle aborts it).
async fn stop_handle(handle: BotHandle) {
    handle.client().disconnect().await;
    if tokio::time::timeout(STOP_TIMEOUT, handle).await.is_err() {
        tracing::warn!("WhatsApp client did not stop in time; aborted");
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        self.fence_watch.abort();
        self.stopping.send_replace(true);
        let Some(handle) = self.handle.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            handle.abort();
            return;
        };
        runtime.spawn(stop_handle(handle));
    }
}
