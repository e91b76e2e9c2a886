//! Driving a WhatsApp link end to end: the node's API on one side, the simulator's control API
//! (the simulated phone) on the other.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp};

/// Long enough for a debug build on a loaded 2-core machine; a passing run takes a fraction.
pub const PATIENCE: Duration = Duration::from_secs(45);

impl TestApp {
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.request(method, path).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn status(&self, token: &str) -> Value {
        self.api(Method::GET, "/api/whatsapp/status", token, None)
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn initialize(&self, token: &str) {
        let response = self
            .api(Method::POST, "/api/whatsapp/initialize", token, None)
            .await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
    }

    /// Polls the QR endpoint until a QR string other than `previous` is there.
    pub async fn wait_for_qr(&self, token: &str, previous: Option<&str>) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let response = self.api(Method::GET, "/api/whatsapp/qr", token, None).await;
            if response.status() == 200 {
                let body: Value = response.json().await.unwrap();
                if body["code"].as_str() != previous {
                    return body;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new QR code; status {}",
                self.status(token).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for_state(&self, token: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status(token).await;
            if status["state"] == state {
                return status;
            }
            assert!(Instant::now() < deadline, "never reached {state}: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A call to the simulator's control API (the simulated phones' side of the world);
    /// `path` is below `/control`.
    pub async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.sim.control_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// [`control`](Self::control), insisting on success; returns the JSON answer.
    pub async fn control_ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let response = self.control(method, path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The simulated phone `phone` scans `qr`.
    pub async fn scan(&self, phone: &str, qr: &str) {
        self.control_ok(
            Method::POST,
            "/scan",
            Some(json!({ "phone": phone, "qr": qr })),
        )
        .await;
    }

    /// Creates simulated phone `number`; returns its LID user (WhatsApp addresses it by LID).
    pub async fn create_phone(&self, number: &str) -> String {
        let phone = self
            .control_ok(
                Method::POST,
                "/phones",
                Some(json!({ "number": number, "devices": 1 })),
            )
            .await;
        phone["lid"].as_str().expect("the phone's LID").to_string()
    }

    /// What the simulated phone `number` received, decrypted.
    pub async fn phone_messages(&self, number: &str) -> Vec<Value> {
        let response = self
            .control(Method::GET, &format!("/phones/{number}/messages"), None)
            .await;
        if response.status() == 404 {
            return Vec::new();
        }
        response.json().await.unwrap()
    }

    pub async fn wait_for_phone_text(&self, number: &str, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self
            .phone_messages(number)
            .await
            .iter()
            .any(|m| m["text"] == text)
        {
            assert!(
                Instant::now() < deadline,
                "{number} never received {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn sim_stats(&self) -> Value {
        self.control_ok(Method::GET, "/stats", None).await
    }

    /// Registers nothing: links `account`'s WhatsApp to the simulated phone `phone`.
    pub async fn link(&self, account: &Account, phone: &str) -> Value {
        self.initialize(&account.token).await;
        let qr = self.wait_for_qr(&account.token, None).await;
        self.scan(phone, qr["code"].as_str().unwrap()).await;
        self.wait_for_state(&account.token, "connected").await
    }

    pub async fn send_web(&self, token: &str, to: &str, text: &str) -> reqwest::Response {
        self.api(
            Method::POST,
            "/api/messages/send",
            token,
            Some(json!({ "to": to, "text": text })),
        )
        .await
    }

    /// Waits until message `id` has reached `status` (or gone past it: read implies delivered).
    pub async fn wait_for_message_status(&self, token: &str, id: &str, status: &str) -> Value {
        const PROGRESS: [&str; 5] = ["queued", "sending", "sent", "delivered", "read"];
        let rank = |s: &str| PROGRESS.iter().position(|p| *p == s);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let message: Value = self
                .api(Method::GET, &format!("/api/messages/{id}"), token, None)
                .await
                .json()
                .await
                .unwrap();
            let current = message["status"].as_str().unwrap_or_default();
            let reached = match (rank(current), rank(status)) {
                (Some(current), Some(wanted)) => current >= wanted,
                _ => current == status,
            };
            if reached {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "message never became {status}: {message}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Polls `check` until it returns `Some`, panicking after [`PATIENCE`].
pub async fn eventually<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
