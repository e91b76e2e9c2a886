//! The JSON control API under `/control/`: create phones, scan QR codes, type link
//! codes, read what phones received, make phones send texts and receipts, kick
//! devices, tune receipts and latency, read counters. Errors are `{"error":{"code","message"}}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Json, WithStatus};
use warp::{Filter, Rejection};

use crate::account::{MAX_PHONE_DEVICES, NextLogin};
use crate::config::ReceiptMode;
use crate::delivery::{self, DeliveryError, SentText};
use crate::double_connection::DoubleConnections;
use crate::pair_code::{self, PairCodeError};
use crate::scan::{self, Paired, ScanError};
use crate::stanza::ReceiptKind;
use crate::state::{ConnCommand, DeviceKey, KickKind, Shared, lock};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

type Reply_ = WithStatus<Json>;

fn error(status: StatusCode, code: &str, message: impl ToString) -> Reply_ {
    warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.to_string(),
            },
        }),
        status,
    )
}

fn ok<T: Serialize>(status: StatusCode, body: &T) -> Reply_ {
    warp::reply::with_status(warp::reply::json(body), status)
}

// ---- request and response bodies ----

#[derive(Debug, Deserialize, Serialize)]
pub struct CreatePhone {
    pub number: String,
    #[serde(default = "one")]
    pub devices: u16,
}

fn one() -> u16 {
    1
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PhoneInfo {
    pub number: String,
    pub lid: String,
    /// The user's name, as the phone writes it to app state (`setting_pushName`).
    #[serde(default)]
    pub push_name: String,
    pub devices: u16,
    /// JIDs of the real clients paired to this number.
    pub companions: Vec<String>,
    /// The same companions with what WhatsApp saw of their connections.
    pub companion_devices: Vec<CompanionInfo>,
    /// Copies of messages the phone's devices had already received from their sender
    /// under the same id, shown once and not kept again.
    pub duplicates: u64,
    pub created: bool,
}

/// One companion of a phone and its double-connection record.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompanionInfo {
    pub jid: String,
    /// Whether the companion has a live, logged-in connection now.
    pub connected: bool,
    /// Messages sent to this companion that it has not acknowledged (by a receipt or a
    /// message ack) yet; WhatsApp sends them again at its next login.
    pub unacked: usize,
    #[serde(flatten)]
    pub double_connections: DoubleConnections,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ScanRequest {
    pub phone: String,
    pub qr: String,
}

/// `POST /control/pair-code`: the user of phone `phone` types the link code `code`.
#[derive(Debug, Deserialize, Serialize)]
pub struct PairCodeRequest {
    pub phone: String,
    pub code: String,
}

/// The answer to a scan or an accepted link code: the companion now paired.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScanResponse {
    pub jid: String,
    pub lid: String,
    pub phone: String,
}

