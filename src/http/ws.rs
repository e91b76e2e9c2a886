//! `/ws`: pushes a user's session events to the browser as they happen.
//!
//! The client has [`AUTH_DEADLINE`] to send `{"type":"authenticate","token":JWT}`; it is then
//! answered `authenticated` and receives its own events (`qr_code`, `whatsapp_connected`,
//! `whatsapp_disconnected`, `message_status`, and its `session_state`); admins also receive every
//! session's `session_state`. A client too slow to keep up is disconnected rather than allowed
//! to hold events back for everyone else.

use std::{sync::Arc, time::Duration};

use botwave_actors::SessionEvent;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use warp::{
    Filter, Rejection, Reply,
    filters::ws::{Message, WebSocket},
};

use super::filters::with_state;
use crate::{domain::Role, state::AppState, users::User};

pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(25);
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Close codes in the private range, so a client can tell why it was let go.
const CLOSE_AUTH_TIMEOUT: u16 = 4000;
const CLOSE_AUTH_FAILED: u16 = 4001;
const CLOSE_TOO_SLOW: u16 = 4008;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Authenticate { token: String },
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::ws())
        .and(with_state(state))
        .map(|ws: warp::ws::Ws, state: Arc<AppState>| {
            ws.max_message_size(MAX_CLIENT_MESSAGE)
                .on_upgrade(move |socket| serve(socket, state))
        })
}

async fn serve(socket: WebSocket, state: Arc<AppState>) {
    let (mut sink, mut stream) = socket.split();
    // Subscribe before authenticating so that nothing published meanwhile is missed.
    let mut events = state.events.subscribe();

    let user = match tokio::time::timeout(AUTH_DEADLINE, authenticate(&state, &mut stream)).await {
        Ok(Ok(user)) => user,
        Ok(Err(reason)) => {
            let _ = sink.send(close(CLOSE_AUTH_FAILED, reason)).await;
            return;
        }
        Err(_) => {
            let _ = sink
                .send(close(CLOSE_AUTH_TIMEOUT, "authenticate within 5 seconds"))
                .await;
            return;
        }
    };
    let hello = json!({
        "type": "authenticated",
        "user": { "id": user.id, "email": user.email, "role": user.role },
    });
    if sink.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }

    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) if is_for(&event, &user) => {
                    let text = render(&event);
                    if sink.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(user = %user.id, missed, "websocket client too slow, disconnecting");
                    let _ = sink.send(close(CLOSE_TOO_SLOW, "too slow to keep up; reconnect")).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = stream.next() => match incoming {
                // Reading is what answers the client's pings; anything else it says is ignored.
                Some(Ok(message)) if !message.is_close() => {}
                _ => return,
            },
            _ = ping.tick() => {
                if sink.send(Message::ping(Vec::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits for the `authenticate` message and checks its token like any API request's.
async fn authenticate(
    state: &AppState,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<User, &'static str> {
    while let Some(Ok(message)) = stream.next().await {
        if message.is_ping() || message.is_pong() {
            continue;
        }
        let Ok(text) = message.to_str() else {
            return Err("expected a JSON text message");
        };
        let Ok(ClientMessage::Authenticate { token }) = serde_json::from_str(text) else {
            return Err("expected {\"type\":\"authenticate\",\"token\":…}");
        };
        return super::filters::identify_token(state, &token)
            .await
            .map(|caller| caller.user)
            .map_err(|_| "invalid or expired token");
    }
    Err("closed before authenticating")
}

/// The event as the browser gets it; a QR code comes with its image, ready to show.
fn render(event: &SessionEvent) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let (SessionEvent::QrCode { code, .. }, Some(object)) = (event, value.as_object_mut())
        && let Ok(svg) = crate::qr::svg(code)
    {
        object.insert("svg".into(), serde_json::Value::String(svg));
    }
    value.to_string()
}

fn is_for(event: &SessionEvent, user: &User) -> bool {
    event.user_id() == user.id
        || (user.role == Role::Admin && matches!(event, SessionEvent::SessionState { .. }))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::close_with(code, reason)
}
