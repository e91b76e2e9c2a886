//! `POST /api/dashboard/demo-scan`: in `botwave demo`, the simulated phone scans the caller's
//! current QR code. The page cannot call the simulator itself (another origin, and the CSP only
//! allows this node), so the node forwards the scan.
//!
//! The simulator is a plain-HTTP server on this machine; one POST over a TCP socket is all the
//! HTTP client this needs, so no client library is pulled into the binary for it.

use std::{sync::Arc, time::Duration};

use botwave_actors::sessions;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::{Reply, http::StatusCode};

use crate::{
    http::{error::ApiError, filters::Caller},
    state::AppState,
};

/// The number the demo's simulated phone has; any number works, this one is easy to recognise.
pub const DEMO_PHONE: &str = "15550001111";

const TIMEOUT: Duration = Duration::from_secs(10);

/// The demo phone scanned the code.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DemoScanned)]
pub struct Scanned {
    scanned: bool,
    /// The simulated phone's number.
    phone: &'static str,
}

pub async fn scan(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let Some(control) = state.demo_simulator.as_deref() else {
        return Err(ApiError::NotFound("route"));
    };
    let qr = sessions::status(&state.pool, caller.user.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .and_then(|status| status.qr_code)
        .ok_or_else(|| {
            ApiError::Conflict(
                "no_qr",
                "there is no QR code to scan; press Connect first".into(),
            )
        })?;
    let body = json!({ "phone": DEMO_PHONE, "qr": qr }).to_string();
    let status = tokio::time::timeout(TIMEOUT, post_json(control, "/scan", &body))
        .await
        .map_err(|_| ApiError::Unavailable("the simulator did not answer in time".into()))?
        .map_err(|e| ApiError::Unavailable(format!("cannot reach the simulator: {e}")))?;
    if !(200..300).contains(&status) {
        return Err(ApiError::Unavailable(format!(
            "the simulator refused the scan (HTTP {status})"
        )));
    }
    Ok(warp::reply::with_status(
        warp::reply::json(&Scanned {
            scanned: true,
            phone: DEMO_PHONE,
        }),
        StatusCode::ACCEPTED,
    ))
}

/// POSTs `body` to `base` + `path` (`base` like `http://127.0.0.1:4000/control`) and returns
/// the answer's status code.
async fn post_json(base: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| invalid("the simulator URL must start with http://"))?;
    let (authority, base_path) = rest.split_once('/').unwrap_or((rest, ""));
    let base_path = base_path.trim_end_matches('/');
    let target = if base_path.is_empty() {
        path.to_owned()
    } else {
        format!("/{base_path}{path}")
    };
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    // "HTTP/1.1 200 OK": the second word is the status.
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("the simulator's answer is not HTTP"))
}
