//! Draining a connected session's outbox, one message per mailbox turn so client events
//! (receipts, disconnects) interleave with sending.

use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef};
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{ClientError, Jid};

use super::{WaSessionMsg, WaSessionState};
use crate::events::SessionEvent;
use crate::outbox::{self, Claimed, MessageStatus};

/// A message that could not be sent this many times is given up on, so one poisonous
/// message cannot hold up the queue forever.
const MAX_ATTEMPTS: i32 = 5;

/// Upper bound for one send (device lookup, encryption, the stanza write).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// What became of one send attempt.
enum Outcome {
    Sent,
    /// Not connected after all: back to the queue until the next `Connected`.
    Retry,
    Failed(String),
}

pub async fn send_next(
    myself: &ActorRef<WaSessionMsg>,
    state: &mut WaSessionState,
) -> Result<(), ActorProcessingErr> {
    if !state.connected {
        return Ok(());
    }
    let Some(client) = state.client.as_ref().map(|c| c.client().clone()) else {
        return Ok(());
    };
    let user_id = state.user_id();
    let Some(job) = outbox::claim_next(state.pool(), state.fence(), user_id).await? else {
        return Ok(());
    };
    if job.attempts > MAX_ATTEMPTS {
        let reason = format!("gave up after {MAX_ATTEMPTS} attempts");
        fail(state, &job, &reason).await?;
        let _ = myself.cast(WaSessionMsg::Drain);
        return Ok(());
    }
    publish(state, &job, MessageStatus::Sending, job.at, None);

    let Some(recipient) = recipient_jid(&job.recipient) else {
        fail(
            state,
            &job,
            "invalid recipient: a phone number is digits only",
        )
        .await?;
        let _ = myself.cast(WaSessionMsg::Drain);
        return Ok(());
    };
    // Chosen and stored before the send: a crash after the send but before `sent` is
    // recorded retries with the same id, which WhatsApp treats as the same message.
    let wa_message_id = match &job.wa_message_id {
        Some(id) => id.clone(),
        None => {
            let id = client.generate_message_id();
            outbox::assign_wa_id(state.pool(), state.fence(), job.id, &id).await?;
            id
        }
    };
    let message = wa::Message {
        conversation: Some(job.body.clone()),
        ..Default::default()
    };
    let options = SendOptions::default().with_message_id(wa_message_id);
    let sent = tokio::time::timeout(
        SEND_TIMEOUT,
        client.send_message_with_options(recipient, message, options),
    )
    .await;
    let outcome = match sent {
        Ok(Ok(_)) => Outcome::Sent,
        Ok(Err(error)) => classify(&error),
        Err(_) => Outcome::Retry,
    };
    match outcome {
        Outcome::Sent => {
            if let Some(at) = outbox::mark_sent(state.pool(), state.fence(), job.id).await? {
                publish(state, &job, MessageStatus::Sent, at, None);
            }
            let _ = myself.cast(WaSessionMsg::Drain);
        }
        Outcome::Retry => {
            if let Some(at) = outbox::requeue(state.pool(), state.fence(), job.id).await? {
                publish(state, &job, MessageStatus::Queued, at, None);
            }
            // The next `Connected` drains again; retrying now would spin.
            state.connected = state.connected && client.is_connected();
            if state.connected {
                // Detached: the timer task delivers on its own.
                drop(myself.send_after(Duration::from_secs(2), || WaSessionMsg::Drain));
            }
        }
        Outcome::Failed(reason) => {
            fail(state, &job, &reason).await?;
            let _ = myself.cast(WaSessionMsg::Drain);
        }
    }
    Ok(())
}

/// `<digits>@s.whatsapp.net`, or `None` for anything that is not a phone number.
fn recipient_jid(recipient: &str) -> Option<Jid> {
    let digits = !recipient.is_empty()
        && recipient.len() <= 20
        && recipient.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| Jid::pn(recipient))
}

fn classify(error: &SendError) -> Outcome {
    match error {
        SendError::NotLoggedIn
        | SendError::Client(ClientError::NotConnected | ClientError::NotLoggedIn) => Outcome::Retry,
        other => {
            let text = format!("{other:#}");
            if text.contains("406") {
                Outcome::Failed(format!(
                    "recipient is not on WhatsApp (server answered 406): {text}"
                ))
            } else {
                Outcome::Failed(format!("send failed: {text}"))
            }
        }
    }
}

async fn fail(
    state: &WaSessionState,
    job: &Claimed,
    reason: &str,
) -> Result<(), ActorProcessingErr> {
    if let Some(at) = outbox::mark_failed(state.pool(), state.fence(), job.id, reason).await? {
        publish(
            state,
            job,
            MessageStatus::Failed,
            at,
            Some(reason.to_owned()),
        );
    }
    Ok(())
}

fn publish(
    state: &WaSessionState,
    job: &Claimed,
    status: MessageStatus,
    at: chrono::DateTime<chrono::Utc>,
    error: Option<String>,
) {
    state.publish(SessionEvent::MessageStatus {
        user_id: state.user_id(),
        message_id: job.id,
        status,
        at,
        error,
    });
}