/// `POST /control/phones/{number}/send`: exactly one of `text`, `image` and `location`.
#[derive(Debug, Deserialize, Serialize)]
pub struct SendRequest {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A photo (an `imageMessage`), with an optional caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageContent>,
    /// A shared location (a `locationMessage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationContent>,
    /// `"lid"`: the message names its sender by LID (with `sender_pn`), as WhatsApp does in
    /// LID-migrated chats; `"pn"` (the default) by phone number.
    #[serde(default)]
    pub addressing: delivery::Addressing,
    /// The message id the phone gives its message (1 to 64 letters and digits); a new random
    /// one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ImageContent {
    #[serde(default)]
    pub caption: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct LocationContent {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub name: Option<String>,
}

impl SendRequest {
    /// The message this request describes; `None` unless exactly one kind is given.
    pub fn message(&self) -> Option<waproto::whatsapp::Message> {
        match (&self.text, &self.image, &self.location) {
            (Some(text), None, None) => Some(crate::phone::text_message(text)),
            (None, Some(image), None) => {
                Some(crate::phone::image_message(image.caption.as_deref()))
            }
            (None, None, Some(location)) => Some(crate::phone::location_message(
                location.latitude,
                location.longitude,
                location.name.as_deref(),
            )),
            _ => None,
        }
    }
}

/// `POST /control/phones/{number}/resend`: the phone sends its message `id` again.
#[derive(Debug, Deserialize, Serialize)]
pub struct ResendRequest {
    pub id: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ReceiptRequest {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ReceiptKind,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct KickRequest {
    pub kind: KickKind,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KickResponse {
    pub jid: String,
    pub kind: KickKind,
    /// Whether the device had a live connection that was acted on.
    pub connected: bool,
}

/// `PUT /control/config`: every field optional.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ConfigUpdate {
    pub receipts: Option<ReceiptMode>,
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigView {
    pub receipts: ReceiptMode,
    pub latency_ms: u64,
}

// ---- routes ----

fn json_body<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(64 * 1024).and(warp::body::json())
}

/// All control routes, as one boxed filter.
pub fn routes(shared: Arc<Shared>) -> BoxedFilter<(Reply_,)> {
    let with = move || {
        let shared = shared.clone();
        warp::any().map(move || shared.clone())
    };

    let create_phone = warp::path!("control" / "phones")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .map(create_phone);
    let list_phones = warp::path!("control" / "phones")
        .and(warp::get())
        .and(with())
        .map(list_phones);
    let scan = warp::path!("control" / "scan")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .then(scan_qr);
    let pair_code = warp::path!("control" / "pair-code")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .then(enter_pair_code);
    let phone = warp::path!("control" / "phones" / String)
        .and(warp::get())
        .and(with())
        .map(one_phone);
    let messages = warp::path!("control" / "phones" / String / "messages")
        .and(warp::get())
        .and(with())
        .map(phone_messages);
    let client_receipts = warp::path!("control" / "phones" / String / "receipts")
        .and(warp::get())
        .and(with())
        .map(phone_client_receipts);
    let send = warp::path!("control" / "phones" / String / "send")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .map(phone_send);
    let resend = warp::path!("control" / "phones" / String / "resend")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .map(phone_resend);
    let receipts = warp::path!("control" / "phones" / String / "receipts")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .map(phone_receipt);
    let kick = warp::path!("control" / "devices" / String / "kick")
        .and(warp::post())
        .and(with())
        .and(json_body())
        .map(kick_device);
    let get_overlimit = warp::path!("control" / "phones" / String / "rate-overlimit")
        .and(warp::get())
        .and(with())
        .map(|number: String, shared: Arc<Shared>| {
            ok(StatusCode::OK, &shared.rate_overlimit(&number))
        });
    let put_overlimit = warp::path!("control" / "phones" / String / "rate-overlimit")
        .and(warp::put().or(warp::post()).unify())
        .and(with())
        .and(json_body())
        .map(set_rate_overlimit);
    let get_lost_acks = warp::path!("control" / "phones" / String / "lost-acks")
        .and(warp::get())
        .and(with())
        .map(|number: String, shared: Arc<Shared>| ok(StatusCode::OK, &shared.lost_acks(&number)));
    let put_lost_acks = warp::path!("control" / "phones" / String / "lost-acks")
        .and(warp::put().or(warp::post()).unify())
        .and(with())
        .and(json_body())
        .map(set_lost_acks);
    let stats = warp::path!("control" / "stats")
        .and(warp::get())
        .and(with())
        .map(|shared: Arc<Shared>| ok(StatusCode::OK, &shared.stats.snapshot()));
    let root_key = warp::path!("control" / "root-key")
        .and(warp::get())
        .and(with())
        .map(|shared: Arc<Shared>| {
            let key = crate::noise::NoiseRootKey::new(&shared.noise.root_public());
            ok(StatusCode::OK, &key)
        });
    let get_config = warp::path!("control" / "config")
        .and(warp::get())
        .and(with())
        .map(|shared: Arc<Shared>| ok(StatusCode::OK, &config_view(&shared)));
    let put_config = warp::path!("control" / "config")
        .and(warp::put().or(warp::post()).unify())
        .and(with())
        .and(json_body())
        .map(update_config);

    // Each route boxed and the list folded: a chain of `.or()` over the routes' own types
    // made the filter type so deep that compiling (and linting) this crate took many minutes.
    let others = [
        list_phones.boxed(),
        phone.boxed(),
        scan.boxed(),
        pair_code.boxed(),
        messages.boxed(),
        client_receipts.boxed(),
        send.boxed(),
        resend.boxed(),
        receipts.boxed(),
        kick.boxed(),
        get_overlimit.boxed(),
        put_overlimit.boxed(),
        get_lost_acks.boxed(),
        put_lost_acks.boxed(),
        stats.boxed(),
        get_config.boxed(),
        put_config.boxed(),
        root_key.boxed(),
    ];
    others.into_iter().fold(create_phone.boxed(), |all, route| {
        all.or(route).unify().boxed()
    })
}

/// Turns warp's rejections (unknown path, wrong method, bad JSON) into JSON errors.
pub async fn recover(rejection: Rejection) -> Result<Reply_, Infallible> {
    if rejection.is_not_found() {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ));
    }
    if let Some(bad) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        return Ok(error(StatusCode::BAD_REQUEST, "bad_request", bad));
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ));
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ));
    }
    Ok(error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("{rejection:?}"),
    ))
}

