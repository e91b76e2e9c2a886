//! `WaSession`: the actor owning one user's WhatsApp connection. It runs one
//! whatsapp-rust client on the session's [`PgStore`], turns the client's events into
//! state in `wa_sessions` and events on the hub, and drains the user's outbox while
//! connected. It runs under its lease ([`Fence`]): every write carries it, and the
//! moment the lease is lost the client is cut off and the actor stops without writing
//! anything more. Whoever spawned it decides about restarts; it only reports being
//! connected, through [`WaSessionArgs::on_connected`].

mod acks;
mod client;
mod client_events;
mod fenced_transport;
mod inbound;
pub mod pair_code;
mod receipts;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;
use whatsapp_rust::Client;
use whatsapp_rust::types::events::Event;

use crate::PgPool;
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::events::{EventHub, SessionEvent};
use crate::lease::Fence;
use crate::outbox::{MessageStatus, Moved};
use crate::sessions::{self, SessionState, Transition};
use crate::store::PgStore;
use crate::telemetry::Stage;
use client::RunningClient;

/// Stop reason of a session that ended on purpose (logout, replaced, QR not scanned,
/// user disconnect, node shutdown): its supervisor does not restart it.
pub const ENDED: &str = "session ended";

/// Stop reason of a session whose lease is no longer this node's: it wrote nothing on the
/// way out, and nobody here may restart it.
pub const LEASE_LOST: &str = "lease lost";

/// How often, and how far apart, a forgotten device is deleted (see `forget_device`).
const FORGET_ATTEMPTS: usize = 5;
const FORGET_SETTLE: Duration = Duration::from_millis(200);

/// A client that shows neither a QR code nor a login this long after starting is asked
/// why (see [`client::probe`]).
const CONNECT_WATCHDOG: Duration = Duration::from_secs(10);

#[derive(ractor_cluster::RactorMessage)]
pub enum WaSessionMsg {
    /// An event of the whatsapp-rust client.
    Client(Arc<Event>),
    /// The outbox may hold something to send.
    Drain,
    /// The user disconnects: log the device out, forget it, stop.
    Logout(RpcReplyPort<()>),
    /// The client made no visible progress since it started: find out why.
    ConnectWatchdog,
    /// The user asks for a link code for this phone number (linking by phone number).
    PairCode {
        phone: String,
        reply: pair_code::PairCodeReply,
    },
    /// The QR codes ran out while a link code kept the socket up, and that code's time
    /// is over too: stop unless the device got linked meanwhile.
    LinkingTimedOut,
    /// The lease is gone (not renewed in time, or taken over): stop at once, write nothing.
    LeaseLost,
    /// Panics, so tests can prove the supervisor restarts a crashed session.
    #[doc(hidden)]
    CrashForTest,
}

/// What a session actor is started with.
pub struct WaSessionArgs {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub pool: PgPool,
    pub events: EventHub,
    pub config: Arc<SessionConfig>,
    /// The lease this session runs under.
    pub fence: Fence,
    /// Called each time the session reaches `connected`.
    pub on_connected: Arc<dyn Fn() + Send + Sync>,
}

pub struct WaSession;

/// What a session's tasks write with: its user, the pool, its lease, the event hub.
#[derive(Clone)]
pub struct Writer {
    pub user_id: Uuid,
    pub pool: PgPool,
    pub fence: Fence,
    pub events: EventHub,
}

impl Writer {
    /// Announces that one of the user's messages reached `status`.
    fn publish(
        &self,
        message_id: Uuid,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<String>,
    ) {
        self.events.publish(SessionEvent::MessageStatus {
            user_id: self.user_id,
            message_id,
            status,
            at,
            error,
            not_before: None,
        });
    }

    /// Announces that one of the user's messages is queued until `not_before` (pacing).
    fn publish_scheduled(
        &self,
        message_id: Uuid,
        at: DateTime<Utc>,
        not_before: Option<DateTime<Utc>>,
    ) {
        self.events.publish(SessionEvent::MessageStatus {
            user_id: self.user_id,
            message_id,
            status: MessageStatus::Queued,
            at,
            error: None,
            not_before,
        });
    }

