//! The web dashboard: the single-page app under `/` and `/assets/…`, compiled into the binary so
//! a node serves it with no files beside it and no network, plus the two small endpoints only the
//! page needs (`/api/dashboard/config`, and `/api/dashboard/demo-scan` in `botwave demo`).

mod demo;

use std::{collections::HashMap, sync::Arc, sync::LazyLock};

use serde_json::json;
use sha2::{Digest, Sha256};
use warp::{
    Filter, Rejection, Reply,
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use super::{
    error::respond,
    filters::{session_caller, with_state},
};
use crate::state::AppState;

/// The page may load code, styles, images and connections from this node only: no inline
/// script or style, no framing. The QR code is inline SVG markup, so images need no `data:`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX_HTML: &str = include_str!("../dashboard/index.html");

/// Every file under `/assets/`, by name.
static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    let js = "text/javascript; charset=utf-8";
    HashMap::from([
        (
            "style.css",
            asset(
                include_bytes!("../dashboard/style.css"),
                "text/css; charset=utf-8",
            ),
        ),
        ("app.js", asset(include_bytes!("../dashboard/app.js"), js)),
        ("api.js", asset(include_bytes!("../dashboard/api.js"), js)),
        ("live.js", asset(include_bytes!("../dashboard/live.js"), js)),
        (
            "connection.js",
            asset(include_bytes!("../dashboard/connection.js"), js),
        ),
        (
            "messages.js",
            asset(include_bytes!("../dashboard/messages.js"), js),
        ),
        ("keys.js", asset(include_bytes!("../dashboard/keys.js"), js)),
        (
            "webhooks.js",
            asset(include_bytes!("../dashboard/webhooks.js"), js),
        ),
        (
            "conversations.js",
            asset(include_bytes!("../dashboard/conversations.js"), js),
        ),
        (
            "password.js",
            asset(include_bytes!("../dashboard/password.js"), js),
        ),
        ("dom.js", asset(include_bytes!("../dashboard/dom.js"), js)),
        (
            "reset.js",
            asset(include_bytes!("../dashboard/reset.js"), js),
        ),
        // The admin area (admin.js and the views it loads).
        (
            "admin.css",
            asset(
                include_bytes!("../dashboard/admin.css"),
                "text/css; charset=utf-8",
            ),
        ),
        (
            "admin.js",
            asset(include_bytes!("../dashboard/admin.js"), js),
        ),
        (
            "admin-ui.js",
            asset(include_bytes!("../dashboard/admin-ui.js"), js),
        ),
        (
            "admin-sessions.js",
            asset(include_bytes!("../dashboard/admin-sessions.js"), js),
        ),
        (
            "admin-users.js",
            asset(include_bytes!("../dashboard/admin-users.js"), js),
        ),
        (
            "admin-analytics.js",
            asset(include_bytes!("../dashboard/admin-analytics.js"), js),
        ),
        (
            "admin-audit.js",
            asset(include_bytes!("../dashboard/admin-audit.js"), js),
        ),
        (
            "admin-cluster.js",
            asset(include_bytes!("../dashboard/admin-cluster.js"), js),
        ),
        (
            "chart.js",
            asset(include_bytes!("../dashboard/chart.js"), js),
        ),
        (
            "icon.svg",
            asset(include_bytes!("../dashboard/icon.svg"), "image/svg+xml"),
        ),
    ])
});

fn asset(body: &'static [u8], content_type: &'static str) -> Asset {
    Asset { body, content_type }
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // The reset page is the app too: the link in a reset email opens it with its token.
    let index = warp::path::end()
        .or(warp::path!("reset-password"))
        .unify()
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|etag: Option<String>| page(etag));
    let assets = warp::path!("assets" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(|name: String, etag: Option<String>| async move {
            ASSETS
                .get(name.as_str())
                .map(|asset| static_file(asset.body, asset.content_type, etag.as_deref()))
                .ok_or_else(warp::reject::not_found)
        });
    let config = warp::path!("api" / "dashboard" / "config")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|state: Arc<AppState>| {
            warp::reply::json(&json!({
                "demo": state.demo_simulator.is_some(),
                "simulator_control_url": state.demo_simulator,
            }))
        });
    let demo_scan = warp::path!("api" / "dashboard" / "demo-scan")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state))
        .then(|state, caller| async move { respond(demo::scan(state, caller).await) });
    index.or(assets).or(config).or(demo_scan)
}

fn page(etag: Option<String>) -> Response {
    let mut response = static_file(
        INDEX_HTML.as_bytes(),
        "text/html; charset=utf-8",
        etag.as_deref(),
    );
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A file of the dashboard. Names carry no version, so browsers must revalidate every time
/// (`no-cache`); the ETag makes that a 304 until the binary changes.
fn static_file(
    body: &'static [u8],
    content_type: &'static str,
    if_none_match: Option<&str>,
) -> Response {
    let etag = format!("\"{}\"", hex_prefix(&Sha256::digest(body)));
    let unchanged = if_none_match.is_some_and(|tags| {
        tags.split(',')
            .any(|tag| tag.trim() == etag || tag.trim() == "*")
    });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(body.into());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

fn hex_prefix(digest: &[u8]) -> String {
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
