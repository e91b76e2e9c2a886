//! A local stand-in for Stripe's API, started by a test: it answers the three calls botwave
//! makes (`POST /v1/customers`, `/v1/checkout/sessions`, `/v1/billing_portal/sessions`) with
//! the JSON shapes Stripe documents (a Customer, a Checkout Session with its `url`, a Billing
//! Portal Session), records each request (path, authorization, form fields), serves the
//! checkout and portal pages the URLs point to, and signs events the way Stripe does
//! (`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 over `t.body`) with this file's own HMAC.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_standin_0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_standin_0123456789abcdef";

/// One API call botwave made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub form: HashMap<String, String>,
    /// What the stand-in answered.
    pub answer: Value,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    next_id: u32,
}

#[derive(Clone)]
pub struct StripeStandIn {
    /// `http://127.0.0.1:<port>`: what `billing.stripe_api_base` is set to.
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl StripeStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let own_base = base.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let base = own_base.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request| answer(state.clone(), base.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { base, state }
    }

    /// Every API call so far (not the page views), oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    base: String,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == "GET" && (path.starts_with("/checkout/") || path.starts_with("/portal/")) {
        let html = format!(
            "<!doctype html><title>Stripe stand-in</title><h1 id=standin>Stripe stand-in {path}</h1>"
        );
        return Ok(Response::builder()
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from(html)))
            .unwrap());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (status, answer) = {
        let mut state = state.lock().unwrap();
        let state = &mut *state;
        state.next_id += 1;
        let n = state.next_id;
        let field = |name: &str| {
            form.get(name)
                .cloned()
                .map(Value::String)
                .unwrap_or(Value::Null)
        };
        let metadata = |prefix: &str| {
            let mut metadata = serde_json::Map::new();
            for (key, value) in &form {
                if let Some(name) = key
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(']'))
                {
                    metadata.insert(name.to_owned(), Value::String(value.clone()));
                }
            }
            Value::Object(metadata)
        };
        let answered = if authorization != format!("Bearer {SECRET_KEY}") {
            (
                401,
                json!({"error": {"type": "invalid_request_error",
                                 "message": "Invalid API Key provided"}}),
            )
        } else {
            match (method.as_str(), path.as_str()) {
                ("POST", "/v1/customers") => (
                    200,
                    json!({"id": format!("cus_standin{n}"), "object": "customer",
                           "email": field("email"), "metadata": metadata("metadata["),
                           "created": chrono::Utc::now().timestamp(), "livemode": false}),
                ),
                ("POST", "/v1/checkout/sessions") => {
                    let id = format!("cs_test_standin{n}");
                    (
                        200,
                        json!({"id": id, "object": "checkout.session", "mode": field("mode"),
                               "customer": field("customer"), "status": "open",
                               "client_reference_id": field("client_reference_id"),
                               "metadata": metadata("metadata["),
                               "success_url": field("success_url"),
                               "cancel_url": field("cancel_url"),
                               "url": format!("{base}/checkout/{id}"), "livemode": false}),
                    )
                }
                ("POST", "/v1/billing_portal/sessions") => {
                    let id = format!("bps_standin{n}");
                    (
                        200,
                        json!({"id": id, "object": "billing_portal.session",
                               "customer": field("customer"), "return_url": field("return_url"),
                               "url": format!("{base}/portal/{id}"), "livemode": false}),
                    )
                }
                _ => (
                    404,
                    json!({"error": {"type": "invalid_request_error",
                                     "message": format!("Unrecognized request URL ({method}: {path})")}}),
                ),
            }
        };
        state.calls.push(Call {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            form: form.clone(),
            answer: answered.1.clone(),
        });
        answered
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap())
}

/// An event as Stripe sends it: `{"id", "object": "event", "type", "created", "data":
/// {"object"}}`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "api_version": "2024-06-20", "livemode": false,
        "data": {"object": object},
    })
    .to_string()
}

/// `Stripe-Signature` for `body` signed at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    format!(
        "t={timestamp},v1={}",
        hex(&hmac_sha256(
            secret.as_bytes(),
            format!("{timestamp}.{body}").as_bytes()
        ))
    )
}

/// HMAC-SHA256 from RFC 2104, over this crate's SHA-256 (not botwave's signing code).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
