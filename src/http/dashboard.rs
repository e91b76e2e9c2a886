//! The web dashboard: the single-page app under `/` and `/assets/…`, compiled into the binary so
//! a node serves it with no files beside it and no network, plus the two small endpoints only the
//! page needs (`/api/dashboard/config`, and `/api/dashboard/demo-scan` in `botwave demo`).

mod demo;

use std::{collections::HashMap, sync::Arc, sync::LazyLock};

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use warp::{
    Filter, Reply,
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use super::{
    error::{ErrorBody, respond},
    filters::{session_caller, with_state},
    routing::Route,
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
        ("plan.js", asset(include_bytes!("../dashboard/plan.js"), js)),
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
            "admin-plans.js",
            asset(include_bytes!("../dashboard/admin-plans.js"), js),
        ),
        (
            "admin-cluster.js",
            asset(include_bytes!("../dashboard/admin-cluster.js"), js),
        ),
        (
            "chart.js",
            asset(include_bytes!("../dashboard/chart.js"), js),
        ),
        // The API reference at /api/docs.
        (
            "api-docs.js",
            asset(include_bytes!("../dashboard/api-docs.js"), js),
        ),
        (
            "api-docs.css",
            asset(
                include_bytes!("../dashboard/api-docs.css"),
                "text/css; charset=utf-8",
            ),
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

/// What the page needs to know about this node.
#[derive(Serialize, ToSchema)]
struct DashboardConfig {
    /// The node runs `botwave demo`.
    demo: bool,
    /// The demo simulator's control address, in the demo.
    simulator_control_url: Option<String>,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_index>(|at| {
            at.and(warp::header::optional::<String>("if-none-match"))
                .map(index)
                .boxed()
        }),
        // The link in a reset email opens the app with its token.
        Route::new::<__path_reset_page>(|at| {
            at.and(warp::header::optional::<String>("if-none-match"))
                .map(reset_page)
                .boxed()
        }),
        Route::with::<__path_asset_file, String>(|at| {
            at.and(warp::header::optional::<String>("if-none-match"))
                .map(|name: String, etag: Option<String>| asset_file(&name, etag.as_deref()))
                .boxed()
        }),
        Route::new::<__path_config>(|at| {
            at.and(with_state(state.clone()))
                .map(|state: Arc<AppState>| config(&state).into_response())
                .boxed()
        }),
        Route::new::<__path_demo_scan>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(demo_scan)
                .boxed()
        }),
    ]
}

/// The dashboard
#[utoipa::path(get, path = "/", tag = "dashboard", operation_id = "dashboard",
    responses(
        (status = 200, description = "The single-page app", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
fn index(etag: Option<String>) -> Response {
    page(INDEX_HTML, etag.as_deref())
}

/// The page a password reset link opens
#[utoipa::path(get, path = "/reset-password", tag = "dashboard", operation_id = "reset_password_page",
    params(("token" = Option<String>, Query, description = "The link's token")),
    responses(
        (status = 200, description = "The single-page app, on its reset form", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
fn reset_page(etag: Option<String>) -> Response {
    index(etag)
}

/// A file of the dashboard
#[utoipa::path(get, path = "/assets/{name}", tag = "dashboard", operation_id = "dashboard_asset",
    params(("name" = String, Path, description = "`app.js`, `style.css`, …")),
    responses(
        (status = 200, description = "The file (JavaScript, CSS or SVG)", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
            (String = "image/svg+xml"),
        )),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
fn asset_file(name: &str, etag: Option<&str>) -> Response {
    match ASSETS.get(name) {
        Some(asset) => static_file(asset.body, asset.content_type, etag),
        None => super::ApiError::NotFound("file").into_response(),
    }
}

/// The dashboard's settings
#[utoipa::path(get, path = "/api/dashboard/config", tag = "dashboard", operation_id = "dashboard_config",
    responses((status = 200, description = "What the page needs to know", body = DashboardConfig)))]
fn config(state: &AppState) -> impl Reply {
    warp::reply::json(&DashboardConfig {
        demo: state.demo_simulator.is_some(),
        simulator_control_url: state.demo_simulator.clone(),
    })
}

/// Scan the QR code with the demo's simulated phone
///
/// Only in `botwave demo`; 404 on any other node.
#[utoipa::path(post, path = "/api/dashboard/demo-scan", tag = "dashboard", operation_id = "demo_scan",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Scanned", body = demo::Scanned),
        (status = 404, description = "Not a demo node", body = ErrorBody),
        (status = 409, description = "`no_qr`: there is no QR code to scan", body = ErrorBody),
        (status = 503, description = "The simulator did not answer or refused", body = ErrorBody),
    ))]
async fn demo_scan(state: Arc<AppState>, caller: super::filters::Caller) -> Response {
    respond(demo::scan(state, caller).await)
}

/// An HTML page of this node, with the headers every one gets (no framing, no code or styles
/// from elsewhere).
pub(super) fn page(html: &'static str, etag: Option<&str>) -> Response {
    let mut response = static_file(html.as_bytes(), "text/html; charset=utf-8", etag);
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