/// Phone numbers are digits only (the client parses them as integers).
fn valid_number(number: &str) -> bool {
    (5..=20).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

fn invalid_number(number: &str) -> Reply_ {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_number",
        format!("{number:?} is not a phone number (5-20 digits)"),
    )
}

fn phone_info(shared: &Shared, number: &str, created: bool) -> Option<PhoneInfo> {
    let account = shared.account(number)?;
    let account = lock(&account);
    let companion_devices: Vec<CompanionInfo> = account
        .companion_ids()
        .into_iter()
        .map(|d| {
            let device = DeviceKey::new(number, d);
            CompanionInfo {
                jid: device.jid().to_string(),
                connected: shared.live_connection(&device).is_some(),
                unacked: account.unacked_count(d),
                double_connections: shared.stats.double_connections.of_device(&device),
            }
        })
        .collect();
    Some(PhoneInfo {
        number: account.number.clone(),
        lid: account.lid.clone(),
        push_name: account.push_name().to_owned(),
        devices: account.phone_device_count(),
        companions: companion_devices.iter().map(|c| c.jid.clone()).collect(),
        companion_devices,
        duplicates: account.duplicates(),
        created,
    })
}

fn create_phone(shared: Arc<Shared>, request: CreatePhone) -> Reply_ {
    if !valid_number(&request.number) {
        return invalid_number(&request.number);
    }
    if !(1..=MAX_PHONE_DEVICES).contains(&request.devices) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_devices",
            format!("devices must be 1..={MAX_PHONE_DEVICES}"),
        );
    }
    match shared.create_account(&request.number, request.devices) {
        Ok((_, created)) => match phone_info(&shared, &request.number, created) {
            Some(info) if created || info.devices == request.devices => ok(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &info,
            ),
            Some(info) => error(
                StatusCode::CONFLICT,
                "phone_exists",
                format!(
                    "{} already exists with {} device(s)",
                    info.number, info.devices
                ),
            ),
            None => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "phone vanished",
            ),
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

fn list_phones(shared: Arc<Shared>) -> Reply_ {
    let phones: Vec<PhoneInfo> = shared
        .account_numbers()
        .iter()
        .filter_map(|number| phone_info(&shared, number, false))
        .collect();
    ok(StatusCode::OK, &phones)
}

fn one_phone(number: String, shared: Arc<Shared>) -> Reply_ {
    match phone_info(&shared, &number, false) {
        Some(info) => ok(StatusCode::OK, &info),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_phone",
            format!("no phone {number:?}"),
        ),
    }
}

async fn scan_qr(shared: Arc<Shared>, request: ScanRequest) -> Reply_ {
    if !valid_number(&request.phone) {
        return invalid_number(&request.phone);
    }
    match scan::scan(&shared, &request.phone, &request.qr).await {
        Ok(paired) => paired_reply(&paired, request.phone),
        Err(e) => scan_error(&e),
    }
}

