//! Driving the admin API and checking what the simulator sees of a session.

use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Account, PASSWORD, TestApp},
    whatsapp_helpers::PATIENCE,
};

impl TestApp {
    /// `path` called with `token`, the answer's status and JSON body (`Null` if not JSON).
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let response = self.api(method, path, token, body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.admin_call(Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn admin_post(&self, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.admin_call(Method::POST, path, token, body).await;
        assert_eq!(status, 200, "POST {path}: {answer}");
        answer
    }

    /// The admin view of `user_id`'s session.
    pub async fn admin_session(&self, admin: &Account, user_id: &str) -> Value {
        let list = self.admin_get("/api/admin/sessions", &admin.token).await;
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["user_id"] == user_id)
            .cloned()
            .unwrap_or_else(|| panic!("no session of {user_id} in {list}"))
    }

    /// Polls the admin sessions list until `user_id`'s session is in `state`.
    pub async fn wait_for_admin_state(&self, admin: &Account, user_id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let session = self.admin_session(admin, user_id).await;
            if session["state"] == state {
                return session;
            }
            assert!(Instant::now() < deadline, "never {state}: {session}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Companion devices the simulated phone `number` has paired (logged-in WhatsApp Webs).
    pub async fn companions(&self, number: &str) -> Vec<String> {
        let phones: Vec<Value> =
            serde_json::from_value(self.control_ok(Method::GET, "/phones", None).await).unwrap();
        phones
            .iter()
            .find(|p| p["number"] == number)
            .map(|p| {
                p["companions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until no client holds a connection to the simulator.
    pub async fn wait_for_no_connections(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = self.sim_stats().await;
            if stats["connections"]["current"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "still connected: {stats}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Sets when simulated phones send receipts (see the simulator's `ReceiptMode`).
    pub async fn set_receipts(&self, mode: Value) {
        self.control_ok(Method::PUT, "/config", Some(json!({ "receipts": mode })))
            .await;
    }

    pub async fn create_api_key(&self, account: &Account) -> String {
        let body: Value = self
            .api(
                Method::POST,
                "/api/keys",
                &account.token,
                Some(json!({ "name": "integration" })),
            )
            .await
            .json()
            .await
            .unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    pub async fn send_with_key(&self, key: &str, to: &str, text: &str) -> reqwest::Response {
        self.request(Method::POST, "/api/send")
            .header("X-Api-Key", key)
            .json(&json!({ "to": to, "text": text }))
            .send()
            .await
            .unwrap()
    }

    /// The login token of `email` with the test password.
    pub async fn token_of(&self, email: &str) -> String {
        let body: Value = self.login(email, PASSWORD).await.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}
