//! The OpenAPI document at `/api/openapi.json`: a valid OpenAPI 3.1 document (checked by
//! `openapi-spec-validator`) whose operations are exactly the routes the router serves, each of
//! which really answers at its documented method and path.

use std::{collections::BTreeSet, path::PathBuf};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app_with;

/// The Python tools `scripts/test` installs (schemathesis and openapi-spec-validator, pinned),
/// in the virtual environment it names in `BOTWAVE_TEST_TOOLS`.
pub fn test_tool(name: &str) -> PathBuf {
    let Some(venv) = std::env::var_os("BOTWAVE_TEST_TOOLS") else {
        panic!(
            "BOTWAVE_TEST_TOOLS is not set: run scripts/test, which installs schemathesis and \
             openapi-spec-validator into a cached virtual environment and names it there"
        );
    };
    let tool = PathBuf::from(venv).join("bin").join(name);
    assert!(tool.exists(), "{} is missing", tool.display());
    tool
}

/// Every (METHOD, path) of `document`.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn fetch_document(app: &crate::helpers::TestApp) -> Value {
    let response = app
        .request(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    // With a metrics token, /metrics is served rather than the router's own 404.
    let app = spawn_app_with(|settings| {
        settings.metrics.token = Some("metrics-token-for-the-route-probe".into());
    })
    .await;
    let document = fetch_document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let documented = documented_operations(&document);
    let served: BTreeSet<(String, String)> = app.served_operations.iter().cloned().collect();
    assert!(served.len() > 40, "the route table is not read: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {not_served:?}"
    );

    // The table is what the router matches: every operation answers at its method and path
    // (its parameters filled with an id that exists nowhere), never with the router's own 404
    // or 405.
    let is_routers_answer = |status: u16, body: &str| {
        status == 405 || (status == 404 && body.contains("route not found"))
    };
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            !is_routers_answer(status, &body),
            "{method} {path} is documented, but the router does not serve it: {status} {body}"
        );
    }
    // And the probe tells the router's answer apart: a route nobody documents gets it.
    let response = app
        .request(Method::GET, "/api/not-a-route")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(is_routers_answer(status, &response.text().await.unwrap()));
    let response = app.request(Method::PUT, "/api/keys").send().await.unwrap();
    assert_eq!(
        response.status(),
        405,
        "a documented path with another method"
    );
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_both_auth_schemes_and_the_error_shape() {
    let app = spawn_app_with(|_| {}).await;
    let document = fetch_document(&app).await;

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    assert_eq!(schemes["api_key_query"]["in"], "query");
    assert_eq!(schemes["api_key_query"]["name"], "api_key");
    // Routes take what the filters accept: both credentials where either works, the login
    // token alone where an API key is refused.
    let security = |method: &str, path: &str| document["paths"][path][method]["security"].clone();
    assert_eq!(
        security("get", "/api/messages"),
        serde_json::json!([{ "bearer": [] }, { "api_key": [] }])
    );
    assert_eq!(
        security("post", "/api/keys"),
        serde_json::json!([{ "bearer": [] }])
    );
    assert_eq!(
        security("get", "/api/send"),
        serde_json::json!([{ "api_key_query": [] }])
    );
    // Every error is the one shape, the one a real error answer has.
    let error = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let not_found = &document["paths"]["/api/keys/{id}"]["delete"]["responses"]["404"];
    assert_eq!(
        not_found["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );

    let file = std::env::temp_dir().join(format!("botwave-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let output = tokio::process::Command::new(test_tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .await
        .expect("openapi-spec-validator runs");
    let _ = std::fs::remove_file(&file);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "not a valid OpenAPI document:\n{report}"
    );
    assert!(report.contains("OK"), "{report}");
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app_with(|_| {}).await;
    let page = app.request(Method::GET, "/api/docs").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/api-docs.js"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("//cdn"),
        "{html}"
    );
    for asset in ["/assets/api-docs.js", "/assets/api-docs.css"] {
        let response = app.request(Method::GET, asset).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("https://"), "{asset} loads from elsewhere");
    }
}

#[tokio::test]
async fn a_plain_request_to_the_websocket_route_is_a_documented_400() {
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .request(Method::GET, "/ws")
        .header("Connection", "keep-alive")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(crate::helpers::error_code(response).await, "bad_request");
}