/// The companion a scan or a typed code linked.
fn paired_reply(paired: &Paired, phone: String) -> Reply_ {
    ok(
        StatusCode::OK,
        &ScanResponse {
            jid: paired.jid.to_string(),
            lid: paired.lid.to_string(),
            phone,
        },
    )
}

fn scan_error(e: &ScanError) -> Reply_ {
    let (status, code) = match e {
        ScanError::InvalidQr(_) => (StatusCode::BAD_REQUEST, "invalid_qr"),
        ScanError::UnknownRef => (StatusCode::NOT_FOUND, "unknown_qr"),
        ScanError::ExpiredRef => (StatusCode::GONE, "qr_expired"),
        ScanError::KeyMismatch => (StatusCode::BAD_REQUEST, "qr_key_mismatch"),
        ScanError::ClientGone => (StatusCode::CONFLICT, "client_gone"),
        ScanError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        ScanError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "pairing_rejected"),
        ScanError::Account(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error(status, code, e)
}

async fn enter_pair_code(shared: Arc<Shared>, request: PairCodeRequest) -> Reply_ {
    if !valid_number(&request.phone) {
        return invalid_number(&request.phone);
    }
    match pair_code::enter_code(&shared, &request.phone, &request.code).await {
        Ok(paired) => paired_reply(&paired, request.phone),
        Err(PairCodeError::Pairing(e)) => scan_error(&e),
        Err(e) => {
            let (status, code) = match &e {
                PairCodeError::InvalidCode => (StatusCode::BAD_REQUEST, "invalid_code"),
                PairCodeError::NoRequest => (StatusCode::NOT_FOUND, "no_pending_code"),
                PairCodeError::Expired => (StatusCode::GONE, "code_expired"),
                PairCodeError::Busy => (StatusCode::CONFLICT, "code_busy"),
                PairCodeError::TooManyAttempts => {
                    (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
                }
                PairCodeError::WrongCode => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_code"),
                PairCodeError::BadBundle(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_key_bundle"),
                PairCodeError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
                PairCodeError::Pairing(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            error(status, code, e)
        }
    }
}

fn phone_messages(number: String, shared: Arc<Shared>) -> Reply_ {
    with_phone(&number, &shared, |account| {
        ok(StatusCode::OK, &account.inbox())
    })
}

fn phone_client_receipts(number: String, shared: Arc<Shared>) -> Reply_ {
    with_phone(&number, &shared, |account| {
        ok(StatusCode::OK, &account.receipts())
    })
}

/// `answer` with phone `number`'s account, or 404 `unknown_phone`.
fn with_phone(
    number: &str,
    shared: &Shared,
    answer: impl FnOnce(&crate::account::Account) -> Reply_,
) -> Reply_ {
    match shared.account(number) {
        Some(account) => answer(&lock(&account)),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_phone",
            format!("no phone {number}"),
        ),
    }
}

fn delivery_error(e: DeliveryError) -> Reply_ {
    let (status, code) = match &e {
        DeliveryError::NotOnWhatsApp(_) => (StatusCode::NOT_FOUND, "not_on_whatsapp"),
        DeliveryError::NoCompanions(_) => (StatusCode::CONFLICT, "no_companions"),
        DeliveryError::UnknownMessage(..) => (StatusCode::NOT_FOUND, "unknown_message"),
        DeliveryError::SenderOffline(_) => (StatusCode::CONFLICT, "sender_offline"),
        DeliveryError::Account(_) | DeliveryError::Phone(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    error(status, code, e)
}

fn phone_send(number: String, shared: Arc<Shared>, request: SendRequest) -> Reply_ {
    if !valid_number(&number) {
        return invalid_number(&number);
    }
    let to: String = request.to.chars().take_while(|c| *c != '@').collect();
    let Some(message) = request.message() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_content",
            "give exactly one of text, image and location",
        );
    };
    let id = match request.id {
        Some(id)
            if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                "a message id is 1 to 64 ASCII letters and digits",
            );
        }
        Some(id) => id,
        None => delivery::new_message_id(),
    };
    match delivery::send_message_as(&shared, &number, &to, &id, message, request.addressing) {
        Ok(sent) => ok::<SentText>(StatusCode::OK, &sent),
        Err(e) => delivery_error(e),
    }
}

fn phone_resend(number: String, shared: Arc<Shared>, request: ResendRequest) -> Reply_ {
    match delivery::resend(&shared, &number, &request.id) {
        Ok(sent) => ok::<SentText>(StatusCode::OK, &sent),
        Err(e) => delivery_error(e),
    }
}

fn phone_receipt(number: String, shared: Arc<Shared>, request: ReceiptRequest) -> Reply_ {
    match delivery::receipt_on_command(&shared, &number, &request.id, request.kind) {
        Ok(()) => ok(
            StatusCode::OK,
            &serde_json::json!({"id": request.id, "type": request.kind}),
        ),
        Err(e) => delivery_error(e),
    }
}

/// Path segments may carry the JID percent-encoded.
fn decode_jid(raw: &str) -> String {
    raw.replace("%3A", ":")
        .replace("%3a", ":")
        .replace("%40", "@")
}

fn kick_device(raw_jid: String, shared: Arc<Shared>, request: KickRequest) -> Reply_ {
    let jid_text = decode_jid(&raw_jid);
    let Ok(jid) = jid_text.parse::<wacore_binary::Jid>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_jid",
            format!("{jid_text:?}"),
        );
    };
    let Some(number) = shared.number_for_jid(&jid) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("no account for {jid_text}"),
        );
    };
    let device = DeviceKey::new(number, jid.device);
    let Some(account) = shared.account(&device.number) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("no account for {jid_text}"),
        );
    };
    let known = match request.kind {
        KickKind::Logout => lock(&account).remove_companion(device.device),
        KickKind::Failure401 => lock(&account).set_next_login(device.device, NextLogin::Refuse401),
        KickKind::Ban => lock(&account).set_next_login(device.device, NextLogin::Ban),
        KickKind::Drop | KickKind::Replaced | KickKind::Restart => {
            lock(&account).has_companion(device.device)
        }
    };
    let connected = shared.send_to_device(&device, ConnCommand::Kick(request.kind));
    if !known && !connected {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("{} is not a paired device", device.jid()),
        );
    }
    ok(
        StatusCode::OK,
        &KickResponse {
            jid: device.jid().to_string(),
            kind: request.kind,
            connected,
        },
    )
}

