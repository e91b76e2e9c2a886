//! Starts the simulator: one HTTP listener serving the WhatsApp websocket at
//! `/ws/chat` and the control API under `/control/`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;
use warp::Filter;

use crate::account::ClientReceipt;
use crate::config::{ReceiptMode, SimConfig};
use crate::delivery::{self, DeliveryError, SentText};
use crate::double_connection::DoubleConnections;
use crate::inbox::ReceivedText;
use crate::pair_code::PairCodeError;
use crate::scan::{self, Paired, ScanError};
use crate::stanza::ReceiptKind;
use crate::state::{ConnCommand, DeviceKey, KickKind, Shared, lock};
use crate::stats::StatsSnapshot;
use crate::{connection, control};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Account(#[from] crate::account::AccountError),
    #[error(transparent)]
    Certificate(#[from] crate::noise::CertificateError),
}

pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` (port 0 picks a free port) and serves in the background
    /// until the handle is shut down or dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let max_message = config.max_frame_len + 64;
        let shared = Arc::new(Shared::new(config)?);

        let ws_shared = shared.clone();
        let websocket = warp::path!("ws" / "chat")
            .and(warp::ws())
            .map(move |ws: warp::ws::Ws| {
                let shared = ws_shared.clone();
                ws.max_message_size(max_message)
                    .max_frame_size(max_message)
                    .on_upgrade(move |socket| connection::serve(socket, shared))
            });
        let routes = websocket
            .map(|reply| Box::new(reply) as Box<dyn warp::Reply>)
            .or(control::routes(shared.clone())
                .map(|reply| Box::new(reply) as Box<dyn warp::Reply>))
            .unify()
            .recover(control::recover)
            .with(warp::trace::request())
            .boxed();

        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async {
                    let _ = shutdown_rx.await;
                })
                .run(),
        );
        info!(%addr, "WhatsApp simulator listening");
        Ok(SimHandle {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }
}

/// A running simulator. The same operations as the control API are available as
/// methods, for in-process tests.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://host:port/ws/chat`, for the client's transport factory.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://host:port/control`.
    pub fn control_url(&self) -> String {
        format!("{}/control", self.base_url())
    }

    /// Creates phone `number` with `devices` simulated devices (no-op if it exists).
    pub fn create_phone(&self, number: &str, devices: u16) -> Result<(), SimError> {
        self.shared.create_account(number, devices)?;
        Ok(())
    }

    /// The LID user of phone `number` (`None` if it is not on WhatsApp).
    pub fn lid(&self, number: &str) -> Option<String> {
        let account = self.shared.account(number)?;
        Some(lock(&account).lid.clone())
    }

    /// The push name of phone `number`'s user, the one its companions learn from app state
    /// (`None` if it is not on WhatsApp).
    pub fn push_name(&self, number: &str) -> Option<String> {
        let account = self.shared.account(number)?;
        Some(lock(&account).push_name().to_owned())
    }

    /// Phone `number` (created if needed) scans `qr`; returns the paired companion.
    pub async fn scan(&self, number: &str, qr: &str) -> Result<Paired, ScanError> {
        scan::scan(&self.shared, number, qr).await
    }

    /// The user of phone `number` (created if needed) types link code `code` for the
    /// companion that asked to be linked to that number; same as `POST /control/pair-code`.
    pub async fn enter_pair_code(&self, number: &str, code: &str) -> Result<Paired, PairCodeError> {
        crate::pair_code::enter_code(&self.shared, number, code).await
    }

    /// Texts phone `number` decrypted so far.
    pub fn messages(&self, number: &str) -> Vec<ReceivedText> {
        self.shared
            .account(number)
            .map(|account| lock(&account).inbox().to_vec())
            .unwrap_or_default()
    }

    /// How many copies of messages phone `number` had already received and did not keep
    /// again (a sender repeating a message id); the phone's `duplicates`.
    pub fn duplicates(&self, number: &str) -> u64 {
        self.shared
            .account(number)
            .map(|account| lock(&account).duplicates())
            .unwrap_or_default()
    }

    /// Receipts clients sent phone `number` for messages it sent them.
    pub fn receipts(&self, number: &str) -> Vec<ClientReceipt> {
        self.shared
            .account(number)
            .map(|account| lock(&account).receipts().to_vec())
            .unwrap_or_default()
    }

    /// Phone `from` sends `text` to the clients paired to `to`.
    pub fn send_text(&self, from: &str, to: &str, text: &str) -> Result<SentText, DeliveryError> {
        delivery::send_text(&self.shared, from, to, text)
    }

    /// Phone `from` sends `message` (see `phone::image_message`, `location_message`) to the
    /// clients paired to `to`; same as `POST /control/phones/{from}/send`.
    pub fn send_message(
        &self,
        from: &str,
        to: &str,
        message: waproto::whatsapp::Message,
    ) -> Result<SentText, DeliveryError> {
        delivery::send_message(&self.shared, from, to, message, delivery::Addressing::Pn)
    }

    /// Phone `from` sends its message `id` again, encrypted anew; same as
    /// `POST /control/phones/{from}/resend`.
    pub fn resend(&self, from: &str, id: &str) -> Result<SentText, DeliveryError> {
        delivery::resend(&self.shared, from, id)
    }

    /// How many messages companion `device` of `number` has not acknowledged yet.
    pub fn unacked(&self, number: &str, device: u16) -> usize {
        self.shared
            .account(number)
            .map(|account| lock(&account).unacked_count(device))
            .unwrap_or_default()
    }

    /// Phone `number` sends a receipt for message `id` it received.
    pub fn send_receipt(
        &self,
        number: &str,
        id: &str,
        kind: ReceiptKind,
    ) -> Result<(), DeliveryError> {
        delivery::receipt_on_command(&self.shared, number, id, kind)
    }

    /// Kicks a device like `POST /control/devices/{jid}/kick`. `logout`, `failure401`
    /// and `ban` take effect on the account even when the device is offline; the
    /// result says whether a live connection of the device was acted on.
    pub fn kick(&self, number: &str, device: u16, kind: KickKind) -> bool {
        let key = DeviceKey::new(number, device);
        if let Some(account) = self.shared.account(number) {
            let mut account = lock(&account);
            match kind {
                KickKind::Logout => {
                    account.remove_companion(device);
                }
                KickKind::Failure401 => {
                    account.set_next_login(device, crate::account::NextLogin::Refuse401);
                }
                KickKind::Ban => {
                    account.set_next_login(device, crate::account::NextLogin::Ban);
                }
                KickKind::Drop | KickKind::Replaced | KickKind::Restart => {}
            }
        }
        self.shared.send_to_device(&key, ConnCommand::Kick(kind))
    }

    /// Whether `device` of `number` has a live, logged-in connection.
    pub fn is_connected(&self, number: &str, device: u16) -> bool {
        self.shared
            .live_connection(&DeviceKey::new(number, device))
            .is_some()
    }

    /// How often two connections of companion `device` of `number` were logged in at
    /// once, and the longest such overlap (as in the phone's `companion_devices`).
    pub fn double_connections(&self, number: &str, device: u16) -> DoubleConnections {
        self.shared
            .stats
            .double_connections
            .of_device(&DeviceKey::new(number, device))
    }

    pub fn set_receipt_mode(&self, mode: ReceiptMode) {
        self.shared.set_receipt_mode(mode);
    }

    /// The next `count` message acks to `number`'s companions get lost on the way (the
    /// messages still reach their recipients); answers the switch.
    pub fn set_lost_acks(&self, number: &str, count: u32) -> crate::state::LostAcks {
        self.shared.set_lost_acks(number, count)
    }

    pub fn set_latency(&self, latency: std::time::Duration) {
        self.shared.set_latency(latency);
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The public key of the root that signs this simulator's Noise certificate chain
    /// (made at start, like `GET /control/root-key`). A client that pins it instead of
    /// WhatsApp's can verify the chain for real.
    pub fn noise_root_public_key(&self) -> [u8; 32] {
        self.shared.noise.root_public()
    }

    /// The server static Noise key that handshakes use now (the chain's leaf key).
    pub fn noise_static_public_key(&self) -> [u8; 32] {
        self.shared.noise.current().static_public()
    }

    /// Replaces the server static key (with a new leaf from the same intermediate),
    /// as when WhatsApp rotates its keys. Live connections are unaffected. A client
    /// that resumes with IK against the old key gets XXfallback and learns the new
    /// one. Returns the new key.
    pub fn rotate_noise_static_key(&self) -> Result<[u8; 32], SimError> {
        Ok(self.shared.noise.rotate_static_key()?)
    }

    /// Closes every client connection, stops accepting new ones and waits (briefly)
    /// for the server task.
    pub async fn shutdown(mut self) {
        self.shared.stop();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// How long [`SimHandle::shutdown`] lets open HTTP exchanges finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