    /// Announces every move a statement made, and times the stages that ended with it.
    fn publish_moved(&self, moved: &[Moved], error: Option<&str>) {
        for message in moved {
            let stage = match message.status {
                MessageStatus::Sent => Some(Stage::AcceptedToSent),
                MessageStatus::Delivered => Some(Stage::SentToDelivered),
                _ => None,
            };
            if let (Some(stage), Some(took)) = (stage, message.took) {
                self.events.telemetry().timed(stage, took);
            }
            self.publish(
                message.id,
                message.status,
                message.at,
                error.map(str::to_owned),
            );
        }
    }
}

pub struct WaSessionState {
    args: WaSessionArgs,
    store: PgStore,
    client: Option<RunningClient>,
    /// Logged in and past the initial sync: sends can go out.
    connected: bool,
    /// [`WaSessionState::end`] ran: the actor is stopping, late messages are moot.
    ended: bool,
    /// The client got somewhere (a QR code, a pairing, a login) since it started.
    progressed: bool,
    /// The client's socket is up and unpaired (it shows a QR code): it can be asked
    /// for a link code.
    showing_qr: bool,
    /// The device was linked (pair-success), by QR code or link code.
    paired: bool,
    /// A link code request waiting for the socket.
    pending_pair_code: Option<pair_code::PendingPairCode>,
}

impl WaSessionState {
    fn user_id(&self) -> Uuid {
        self.args.user_id
    }

    fn pool(&self) -> &PgPool {
        &self.args.pool
    }

    fn fence(&self) -> &Fence {
        &self.args.fence
    }

    fn publish(&self, event: SessionEvent) {
        self.args.events.publish(event);
    }

    fn writer(&self) -> Writer {
        Writer {
            user_id: self.args.user_id,
            pool: self.args.pool.clone(),
            fence: self.args.fence.clone(),
            events: self.args.events.clone(),
        }
    }

    /// Logged in and past the initial sync (or not any more): sends go out (or wait).
    fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        if let Some(client) = &self.client {
            client.set_connected(connected);
        }
    }

    /// Records a state change of this session and announces it (see [`sessions::transition`]).
    async fn transition(&self, change: Transition<'_>) -> Result<(), SessionError> {
        sessions::transition(
            self.pool(),
            self.fence(),
            &self.args.events,
            self.user_id(),
            change,
        )
        .await
    }

    /// Ends the session on purpose: stops the client (logging the device out first if
    /// `logout`), forgets the device if it is gone, records why, and stops the actor.
    async fn end(
        &mut self,
        myself: &ActorRef<WaSessionMsg>,
        state: SessionState,
        reason: &str,
        device_gone: bool,
        logout: bool,
    ) -> Result<(), ActorProcessingErr> {
        self.set_connected(false);
        self.ended = true;
        pair_code::refuse_pending(self, crate::error::PairCodeRefusal::NotRunning);
        let mut stopped = None;
        if let Some(client) = self.client.take() {
            stopped = Some(client.client().clone());
            if logout {
                client.logout().await;
            } else {
                client.stop().await;
            }
        }
        if device_gone {
            self.forget_device(stopped).await?;
        }
        self.transition(Transition::Stopped {
            state,
            reason,
            forget_phone: device_gone,
        })
        .await?;
        myself.stop(Some(ENDED.to_owned()));
        Ok(())
    }
}

impl WaSessionState {
    /// Deletes the device state of a stopped client. Its background saver may still be
    /// finishing a last write when the client's loop has ended, so the deletion is
    /// repeated until the device stays gone.
    async fn forget_device(&self, stopped: Option<Arc<Client>>) -> Result<(), ActorProcessingErr> {
        if let Some(client) = stopped
            && let Err(error) = client.persistence_manager().flush().await
        {
            tracing::debug!(%error, "final device flush before forgetting it failed");
        }
        for _ in 0..FORGET_ATTEMPTS {
            self.store.delete_all().await?;
            tokio::time::sleep(FORGET_SETTLE).await;
            if !sessions::device_stored(self.pool(), self.args.session_id).await? {
                return Ok(());
            }
        }
        Err("the device state kept coming back after deleting it".into())
    }
}

