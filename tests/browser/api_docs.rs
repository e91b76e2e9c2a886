//! The API reference at `/api/docs` in a real browser: it renders every operation of the
//! node's OpenAPI document, grouped by tag, from files the node serves itself — nothing is
//! fetched from anywhere else and the page's Content-Security-Policy is never broken.

use crate::{helpers::spawn_app, page::Page};

#[tokio::test]
async fn the_reference_renders_every_operation_from_the_node_alone() {
    let app = spawn_app().await;
    let document: serde_json::Value = app
        .request(reqwest::Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();

    let page = Page::open(&app).await;
    page.browser
        .goto(&format!("{}/api/docs", app.address))
        .await;
    let rendered = page
        .wait_until(
            "the operations are rendered",
            "document.querySelectorAll('article.operation').length",
        )
        .await;
    assert_eq!(rendered, operations, "one card per operation");

    // One operation as a reader sees it: method, path, summary, credentials, parameters,
    // request body fields and responses with their schemas.
    let card = page.text("#send_message").await;
    for expected in [
        "POST",
        "/api/messages/send",
        "Send a message (dashboard)",
        "Authentication: bearer",
        "Idempotency-Key",
        "Request body",
        "to",
        "text",
        "202",
        "Message",
        "409",
        "ErrorBody",
    ] {
        assert!(
            card.contains(expected),
            "{expected:?} missing from:\n{card}"
        );
    }
    let either = page.text("#list_messages").await;
    assert!(either.contains("bearer or api_key"), "{either}");
    // Grouped by tag, with a table of contents that links to each operation.
    for tag in ["account", "messages", "webhooks", "admin"] {
        assert!(page.is_displayed(&format!("#tag-{tag}")).await, "{tag}");
    }
    let links = page
        .eval("document.querySelectorAll('#toc a[href^=\"#\"]').length")
        .await;
    assert!(links.as_u64().unwrap() as usize > operations, "{links}");

    // Everything came from the node: no request elsewhere, no policy violation.
    let elsewhere = page
        .eval(&format!(
            "performance.getEntriesByType('resource').map(e => e.name)\
             .filter(url => !url.startsWith('{}/'))",
            app.address
        ))
        .await;
    assert_eq!(elsewhere, serde_json::json!([]), "fetched from elsewhere");
    assert_eq!(page.csp_violations().await, serde_json::json!([]));
}
