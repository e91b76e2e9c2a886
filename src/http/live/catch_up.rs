//! Catching a websocket up after it (re)connects: a snapshot of the session, then the message
//! status changes it missed while it was away, read from PostgreSQL. A client that loses its
//! link — to a restart, a node going down, a flaky network — and reconnects to any node loses
//! nothing that happened meanwhile.
//!
//! Every frame the server sends carries a `cursor` (when it was sent). A client that
//! reconnects authenticates with `"since": <the last cursor it saw>`. After `authenticated` it
//! gets a `snapshot` (the session as `GET /api/whatsapp/status` shows it) and, with `since`,
//! one `message_status` with `"replayed": true` per message whose status changed since then,
//! then `replay_complete`. A gap too long or too busy to replay is answered `resync` instead:
//! the client reads everything again over HTTP.
//!
//! A replayed status is the message's current one, so hearing it twice is harmless. That is
//! why the replay starts [`REPLAY_MARGIN`] before `since`: it covers events that were still on
//! their way from another node when the link broke, and clocks of nodes that disagree a little.

use std::collections::HashMap;
use std::time::Duration;

use botwave_actors::outbox::MessageStatus;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::http::filters::Caller;
use crate::http::whatsapp::current_status;
use crate::message_log;
use crate::state::AppState;

/// The longest gap replayed; a client away longer reads everything again.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How far before the client's `since` the replay starts.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(30);
/// The most changes replayed; beyond this the client reads everything again.
pub const REPLAY_LIMIT: i64 = 500;

/// What the replay told the client, so that live events it already covered (published while
/// the replay was read) are not delivered after it, out of order.
#[derive(Default)]
pub struct Replayed(HashMap<Uuid, MessageStatus>);

impl Replayed {
    /// Whether a live `status` of `message_id` is older news than what was replayed. A live
    /// event that is news ends the replay's say over that message.
    pub fn covers(&mut self, message_id: Uuid, status: MessageStatus) -> bool {
        let Some(replayed) = self.0.get(&message_id) else {
            return false;
        };
        if progress(*replayed) >= progress(status) {
            return true;
        }
        self.0.remove(&message_id);
        false
    }
}

/// How far along a message is; statuses only move forward (a requeue aside, which a replay
/// that has seen `sending` may hide until the message moves on).
fn progress(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Queued => 0,
        MessageStatus::Sending => 1,
        MessageStatus::Sent => 2,
        MessageStatus::Delivered => 3,
        MessageStatus::Read | MessageStatus::Failed => 4,
    }
}

/// The frames that catch the caller's socket up (without cursors), and what they replayed.
pub async fn catch_up(
    state: &AppState,
    caller: &Caller,
    since: Option<DateTime<Utc>>,
) -> (Vec<Value>, Replayed) {
    let mut frames = Vec::new();
    let mut replayed = Replayed::default();
    match current_status(state, caller).await {
        Ok(session) => frames.push(json!({ "type": "snapshot", "session": session })),
        Err(error) => {
            tracing::warn!(user = %caller.user.id, %error, "cannot read a websocket snapshot");
            frames.push(resync("unavailable"));
            return (frames, replayed);
        }
    }
    let Some(since) = since else {
        return (frames, replayed);
    };
    let away = (Utc::now() - since).to_std().unwrap_or_default();
    if away > REPLAY_WINDOW {
        frames.push(resync("too_far_behind"));
        return (frames, replayed);
    }
    let from = since - chrono::Duration::from_std(REPLAY_MARGIN).unwrap_or_default();
    let changed =
        match message_log::changed_since(&state.pool, caller.user.id, from, REPLAY_LIMIT + 1).await
        {
            Ok(changed) => changed,
            Err(error) => {
                tracing::warn!(user = %caller.user.id, %error, "cannot read missed events");
                frames.push(resync("unavailable"));
                return (frames, replayed);
            }
        };
    if changed.len() as i64 > REPLAY_LIMIT {
        frames.push(resync("too_many_changes"));
        return (frames, replayed);
    }
    for message in &changed {
        replayed.0.insert(message.id, message.status);
        frames.push(json!({
            "type": "message_status",
            "user_id": caller.user.id,
            "message_id": message.id,
            "status": message.status,
            "at": message.status_at(),
            "error": message.error,
            "replayed": true,
        }));
    }
    frames.push(json!({ "type": "replay_complete", "count": changed.len() }));
    (frames, replayed)
}

fn resync(reason: &str) -> Value {
    json!({ "type": "resync", "reason": reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_event_the_replay_already_covered_is_dropped_and_news_passes() {
        let message = Uuid::new_v4();
        let mut replayed = Replayed::default();
        replayed.0.insert(message, MessageStatus::Delivered);
        assert!(replayed.covers(message, MessageStatus::Sent));
        assert!(replayed.covers(message, MessageStatus::Delivered));
        assert!(!replayed.covers(message, MessageStatus::Read));
        // Once news passed, the replay no longer speaks for the message.
        assert!(!replayed.covers(message, MessageStatus::Sent));
        assert!(!replayed.covers(Uuid::new_v4(), MessageStatus::Queued));
    }
}