impl Actor for WaSession {
    type Msg = WaSessionMsg;
    type State = WaSessionState;
    type Arguments = WaSessionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // No I/O here: a pre_start failure goes back to the spawner, unsupervised.
        let store = PgStore::new(args.pool.clone(), args.fence.clone());
        Ok(WaSessionState {
            args,
            store,
            client: None,
            connected: false,
            ended: false,
            progressed: false,
            showing_qr: false,
            paired: false,
            pending_pair_code: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.transition(Transition::Starting).await?;
        let client = RunningClient::start(
            state.store.clone(),
            state.args.config.whatsapp_url.as_deref(),
            Arc::new(state.args.config.pacing.clone()),
            state.writer(),
            myself.clone(),
        )
        .await?;
        state.client = Some(client);
        drop(myself.send_after(CONNECT_WATCHDOG, || WaSessionMsg::ConnectWatchdog));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(client) = state.client.take() {
            client.stop().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.ended {
            match message {
                WaSessionMsg::Logout(reply) => {
                    let _ = reply.send(());
                }
                WaSessionMsg::PairCode { reply, .. } => {
                    let _ = reply.send(Err(crate::error::PairCodeRefusal::NotRunning));
                }
                _ => {}
            }
            return Ok(());
        }
        match message {
            WaSessionMsg::Client(event) => client_events::handle(&myself, state, &event).await,
            WaSessionMsg::Drain => {
                if let Some(client) = &state.client {
                    client.wake_sender();
                }
                Ok(())
            }
            WaSessionMsg::Logout(reply) => {
                let ended = state
                    .end(
                        &myself,
                        SessionState::Idle,
                        "disconnected by the user",
                        true,
                        true,
                    )
                    .await;
                let _ = reply.send(());
                ended
            }
            WaSessionMsg::ConnectWatchdog => watchdog(&myself, state).await,
            WaSessionMsg::PairCode { phone, reply } => {
                pair_code::request(state, phone, reply);
                Ok(())
            }
            WaSessionMsg::LinkingTimedOut if !state.paired && !state.connected => {
                state
                    .end(
                        &myself,
                        SessionState::Disconnected,
                        "neither the QR code nor the link code was used in time; initialize again",
                        false,
                        false,
                    )
                    .await
            }
            WaSessionMsg::LinkingTimedOut => Ok(()),
            WaSessionMsg::LeaseLost => {
                tracing::warn!(user_id = %state.user_id(), "lease lost; stopping the session");
                state.ended = true;
                state.set_connected(false);
                pair_code::refuse_pending(state, crate::error::PairCodeRefusal::NotRunning);
                if let Some(client) = state.client.take() {
                    client.stop().await;
                }
                myself.stop(Some(LEASE_LOST.to_owned()));
                Ok(())
            }
            WaSessionMsg::CrashForTest => panic!("crash requested by a test"),
        }
    }
}

/// The client is silent: probe the server. A permanent failure (say, a certificate chain
/// that is not WhatsApp's) ends the session as `failed`; a passing one is recorded as the
/// last error while the client keeps retrying.
async fn watchdog(
    myself: &ActorRef<WaSessionMsg>,
    state: &mut WaSessionState,
) -> Result<(), ActorProcessingErr> {
    if state.progressed {
        return Ok(());
    }
    match client::probe(state.args.config.whatsapp_url.as_deref()).await {
        Ok(()) => {}
        Err(unreachable) if unreachable.permanent => {
            tracing::warn!(user_id = %state.user_id(), reason = %unreachable.reason, "WhatsApp unreachable");
            return state
                .end(
                    myself,
                    SessionState::Failed,
                    &unreachable.reason,
                    false,
                    false,
                )
                .await;
        }
        Err(unreachable) => {
            sessions::set_last_error(
                state.pool(),
                state.fence(),
                state.user_id(),
                &unreachable.reason,
            )
            .await?;
        }
    }
    if !state.progressed {
        drop(myself.send_after(CONNECT_WATCHDOG, || WaSessionMsg::ConnectWatchdog));
    }
    Ok(())
}
