//! Linking by code ("link with phone number instead"): the link-code requests unpaired
//! companions registered with `companion_hello`, and the phone's user typing a code.
//!
//! The server only relays: it keeps each request by phone number (a newer one for the
//! same number replaces the older, as the server routes `primary_hello` by number),
//! tells the companion the phone's `primary_hello`, and hands the companion's
//! `companion_finish` back to the phone. The phone finds out whether the code was the
//! right one when it opens the companion's key bundle; a right code then ends in the
//! same ADV pairing as a QR scan ([`scan::sign_in`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::info;

use crate::phone::{LinkCodeError, PairingQr, PrimaryHello};
use crate::scan::{self, Paired, ScanError};
use crate::stanza;
use crate::state::{ConnCommand, ConnHandle, Shared, lock};

/// How many codes a phone may try per request; the client gives up on a code after as
/// many `primary_hello`s (WhatsApp Web's limit, which whatsapp-rust shares).
pub const MAX_ATTEMPTS: u32 = 3;

/// How long the phone waits for the companion's `companion_finish` (the client runs a
/// PBKDF2 of 2^17 rounds first, slow in unoptimised builds).
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PairCodeError {
    #[error("a link code is 8 characters of 123456789ABCDEFGHJKLMNPQRSTVWXYZ")]
    InvalidCode,
    #[error("no companion asked to be linked to this number")]
    NoRequest,
    #[error("the code has expired; the companion must request a new one")]
    Expired,
    #[error("the phone is already checking a code for this number")]
    Busy,
    #[error("{MAX_ATTEMPTS} codes were tried; the companion must request a new one")]
    TooManyAttempts,
    #[error("the code does not match the one the companion shows")]
    WrongCode,
    #[error("the companion did not answer the phone in time")]
    Timeout,
    #[error("the companion's key bundle is unusable: {0}")]
    BadBundle(LinkCodeError),
    #[error(transparent)]
    Pairing(#[from] ScanError),
}

/// What the companion answers the phone with (`stage="companion_finish"`).
pub struct CompanionFinish {
    pub wrapped_key_bundle: Vec<u8>,
    pub identity_public: Vec<u8>,
}

/// One companion's `companion_hello`.
pub struct LinkCodeRequest {
    pub conn: ConnHandle,
    /// `companion_server_auth_key_pub`: the key of the connection's Noise handshake.
    pub noise_public: [u8; 32],
    pub pairing_ref: String,
    /// `link_code_pairing_wrapped_companion_ephemeral_pub`.
    pub wrapped_companion_ephemeral: Vec<u8>,
    pub issued_at: Instant,
    attempts: u32,
    /// The phone waiting for `companion_finish`, while an attempt runs.
    waiter: Option<oneshot::Sender<CompanionFinish>>,
}

impl LinkCodeRequest {
    pub fn new(
        conn: ConnHandle,
        noise_public: [u8; 32],
        pairing_ref: String,
        wrapped_companion_ephemeral: Vec<u8>,
    ) -> Self {
        Self {
            conn,
            noise_public,
            pairing_ref,
            wrapped_companion_ephemeral,
            issued_at: Instant::now(),
            attempts: 0,
            waiter: None,
        }
    }
}

/// The live link-code requests, by phone number.
#[derive(Default)]
pub struct LinkCodeRequests {
    by_number: Mutex<HashMap<String, LinkCodeRequest>>,
}

/// What one attempt of the phone needs, taken out of the registry.
struct Attempt {
    conn: ConnHandle,
    noise_public: [u8; 32],
    pairing_ref: String,
    wrapped_companion_ephemeral: Vec<u8>,
    finish: oneshot::Receiver<CompanionFinish>,
}

impl LinkCodeRequests {
    /// Records `request` for `number`, replacing an earlier one.
    pub fn register(&self, number: &str, request: LinkCodeRequest) {
        lock(&self.by_number).insert(number.to_owned(), request);
    }

    /// Hands the companion's `companion_finish` to the phone waiting for it. False if
    /// no attempt for this number and ref is running.
    pub fn finish(&self, number: &str, pairing_ref: &str, finish: CompanionFinish) -> bool {
        let mut requests = lock(&self.by_number);
        let Some(request) = requests.get_mut(number) else {
            return false;
        };
        if request.pairing_ref != pairing_ref {
            return false;
        }
        match request.waiter.take() {
            Some(waiter) => waiter.send(finish).is_ok(),
            None => false,
        }
    }

    /// Forgets the requests of a connection that closed.
    pub fn drop_of(&self, conn_id: u64) {
        lock(&self.by_number).retain(|_, request| request.conn.id != conn_id);
    }

    fn begin_attempt(&self, number: &str, ttl: Duration) -> Result<Attempt, PairCodeError> {
        let mut requests = lock(&self.by_number);
        let request = requests.get_mut(number).ok_or(PairCodeError::NoRequest)?;
        if request.issued_at.elapsed() > ttl {
            return Err(PairCodeError::Expired);
        }
        // A waiter nobody listens to any more (its caller went away) is no attempt.
        if request.waiter.as_ref().is_some_and(|w| !w.is_closed()) {
            return Err(PairCodeError::Busy);
        }
        if request.attempts >= MAX_ATTEMPTS {
            return Err(PairCodeError::TooManyAttempts);
        }
        request.attempts += 1;
        let (waiter, finish) = oneshot::channel();
        request.waiter = Some(waiter);
        Ok(Attempt {
            conn: request.conn.clone(),
            noise_public: request.noise_public,
            pairing_ref: request.pairing_ref.clone(),
            wrapped_companion_ephemeral: request.wrapped_companion_ephemeral.clone(),
            finish,
        })
    }

    /// Ends an attempt: the request is gone once it linked, and otherwise stays for
    /// the next code.
    fn end_attempt(&self, number: &str, pairing_ref: &str, linked: bool) {
        let mut requests = lock(&self.by_number);
        if let Some(request) = requests.get_mut(number)
            && request.pairing_ref == pairing_ref
        {
            request.waiter = None;
            if linked {
                requests.remove(number);
            }
        }
    }
}

/// The user of phone `number` (created if needed) types `code`: the phone answers the
/// companion's request with its `primary_hello`, opens the companion's key bundle and,
/// if the code was right, signs the companion in.
pub async fn enter_code(
    shared: &Arc<Shared>,
    number: &str,
    code: &str,
) -> Result<Paired, PairCodeError> {
    if crate::phone::normalize_code(code).is_none() {
        return Err(PairCodeError::InvalidCode);
    }
    let attempt = shared
        .link_codes
        .begin_attempt(number, shared.config.pair_code_ttl)?;
    let pairing_ref = attempt.pairing_ref.clone();
    let result = run_attempt(shared, number, code, attempt).await;
    shared
        .link_codes
        .end_attempt(number, &pairing_ref, result.is_ok());
    result
}

async fn run_attempt(
    shared: &Arc<Shared>,
    number: &str,
    code: &str,
    attempt: Attempt,
) -> Result<Paired, PairCodeError> {
    let (account, _) = shared
        .create_account(number, 1)
        .map_err(ScanError::Account)?;
    let primary = lock(&account).primary().identity_key_pair().clone();
    let wrapped = attempt.wrapped_companion_ephemeral;
    let typed = code.to_owned();
    // Two PBKDF2 derivations of 2^17 rounds: not on the async threads.
    let hello = tokio::task::spawn_blocking(move || PrimaryHello::new(&wrapped, &typed))
        .await
        .map_err(|_| PairCodeError::Timeout)?
        .map_err(|error| match error {
            LinkCodeError::MalformedCode => PairCodeError::InvalidCode,
            other => PairCodeError::BadBundle(other),
        })?;
    let notification = stanza::link_code_primary_hello(
        &format!("link-code-{}", shared.next_id()),
        &attempt.pairing_ref,
        &hello.wrapped_primary_ephemeral,
        primary.public_key().public_key_bytes(),
    );
    if attempt
        .conn
        .commands
        .send(ConnCommand::Send(notification))
        .is_err()
    {
        return Err(ScanError::ClientGone.into());
    }
    let finish = match tokio::time::timeout(FINISH_TIMEOUT, attempt.finish).await {
        Ok(Ok(finish)) => finish,
        Ok(Err(_)) => return Err(ScanError::ClientGone.into()),
        Err(_) => return Err(PairCodeError::Timeout),
    };
    let linked = hello
        .open_key_bundle(
            &finish.wrapped_key_bundle,
            &finish.identity_public,
            &primary,
        )
        .map_err(|error| match error {
            LinkCodeError::WrongCode => PairCodeError::WrongCode,
            other => PairCodeError::BadBundle(other),
        })?;
    info!(number, "link code accepted; signing the companion in");
    let keys = PairingQr {
        pairing_ref: attempt.pairing_ref,
        noise_public: attempt.noise_public,
        identity_public: linked.identity_public,
        adv_secret: linked.adv_secret,
    };
    Ok(scan::sign_in(shared, number, &attempt.conn, keys).await?)
}
