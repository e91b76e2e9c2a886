//! The HTTP client that delivers webhooks: one connection per request, made to an address
//! checked at that moment (the host is resolved here, each address is checked against the
//! private-target rule, and the connection goes to the checked address, so a name cannot
//! resolve differently between the check and the connect), with a connect timeout, a timeout on
//! the whole exchange, and only the first bytes of the answer read.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::{Instant, timeout},
};
use tokio_rustls::{
    TlsConnector,
    rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs, pki_types::ServerName},
};

use super::{
    signature,
    target::{self, TargetUrl},
};

/// Of a receiver's answer, only this much is read (kept for the attempt log).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024;
/// How much of it the attempt log keeps.
const EXCERPT_CHARS: usize = 200;

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<u16>,
    pub latency: Duration,
    /// Why it did not succeed: the receiver's status, a timeout, a refused address, …
    pub error: Option<String>,
    /// The receiver asked to wait this long (429/503 with `Retry-After` in seconds).
    pub retry_after: Option<Duration>,
    /// Whether trying again could help: not for a 4xx other than 408 and 429, nor for an
    /// address this node refuses to deliver to.
    pub retryable: bool,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    fn failure(started: Instant, error: String, retryable: bool) -> Self {
        Self {
            status: None,
            latency: started.elapsed(),
            error: Some(error),
            retry_after: None,
            retryable,
        }
    }
}

#[derive(Clone)]
pub struct DeliveryClient {
    tls: TlsConnector,
    allow_private: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// One request to a receiver.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    /// The secret `secret` replaced, while its grace period runs: it signs too.
    pub previous_secret: Option<&'a str>,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
}

impl DeliveryClient {
    pub fn new(
        allow_private: bool,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, tokio_rustls::rustls::Error> {
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // aws-lc-rs is named because ring is in the build too (see actors/src/cluster/tls.rs).
        let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            allow_private,
            connect_timeout,
            request_timeout,
        })
    }

    /// Signs and POSTs `delivery`, within the request timeout.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Outcome {
        let started = Instant::now();
        match timeout(self.request_timeout, self.exchange(delivery, started)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failure(
                started,
                format!("no answer within {} ms", self.request_timeout.as_millis()),
                true,
            ),
        }
    }

    async fn exchange(&self, delivery: &Delivery<'_>, started: Instant) -> Outcome {
        let target = match TargetUrl::parse(delivery.url, self.allow_private) {
            Ok(target) => target,
            Err(error) => return Outcome::failure(started, error, false),
        };
        let Some((host, port)) = target.host_and_port() else {
            return Outcome::failure(started, "url has no host".into(), false);
        };
        let resolved = match timeout(
            self.connect_timeout,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
            Ok(Err(error)) => {
                return Outcome::failure(started, format!("cannot resolve {host}: {error}"), true);
            }
            Err(_) => {
                return Outcome::failure(started, format!("resolving {host} timed out"), true);
            }
        };
        let addresses = target::allowed(resolved.iter().copied(), self.allow_private);
        if addresses.is_empty() {
            let error = if resolved.is_empty() {
                format!("{host} has no address")
            } else {
                format!(
                    "{host} resolves to a private, loopback or link-local address, which this \
                     server does not deliver to"
                )
            };
            // A refused address is this server's rule, not a passing fault: not retried.
            return Outcome::failure(started, error, resolved.is_empty());
        }
        let mut last_error = String::new();
        let mut stream = None;
        for address in addresses {
            match timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(connected)) => {
                    stream = Some(connected);
                    break;
                }
                Ok(Err(error)) => last_error = format!("cannot connect to {address}: {error}"),
                Err(_) => last_error = format!("connecting to {address} timed out"),
            }
        }
        let Some(stream) = stream else {
            return Outcome::failure(started, last_error, true);
        };
        let _ = stream.set_nodelay(true);
        if target.url.scheme() == "https" {
            let name = match ServerName::try_from(host.clone()) {
                Ok(name) => name,
                Err(error) => {
                    return Outcome::failure(started, format!("invalid TLS name: {error}"), false);
                }
            };
            match timeout(self.connect_timeout, self.tls.connect(name, stream)).await {
                Ok(Ok(tls)) => self.request(tls, &target, delivery, started).await,
                Ok(Err(error)) => {
                    Outcome::failure(started, format!("TLS handshake failed: {error}"), true)
                }
                Err(_) => Outcome::failure(started, "TLS handshake timed out".into(), true),
            }
        } else {
            self.request(stream, &target, delivery, started).await
        }
    }

    async fn request<S>(
        &self,
        io: S,
        target: &TargetUrl,
        delivery: &Delivery<'_>,
        started: Instant,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
                Ok(handshake) => handshake,
                Err(error) => return Outcome::failure(started, error.to_string(), true),
            };
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let outcome = self.post(&mut sender, target, delivery, started).await;
        // Dropping the sender ends the connection; the driver then finishes.
        drop(sender);
        driver.abort();
        outcome
    }

    async fn post(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        target: &TargetUrl,
        delivery: &Delivery<'_>,
        started: Instant,
    ) -> Outcome {
        let timestamp = chrono::Utc::now().timestamp();
        let body = Bytes::copy_from_slice(delivery.body.as_bytes());
        let signature =
            signature::header_value(delivery.secret, delivery.previous_secret, timestamp, &body);
        let host_header = match target.url.port() {
            Some(port) => format!("{}:{port}", target.url.host_str().unwrap_or_default()),
            None => target.url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match target.url.query() {
            Some(query) => format!("{}?{query}", target.url.path()),
            None => target.url.path().to_owned(),
        };
        let request = Request::post(path)
            .header(header::HOST, host_header)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("botwave-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::CONNECTION, "close")
            .header(signature::HEADER, signature)
            .header("x-botwave-event", delivery.event_type)
            .header("x-botwave-event-id", delivery.event_id)
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                return Outcome::failure(started, format!("invalid request: {error}"), false);
            }
        };
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                return Outcome::failure(started, format!("request failed: {error}"), true);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Only the start of the answer is read, and only for the attempt log; a receiver that
        // sends more is not waited for.
        let excerpt = excerpt(&read_capped(response.into_body()).await);
        let latency = started.elapsed();
        if status.is_success() {
            return Outcome {
                status: Some(status.as_u16()),
                latency,
                error: None,
                retry_after: None,
                retryable: false,
            };
        }
        let retryable = !status.is_client_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        let error = if excerpt.is_empty() {
            format!("receiver answered {status}")
        } else {
            format!("receiver answered {status}: {excerpt}")
        };
        Outcome {
            status: Some(status.as_u16()),
            latency,
            error: Some(error),
            retry_after,
            retryable,
        }
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect()
}

/// Up to [`MAX_RESPONSE_BYTES`] of `body`; what follows is never read.
async fn read_capped(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut read = Vec::new();
    while read.len() < MAX_RESPONSE_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_RESPONSE_BYTES - read.len();
                    read.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    read
}
