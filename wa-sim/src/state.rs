//! The simulator's shared state: accounts by phone number and LID, live connections
//! by device, QR refs handed to unpaired connections (and their link-code requests),
//! runtime settings and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wacore_binary::{Jid, Node, Server};

use crate::account::Account;
use crate::config::{ReceiptMode, SimConfig};
use crate::noise::{CertificateError, NoiseKeys};
use crate::stats::Stats;

/// A device of an account: `(phone number, device id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub number: String,
    pub device: u16,
}

impl DeviceKey {
    pub fn new(number: impl Into<String>, device: u16) -> Self {
        Self {
            number: number.into(),
            device,
        }
    }

    pub fn jid(&self) -> Jid {
        Jid::pn_device(self.number.as_str(), self.device)
    }
}

/// How the server ends a client's session on command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KickKind {
    /// Close the socket without a stanza; the client reconnects by itself.
    Drop,
    /// `<conflict type="replaced"/>`: the client reports `StreamReplaced` and stops.
    Replaced,
    /// The device is removed from the account (`<conflict type="device_removed"/>`);
    /// the client reports `LoggedOut`, later logins get `<failure reason="401"/>`.
    Logout,
    /// Drop the socket now and answer the next login with `<failure reason="401"/>`.
    Failure401,
    /// Drop the socket now and answer the next login with a temporary ban (402).
    Ban,
    /// `<stream:error code="515"/>`: the client reconnects at once.
    Restart,
}

/// Messages other tasks send to a connection's task.
pub enum ConnCommand {
    /// Send a stanza as is.
    Send(Node),
    /// End the session the way `KickKind` describes.
    Kick(KickKind),
    /// A phone scanned this connection's QR: send pair-success and report the outcome.
    PairSuccess(Box<PairingStart>),
}

/// Everything a connection needs to finish a pairing the control API started.
pub struct PairingStart {
    pub iq_id: String,
    pub node: Node,
    pub device: DeviceKey,
    pub reply: oneshot::Sender<Result<Jid, String>>,
}

/// Why a scanned ref cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefClaimError {
    Unknown,
    Expired,
}

pub type CommandSender = mpsc::UnboundedSender<ConnCommand>;

/// A live connection as seen from outside its task.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub commands: CommandSender,
}

/// A ref handed to an unpaired connection.
pub struct PendingRef {
    pub conn: ConnHandle,
    pub noise_public: [u8; 32],
    /// `None` while the client's own timers rule; otherwise when the server retires it.
    pub expires_at: Option<Instant>,
}

pub struct Shared {
    pub config: SimConfig,
    /// The static key handshakes use and the certificate chain vouching for it.
    pub noise: NoiseKeys,
    pub stats: Stats,
    accounts: RwLock<AccountIndex>,
    live: Mutex<HashMap<DeviceKey, ConnHandle>>,
    refs: Mutex<HashMap<String, PendingRef>>,
    /// Companions waiting to be linked by code, by phone number.
    pub link_codes: crate::pair_code::LinkCodeRequests,
    receipts: Mutex<ReceiptMode>,
    latency_ms: AtomicU64,
    /// Phones whose companions' sends WhatsApp refuses as over its rate, by number.
    rate_overlimit: Mutex<HashMap<String, RateOverlimit>>,
    /// Phones whose companions' next message acks get lost, by number.
    lost_acks: Mutex<HashMap<String, LostAcks>>,
    next_id: AtomicU64,
    /// Flips to true when the simulator stops; every connection closes on it.
    stopping: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct AccountIndex {
    by_number: HashMap<String, Arc<Mutex<Account>>>,
    number_by_lid: HashMap<String, String>,
}

/// `PUT /control/phones/{number}/rate-overlimit`: WhatsApp refuses the next `remaining`
/// sends of the phone's companions with `rate-overlimit` (429), as it answers a number that
/// sends too fast.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateOverlimit {
    /// Sends still to refuse.
    pub remaining: u32,
    /// The `backoff` (seconds) the refusal names, if any.
    pub backoff_secs: Option<u32>,
    /// Sends refused so far.
    pub refused: u64,
}

