//! The few calls botwave makes to Stripe's API: create a Customer, a Checkout Session
//! (subscription mode) and a Billing Portal Session. Form-encoded POSTs with the secret key as
//! a bearer token, one connection per request (they are rare), TLS by rustls with the Mozilla
//! roots, as the webhook client. The base URL is the operator's (`billing.stripe_api_base`),
//! not a user's, so it is not held to the webhooks' public-address rule (tests run a stand-in
//! on 127.0.0.1).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs, pki_types::ServerName},
};
use url::Url;

/// Longest answer read from Stripe (its objects are a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// For a whole request, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("cannot reach Stripe at {0}: {1}")]
    Connect(String, String),
    #[error("Stripe did not answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("Stripe answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("Stripe's answer was not usable: {0}")]
    BadAnswer(String),
}

#[derive(Clone)]
pub struct StripeClient {
    base: Url,
    secret_key: String,
    tls: TlsConnector,
}

impl StripeClient {
    pub fn new(base: &str, secret_key: &str) -> Result<Self, String> {
        let base = Url::parse(base).map_err(|e| format!("billing.stripe_api_base: {e}"))?;
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            base,
            secret_key: secret_key.to_owned(),
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `POST /v1/customers`: a Customer for a botwave account; answers its id.
    pub async fn create_customer(&self, email: &str, user_id: &str) -> Result<String, StripeError> {
        let answer = self
            .post(
                "/v1/customers",
                &[("email", email), ("metadata[botwave_user_id]", user_id)],
            )
            .await?;
        string_field(&answer, "id")
    }

    /// `POST /v1/checkout/sessions` in subscription mode; answers the session's id and `url`.
    pub async fn create_checkout_session(
        &self,
        checkout: &Checkout<'_>,
    ) -> Result<(String, String), StripeError> {
        let answer = self
            .post(
                "/v1/checkout/sessions",
                &[
                    ("mode", "subscription"),
                    ("customer", checkout.customer),
                    ("line_items[0][price]", checkout.price),
                    ("line_items[0][quantity]", "1"),
                    ("client_reference_id", checkout.user_id),
                    ("metadata[botwave_user_id]", checkout.user_id),
                    ("metadata[botwave_plan_id]", checkout.plan_id),
                    (
                        "subscription_data[metadata][botwave_user_id]",
                        checkout.user_id,
                    ),
                    (
                        "subscription_data[metadata][botwave_plan_id]",
                        checkout.plan_id,
                    ),
                    ("success_url", checkout.success_url),
                    ("cancel_url", checkout.cancel_url),
                ],
            )
            .await?;
        Ok((string_field(&answer, "id")?, string_field(&answer, "url")?))
    }

    /// `POST /v1/billing_portal/sessions`; answers the portal's `url`.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, StripeError> {
        let answer = self
            .post(
                "/v1/billing_portal/sessions",
                &[("customer", customer), ("return_url", return_url)],
            )
            .await?;
        string_field(&answer, "url")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, StripeError> {
        match timeout(REQUEST_TIMEOUT, self.exchange(path, form)).await {
            Ok(result) => result,
            Err(_) => Err(StripeError::Timeout),
        }
    }

    async fn exchange(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, StripeError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| StripeError::Connect(self.base.to_string(), e.to_string()))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| StripeError::Connect(format!("{host}:{port}"), e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        if url.scheme() == "https" {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| StripeError::Connect(host.clone(), e.to_string()))?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| StripeError::Connect(host.clone(), e.to_string()))?;
            self.request(tls, &url, body).await
        } else {
            self.request(stream, &url, body).await
        }
    }

    async fn request<S>(&self, io: S, url: &Url, body: String) -> Result<Value, StripeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let connect_error = |e: hyper::Error| StripeError::Connect(url.to_string(), e.to_string());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(connect_error)?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let request = Request::post(url.path())
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.secret_key))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::USER_AGENT,
                concat!("botwave/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| StripeError::BadAnswer(e.to_string()))?;
        let result = async {
            let response = sender.send_request(request).await.map_err(connect_error)?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| StripeError::BadAnswer(e.to_string()))?
                .to_bytes();
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| StripeError::BadAnswer(format!("not JSON ({status}): {e}")))?;
            if !status.is_success() {
                // Stripe's errors are `{"error": {"message": …}}`.
                let message = value
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned();
                return Err(StripeError::Refused {
                    status: status.as_u16(),
                    message,
                });
            }
            Ok(value)
        }
        .await;
        drop(sender);
        driver.abort();
        result
    }
}

/// What a checkout is for.
pub struct Checkout<'a> {
    pub customer: &'a str,
    pub price: &'a str,
    pub user_id: &'a str,
    pub plan_id: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

fn string_field(value: &Value, field: &str) -> Result<String, StripeError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StripeError::BadAnswer(format!("no `{field}` in the answer")))
}
