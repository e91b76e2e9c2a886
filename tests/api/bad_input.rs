use reqwest::Method;
use serde_json::json;

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    let app = spawn_app().await;
    for body in ["{\"email\": ", "not json", ""] {
        let response = app
            .request(Method::POST, "/api/auth/register")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        assert_eq!(error_code(response).await, "malformed_json", "{body:?}");
    }
}

#[tokio::test]
async fn missing_or_mistyped_fields_are_400_invalid_body_naming_the_field() {
    let app = spawn_app().await;
    let response = app
        .post_json("/api/auth/register", &json!({ "email": "x@example.com" }))
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );

    let response = app
        .post_json("/api/auth/login", &json!({ "email": 42, "password": "x" }))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_body");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let huge = json!({ "email": "big@example.com", "password": "p".repeat(100_000) });
    let response = app.post_json("/api/auth/register", &huge).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    let missing = app.request(Method::GET, "/api/nope").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(missing).await, "not_found");
    let wrong_method = app
        .request(Method::GET, "/api/auth/login")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(error_code(wrong_method).await, "method_not_allowed");
}