/// `PUT /control/phones/{number}/lost-acks`: WhatsApp takes the next `remaining` messages of
/// the phone's companions (they reach their recipients) but their `<ack>` never reaches the
/// sender, as when a connection breaks between the two.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LostAcks {
    /// Acks still to lose.
    pub remaining: u32,
    /// Acks lost so far.
    pub lost: u64,
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it: one bad
/// request must not wedge the whole simulator.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// LIDs are 15-digit numbers unrelated to the phone number, like WhatsApp's.
const FIRST_LID: u64 = 100_200_300_400_000;

impl Shared {
    pub fn new(config: SimConfig) -> Result<Self, CertificateError> {
        let latency_ms = config.latency.as_millis() as u64;
        let receipts = config.receipts;
        Ok(Self {
            config,
            noise: NoiseKeys::generate()?,
            stats: Stats::default(),
            accounts: RwLock::default(),
            live: Mutex::default(),
            refs: Mutex::default(),
            link_codes: Default::default(),
            receipts: Mutex::new(receipts),
            latency_ms: AtomicU64::new(latency_ms),
            rate_overlimit: Mutex::default(),
            lost_acks: Mutex::default(),
            next_id: AtomicU64::new(1),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Tells every connection to close.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Self::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }

    /// The next `count` sends of `number`'s companions are refused as over WhatsApp's rate
    /// (`backoff_secs`: the wait the refusal asks for); 0 lifts it. Answers the switch.
    pub fn set_rate_overlimit(
        &self,
        number: &str,
        count: u32,
        backoff_secs: Option<u32>,
    ) -> RateOverlimit {
        let mut switches = lock(&self.rate_overlimit);
        let switch = switches.entry(number.to_owned()).or_default();
        switch.remaining = count;
        switch.backoff_secs = backoff_secs;
        *switch
    }

    /// The rate-overlimit switch of `number`.
    pub fn rate_overlimit(&self, number: &str) -> RateOverlimit {
        lock(&self.rate_overlimit)
            .get(number)
            .copied()
            .unwrap_or_default()
    }

    /// Whether this send IQ of `number`'s companion is refused as over the rate: `Some`
    /// with the backoff to name, counting it.
    pub fn take_rate_overlimit(&self, number: &str) -> Option<Option<u32>> {
        let mut switches = lock(&self.rate_overlimit);
        let switch = switches.get_mut(number)?;
        if switch.remaining == 0 {
            return None;
        }
        switch.remaining -= 1;
        switch.refused += 1;
        Some(switch.backoff_secs)
    }

    /// The next `count` message acks to `number`'s companions get lost; 0 lifts it.
    pub fn set_lost_acks(&self, number: &str, count: u32) -> LostAcks {
        let mut switches = lock(&self.lost_acks);
        let switch = switches.entry(number.to_owned()).or_default();
        switch.remaining = count;
        *switch
    }

    /// The lost-acks switch of `number`.
    pub fn lost_acks(&self, number: &str) -> LostAcks {
        lock(&self.lost_acks)
            .get(number)
            .copied()
            .unwrap_or_default()
    }

    /// Whether the ack of this message of `number`'s companion gets lost, counting it.
    pub fn take_lost_ack(&self, number: &str) -> bool {
        let mut switches = lock(&self.lost_acks);
        match switches.get_mut(number) {
            Some(switch) if switch.remaining > 0 => {
                switch.remaining -= 1;
                switch.lost += 1;
                true
            }
            _ => false,
        }
    }

    /// A process-unique number for connection ids, refs and stanza ids.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn receipt_mode(&self) -> ReceiptMode {
        *lock(&self.receipts)
    }

    pub fn set_receipt_mode(&self, mode: ReceiptMode) {
        *lock(&self.receipts) = mode;
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    // ---- accounts ----

    pub fn account(&self, number: &str) -> Option<Arc<Mutex<Account>>> {
        let index = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        index.by_number.get(number).cloned()
    }

    /// The account a PN or LID user belongs to.
    pub fn account_for_jid(&self, jid: &Jid) -> Option<Arc<Mutex<Account>>> {
        let index = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        let number = match jid.server {
            Server::Lid => index.number_by_lid.get(jid.user.as_str())?,
            _ => jid.user.as_str(),
        };
        index.by_number.get(number).cloned()
    }

    /// The phone number behind a PN or LID user, if it is an account here.
    pub fn number_for_jid(&self, jid: &Jid) -> Option<String> {
        let index = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        match jid.server {
            Server::Lid => index.number_by_lid.get(jid.user.as_str()).cloned(),
            _ => index
                .by_number
                .contains_key(jid.user.as_str())
                .then(|| jid.user.to_string()),
        }
    }

    /// Creates the account (a simulated phone with `phone_devices` devices) unless it
    /// exists. Returns it and whether it was created.
    pub fn create_account(
        &self,
        number: &str,
        phone_devices: u16,
    ) -> Result<(Arc<Mutex<Account>>, bool), crate::account::AccountError> {
        let mut index = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = index.by_number.get(number) {
            return Ok((existing.clone(), false));
        }
        let lid = (FIRST_LID + index.by_number.len() as u64).to_string();
        let account = Arc::new(Mutex::new(Account::new(
            number.to_string(),
            lid.clone(),
            phone_devices,
        )?));
        index.number_by_lid.insert(lid, number.to_string());
        index.by_number.insert(number.to_string(), account.clone());
        Ok((account, true))
    }

    pub fn account_numbers(&self) -> Vec<String> {
        let index = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        let mut numbers: Vec<String> = index.by_number.keys().cloned().collect();
        numbers.sort();
        numbers
    }

    // ---- live connections ----

    /// Records `conn` as the live connection of `device`, returning the one it replaces.
    pub fn set_live(&self, device: DeviceKey, conn: ConnHandle) -> Option<ConnHandle> {
        lock(&self.live).insert(device, conn)
    }

    /// Forgets `device`'s live connection if it is still `conn_id`.
    pub fn clear_live(&self, device: &DeviceKey, conn_id: u64) {
        let mut live = lock(&self.live);
        if live.get(device).is_some_and(|c| c.id == conn_id) {
            live.remove(device);
        }
    }

    pub fn live_connection(&self, device: &DeviceKey) -> Option<ConnHandle> {
        lock(&self.live).get(device).cloned()
    }

    /// Queues `command` for `device`'s live connection; false if it has none.
    pub fn send_to_device(&self, device: &DeviceKey, command: ConnCommand) -> bool {
        match self.live_connection(device) {
            Some(conn) => conn.commands.send(command).is_ok(),
            None => false,
        }
    }

    // ---- QR refs ----

    pub fn add_ref(&self, reference: String, pending: PendingRef) {
        lock(&self.refs).insert(reference, pending);
    }

    /// Claims the ref a phone scanned. A live ref is removed together with every other
    /// ref of the same connection (a connection pairs once); an expired one stays
    /// known so the caller can tell "expired" from "never issued".
    pub fn claim_ref(&self, reference: &str) -> Result<PendingRef, RefClaimError> {
        let mut refs = lock(&self.refs);
        let pending = refs.get(reference).ok_or(RefClaimError::Unknown)?;
        if pending.expires_at.is_some_and(|at| at <= Instant::now()) {
            return Err(RefClaimError::Expired);
        }
        let pending = refs.remove(reference).ok_or(RefClaimError::Unknown)?;
        refs.retain(|_, other| other.conn.id != pending.conn.id);
        Ok(pending)
    }

    /// Marks a connection's refs as expiring (server-driven rotation).
    pub fn expire_ref(&self, reference: &str, at: Instant) {
        if let Some(pending) = lock(&self.refs).get_mut(reference) {
            pending.expires_at = Some(at);
        }
    }

    pub fn drop_refs_of(&self, conn_id: u64) {
        lock(&self.refs).retain(|_, pending| pending.conn.id != conn_id);
    }
}
