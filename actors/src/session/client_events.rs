//! What a session does with each event of its whatsapp-rust client.

use chrono::Utc;
use ractor::{ActorProcessingErr, ActorRef};
use whatsapp_rust::types::events::Event;

use super::{WaSessionMsg, WaSessionState, pair_code};
use crate::error::PairCodeRefusal;
use crate::events::SessionEvent;
use crate::sessions::{self, SessionState, Transition};

pub async fn handle(
    myself: &ActorRef<WaSessionMsg>,
    state: &mut WaSessionState,
    event: &Event,
) -> Result<(), ActorProcessingErr> {
    let user_id = state.user_id();
    if matches!(
        event,
        Event::PairingQrCode(_)
            | Event::PairingCode(_)
            | Event::PairSuccess(_)
            | Event::Connected(_)
    ) {
        state.progressed = true;
    }
    match event {
        Event::PairingQrCode(qr) => {
            let expires_at = Utc::now()
                + chrono::Duration::from_std(qr.timeout).unwrap_or(chrono::Duration::seconds(20));
            state
                .transition(Transition::Qr {
                    code: &qr.code,
                    expires_at,
                })
                .await?;
            state.showing_qr = true;
            pair_code::on_socket_ready(state);
        }
        Event::PairingCode(code) => {
            let expires_at = Utc::now()
                + chrono::Duration::from_std(code.timeout)
                    .unwrap_or(chrono::Duration::seconds(180));
            state.publish(SessionEvent::PairCode {
                user_id,
                code: code.code.clone(),
                expires_at,
            });
        }
        Event::PairingCodeError(failure) => {
            let reason = format!("link code failed: {}", failure.error);
            sessions::set_last_error(state.pool(), state.fence(), user_id, &reason).await?;
        }
        Event::PairingCodeRefresh(_) => {
            sessions::set_last_error(
                state.pool(),
                state.fence(),
                user_id,
                "the link code can no longer be used; request a new one",
            )
            .await?;
        }
        Event::PairSuccess(paired) => {
            state.paired = true;
            state.showing_qr = false;
            pair_code::refuse_pending(state, PairCodeRefusal::AlreadyLinked);
            state
                .transition(Transition::Paired {
                    phone: &paired.id.user,
                })
                .await?;
        }
        Event::PairError(failure) => {
            let reason = format!("pairing failed: {}", failure.error);
            sessions::set_last_error(state.pool(), state.fence(), user_id, &reason).await?;
        }
        Event::Connected(_) => {
            let Some(client) = state.client.as_ref() else {
                return Ok(());
            };
            let Some(own) = client.client().pn() else {
                // Connected without an identity cannot happen; keep going without a number.
                tracing::warn!(%user_id, "connected but the client reports no phone number");
                return Ok(());
            };
            let phone = own.user.to_string();
            let push_name = Some(client.client().push_name()).filter(|name| !name.is_empty());
            state
                .transition(Transition::Connected {
                    phone: &phone,
                    push_name: push_name.as_deref(),
                })
                .await?;
            state.set_connected(true);
            (state.args.on_connected)();
        }
        Event::Disconnected(lost) => {
            // The client reconnects by itself; sends wait for the next Connected.
            state.set_connected(false);
            state.showing_qr = false;
            let reason = format!("connection lost ({}), reconnecting", lost.reason);
            state
                .transition(Transition::Stopped {
                    state: SessionState::Connecting,
                    reason: &reason,
                    forget_phone: false,
                })
                .await?;
        }
        Event::LoggedOut(logged_out) => {
            let reason = format!(
                "logged out from the phone ({:?}); scan a new QR code to link again",
                logged_out.reason
            );
            state
                .end(myself, SessionState::Disconnected, &reason, true, false)
                .await?;
        }
        Event::StreamReplaced(_) => {
            state
                .end(
                    myself,
                    SessionState::Disconnected,
                    "replaced by another connection",
                    false,
                    false,
                )
                .await?;
        }
        Event::PairingQrCodesExhausted(exhausted) if !exhausted.disconnected => {
            // A link code keeps the socket up: give it its time before giving up.
            drop(myself.send_after(pair_code::code_validity(), || WaSessionMsg::LinkingTimedOut));
        }
        Event::PairingQrCodesExhausted(_) => {
            state
                .end(
                    myself,
                    SessionState::Disconnected,
                    "QR code not scanned in time; initialize again for a new one",
                    false,
                    false,
                )
                .await?;
        }
        Event::TemporaryBan(ban) => {
            let reason = format!(
                "temporarily banned by WhatsApp ({}) for {} s",
                ban.code,
                ban.expire.num_seconds()
            );
            state
                .end(myself, SessionState::Disconnected, &reason, false, false)
                .await?;
        }
        Event::ClientOutdated(_) => {
            state
                .end(
                    myself,
                    SessionState::Disconnected,
                    "WhatsApp rejected this client version as outdated",
                    false,
                    false,
                )
                .await?;
        }
        Event::ConnectFailure(failure) => {
            let reason = match &failure.message {
                Some(message) => format!("connect failure {:?}: {message}", failure.reason),
                None => format!("connect failure {:?}", failure.reason),
            };
            sessions::set_last_error(state.pool(), state.fence(), user_id, &reason).await?;
        }
        // Received messages are stored by the inbound hook before the client acknowledges
        // them (see `inbound`); the event that follows has nothing left to do.
        _ => {}
    }
    Ok(())
}