/// `PUT /control/phones/{number}/rate-overlimit`: `{"count": N, "backoff_secs": S?}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateOverlimitRequest {
    pub count: u32,
    #[serde(default)]
    pub backoff_secs: Option<u32>,
}

fn set_rate_overlimit(
    number: String,
    shared: Arc<Shared>,
    request: RateOverlimitRequest,
) -> Reply_ {
    if shared.account(&number).is_none() {
        return error(StatusCode::NOT_FOUND, "not_found", "no such phone");
    }
    let switch = shared.set_rate_overlimit(&number, request.count, request.backoff_secs);
    ok(StatusCode::OK, &switch)
}

/// `PUT /control/phones/{number}/lost-acks`: `{"count": N}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LostAcksRequest {
    pub count: u32,
}

fn set_lost_acks(number: String, shared: Arc<Shared>, request: LostAcksRequest) -> Reply_ {
    if shared.account(&number).is_none() {
        return error(StatusCode::NOT_FOUND, "not_found", "no such phone");
    }
    ok(
        StatusCode::OK,
        &shared.set_lost_acks(&number, request.count),
    )
}

fn config_view(shared: &Shared) -> ConfigView {
    ConfigView {
        receipts: shared.receipt_mode(),
        latency_ms: shared.latency().as_millis() as u64,
    }
}

fn update_config(shared: Arc<Shared>, update: ConfigUpdate) -> Reply_ {
    if let Some(receipts) = update.receipts {
        shared.set_receipt_mode(receipts);
    }
    if let Some(latency_ms) = update.latency_ms {
        shared.set_latency(Duration::from_millis(latency_ms));
    }
    ok(StatusCode::OK, &config_view(&shared))
}
