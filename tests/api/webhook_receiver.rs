//! A real HTTP receiver for webhook tests: it listens on 127.0.0.1, records every request
//! (headers, body, when) and answers as the test scripted it (a status, a status with
//! `Retry-After`, or no answer at all). Signatures are checked with this file's own HMAC-SHA256,
//! written from RFC 2104, not botwave's code.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Never answers (the connection stays open).
    Hang,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub signature: String,
    pub event_header: String,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook bodies are JSON")
    }
}

#[derive(Default)]
struct Script {
    next: VecDeque<Answer>,
    otherwise: Option<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// A receiver answering 200 unless told otherwise.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(script.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, script }
    }

    /// The next requests get these answers, in order; then `otherwise` (200 by default).
    pub fn script(&self, answers: &[Answer]) {
        self.script
            .lock()
            .unwrap()
            .next
            .extend(answers.iter().copied());
    }

    pub fn otherwise(&self, answer: Answer) {
        self.script.lock().unwrap().otherwise = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits until `enough` holds for what arrived so far.
    pub async fn wait_for(
        &self,
        what: &str,
        patience: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + patience;
        loop {
            let received = self.received();
            if enough(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "receiver never got {what}; got {:#?}",
                received.iter().map(|r| r.body.clone()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn answer(
    script: Arc<Mutex<Script>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    use http_body_util::BodyExt;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = header("x-botwave-signature");
    let event_header = header("x-botwave-event");
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer = {
        let mut script = script.lock().unwrap();
        script.received.push(Received {
            signature,
            event_header,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        script
            .next
            .pop_front()
            .or(script.otherwise)
            .unwrap_or(Answer::Status(200))
    };
    let status = match answer {
        Answer::Status(status) => status,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            200
        }
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap())
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// The timestamp and every `v1` of `received`'s `X-Botwave-Signature`, in header order.
pub fn signature_parts(received: &Received) -> (i64, Vec<String>) {
    let mut timestamp = None;
    let mut macs = Vec::new();
    for part in received.signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => macs.push(value.to_owned()),
            _ => {}
        }
    }
    let timestamp = timestamp.unwrap_or_else(|| panic!("no t= in {:?}", received.signature));
    assert!(!macs.is_empty(), "no v1= in {:?}", received.signature);
    (timestamp, macs)
}

/// The `v1` a receiver holding `secret` expects on `received`.
pub fn expected_mac(received: &Received, secret: &str) -> String {
    let (timestamp, _) = signature_parts(received);
    hmac_sha256_hex(
        secret.as_bytes(),
        format!("{timestamp}.{}", received.body).as_bytes(),
    )
}

/// Checks `received`'s `X-Botwave-Signature` against `secret` the way a receiver would: the
/// timestamp is recent and one of the MACs over `<t>.<body>` matches.
pub fn assert_signed(received: &Received, secret: &str) {
    let (timestamp, macs) = signature_parts(received);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp).abs() < 300, "stale timestamp {timestamp}");
    let expected = expected_mac(received, secret);
    assert!(
        macs.contains(&expected),
        "bad signature on {}: {:?}",
        received.body,
        received.signature
    );
}

#[test]
fn own_hmac_matches_rfc_4231() {
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
