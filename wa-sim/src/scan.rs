//! A simulated phone scanning a client's QR code: find the connection that showed the
//! ref, sign the companion into the phone's account and wait for the client's answer.
//! The signing-in half, [`sign_in`], is shared with linking by code (`pair_code`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use wacore_binary::Jid;

use crate::account::AccountError;
use crate::phone::{PairingQr, PhoneError};
use crate::stanza;
use crate::state::{ConnCommand, ConnHandle, DeviceKey, PairingStart, RefClaimError, Shared, lock};

/// How long a scan waits for the client's `pair-device-sign`.
const SIGN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid QR code: {0}")]
    InvalidQr(#[source] PhoneError),
    #[error("no client is showing this QR code")]
    UnknownRef,
    #[error("this QR code has expired")]
    ExpiredRef,
    #[error("the QR code's key does not match the connection that showed it")]
    KeyMismatch,
    #[error("the client disconnected before pairing finished")]
    ClientGone,
    #[error("the client did not confirm the pairing in time")]
    Timeout,
    #[error("pairing rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// The companion now paired to phone `number`.
#[derive(Debug, Clone)]
pub struct Paired {
    pub jid: Jid,
    pub lid: Jid,
}

pub async fn scan(shared: &Arc<Shared>, number: &str, qr: &str) -> Result<Paired, ScanError> {
    let qr = PairingQr::parse(qr.trim()).map_err(ScanError::InvalidQr)?;
    let pending = shared.claim_ref(&qr.pairing_ref).map_err(|e| match e {
        RefClaimError::Unknown => ScanError::UnknownRef,
        RefClaimError::Expired => ScanError::ExpiredRef,
    })?;
    if pending.noise_public != qr.noise_public {
        return Err(ScanError::KeyMismatch);
    }
    sign_in(shared, number, &pending.conn, qr).await
}

/// The phone signs a companion into its account and waits for the client's
/// `pair-device-sign`: the ADV pairing every way of linking ends in (a scanned QR
/// code, or a link code typed on the phone). `keys` are what the phone learnt of the
/// companion; `conn` is the connection that asked to be linked.
pub(crate) async fn sign_in(
    shared: &Arc<Shared>,
    number: &str,
    conn: &ConnHandle,
    keys: PairingQr,
) -> Result<Paired, ScanError> {
    let (account, _) = shared.create_account(number, 1)?;
    let (device, container, lid) = {
        let mut account = lock(&account);
        let (device, container) = account.begin_pairing(keys)?;
        (device, container, account.lid.clone())
    };
    let key = DeviceKey::new(number, device);
    let jid = key.jid();
    let lid = Jid::lid_device(lid, device);
    let iq_id = format!("pair-success-{}", shared.next_id());
    let (reply, outcome) = oneshot::channel();
    let start = PairingStart {
        node: stanza::pair_success(&iq_id, container, &jid, &lid),
        iq_id,
        device: key,
        reply,
    };
    if conn
        .commands
        .send(ConnCommand::PairSuccess(Box::new(start)))
        .is_err()
    {
        lock(&account).abort_pairing(device);
        return Err(ScanError::ClientGone);
    }
    match tokio::time::timeout(SIGN_TIMEOUT, outcome).await {
        Ok(Ok(Ok(jid))) => Ok(Paired { jid, lid }),
        Ok(Ok(Err(reason))) => Err(ScanError::Rejected(reason)),
        Ok(Err(_)) => {
            lock(&account).abort_pairing(device);
            Err(ScanError::ClientGone)
        }
        Err(_) => {
            lock(&account).abort_pairing(device);
            Err(ScanError::Timeout)
        }
    }
}
