//! How the node serves the dashboard: from the binary, with the right types, caching and
//! security headers, and the page's config endpoint outside demo mode.

use reqwest::Method;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_caching_and_security_headers() {
    let app = spawn_app().await;
    let page = app.request(Method::GET, "/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(!header("referrer-policy").is_empty());
    assert_eq!(header("cache-control"), "no-cache");
    let etag = header("etag");
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/app.js"));
    // Nothing leaves the node: no absolute URLs to elsewhere in the page.
    assert!(
        !html.contains("https://") && !html.contains("//cdn"),
        "{html}"
    );

    let again = app
        .request(Method::GET, "/")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/live.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let asset = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let content_type = asset.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert_eq!(asset.headers()["x-content-type-options"], "nosniff");
    }
    let missing = app
        .request(Method::GET, "/assets/nope.js")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let config: serde_json::Value = app
        .request(Method::GET, "/api/dashboard/config")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["demo"], false);
    assert!(config["simulator_control_url"].is_null());
    let account = app.new_account().await;
    let scan = app
        .api(
            Method::POST,
            "/api/dashboard/demo-scan",
            &account.token,
            None,
        )
        .await;
    assert_eq!(scan.status(), 404, "the demo scan exists outside demo mode");
}
