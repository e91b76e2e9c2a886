//! `SessionSupervisor`: runs the sessions whose lease this node holds, one linked
//! [`WaSession`] per user, and restarts crashed ones with capped exponential backoff and
//! a restart budget.
//!
//! It is also where this node's share of the cluster is kept (see [`placement`]): every
//! tick it renews its leases in one statement, stops the sessions whose lease it could
//! not keep, claims sessions nobody runs and hands sessions over when it holds more
//! than its share, or when it drains.
//!
//! ractor has no restart strategies, and its default supervisor stops itself when a
//! child exits, so this actor handles every supervision event itself. A restart is a
//! new actor: the slot (keyed by user) is what stays, and a generation number makes a
//! restart scheduled before a disconnect or a newer start harmless.

pub mod backoff;
mod placement;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use uuid::Uuid;

use crate::PgPool;
use crate::cluster::NodeIdentity;
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::events::EventHub;
use crate::lease::{self, Fence};
use crate::session::{ENDED, LEASE_LOST, WaSession, WaSessionArgs, WaSessionMsg};
use crate::sessions::{self, SessionState, Transition};
use crate::store::PgStore;

/// A session connected for this long has proven itself: its crash count starts over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How long a session gets to log out and stop when the user disconnects it.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a session gets to stop at node shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A request for a session this node does not (or no longer) hold the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

#[derive(ractor_cluster::RactorMessage)]
pub enum SupervisorMsg {
    /// Runs the session of `user_id` unless it already runs (or waits for a restart),
    /// claiming its lease first; refused when another node holds it.
    Start {
        user_id: Uuid,
        session_id: Uuid,
        reply: RpcReplyPort<Result<(), NotOwner>>,
    },
    /// Renew, enforce and rebalance this node's leases (see [`placement`]).
    Tick,
    /// A backoff delay ran out.
    Restart { user_id: Uuid, generation: u64 },
    /// New rows in the user's outbox.
    NotifyQueued(Uuid),
    /// Log the user's device out, forget it, stop the session.
    Disconnect {
        user_id: Uuid,
        session_id: Uuid,
        reply: RpcReplyPort<Result<Result<(), String>, NotOwner>>,
    },
    /// Stop the user's session without logging out (its device stays paired); answers
    /// whether one was running or waiting for a restart.
    Stop {
        user_id: Uuid,
        reason: String,
        reply: RpcReplyPort<bool>,
    },
    /// The session of this user reached `connected`.
    SessionConnected(Uuid),
    /// Hand every session to the other nodes (stop without logout, give the leases
    /// back), claim none from now on, and answer when they are down.
    Shutdown(RpcReplyPort<()>),
    /// Asks the user's running session for a link code for `phone`.
    PairCode {
        user_id: Uuid,
        phone: String,
        reply: crate::session::pair_code::PairCodeReply,
    },
    /// Panics the user's session actor; answers whether one was running.
    #[doc(hidden)]
    CrashForTest {
        user_id: Uuid,
        reply: RpcReplyPort<bool>,
    },
}

/// Everything the supervisor needs to start sessions.
pub struct SupervisorArgs {
    pub pool: PgPool,
    /// A few connections of the supervisor's own, for lease claims, renewals, releases
    /// and the heartbeat: queued behind session queries on a busy node, a renewal would
    /// miss its deadline and the node would stop sessions that were doing fine.
    pub lease_pool: PgPool,
    pub events: EventHub,
    pub config: Arc<SessionConfig>,
    pub node: NodeIdentity,
}

pub struct SessionSupervisor;

/// One user's place in the supervisor, across restarts of its actor.
struct Slot {
    session_id: Uuid,
    /// The lease the session runs under, for as long as this slot exists.
    fence: Fence,
    child: Option<ActorRef<WaSessionMsg>>,
    generation: u64,
    /// Crashes since the session last proved stable.
    crashes: u32,
    connected_at: Option<Instant>,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    slots: HashMap<Uuid, Slot>,
    by_actor: HashMap<ActorId, Uuid>,
    next_generation: u64,
    placement: placement::Placement,
}

impl SupervisorState {
    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>, user_id: Uuid) {
        let Some(slot) = self.slots.get(&user_id) else {
            return;
        };
        if !slot.fence.is_valid() {
            return;
        }
        let supervisor = myself.clone();
        let args = WaSessionArgs {
            user_id,
            session_id: slot.session_id,
            pool: self.args.pool.clone(),
            events: self.args.events.clone(),
            config: self.args.config.clone(),
            fence: slot.fence.clone(),
            on_connected: Arc::new(move || {
                let _ = supervisor.cast(SupervisorMsg::SessionConnected(user_id));
            }),
        };
        match Actor::spawn_linked(None, WaSession, args, myself.get_cell()).await {
            Ok((child, _join)) => {
                self.by_actor.insert(child.get_id(), user_id);
                if let Some(slot) = self.slots.get_mut(&user_id) {
                    slot.child = Some(child);
                }
            }
            Err(error) => {
                let reason = format!("session failed to start: {error}");
                self.crashed(myself, user_id, reason).await;
            }
        }
    }

    /// The session of `user_id` died unexpectedly: restart it later, or give up.
    async fn crashed(&mut self, myself: &ActorRef<SupervisorMsg>, user_id: Uuid, reason: String) {
        let budget = self.args.config.restart_budget;
        let Some(slot) = self.slots.get_mut(&user_id) else {
            return;
        };
        slot.child = None;
        if slot
            .connected_at
            .take()
            .is_some_and(|since| since.elapsed() >= STABLE_AFTER)
        {
            slot.crashes = 0;
        }
        slot.crashes += 1;
        tracing::warn!(%user_id, crashes = slot.crashes, %reason, "WhatsApp session crashed");
        if slot.crashes > budget {
            let fence = slot.fence.clone();
            self.slots.remove(&user_id);
            let error = format!("gave up after {budget} restarts; last error: {reason}");
            let failed = Transition::Stopped {
                state: SessionState::Failed,
                reason: &error,
                forget_phone: false,
            };
            if let Err(db) = self.transition(&fence, user_id, failed).await {
                tracing::error!(%user_id, %db, "cannot record a failed session");
            }
            self.give_back(&fence).await;
            return;
        }
        let delay = backoff::restart_delay(
            slot.crashes,
            self.args.config.restart_base,
            self.args.config.restart_max,
        );
        let generation = slot.generation;
        let fence = slot.fence.clone();
        let restarting = Transition::Restarting { error: &reason };
        if let Err(db) = self.transition(&fence, user_id, restarting).await {
            tracing::error!(%user_id, %db, "cannot record a session restart");
        }
        myself.send_after(delay, move || SupervisorMsg::Restart {
            user_id,
            generation,
        });
    }

    fn child_of(&self, user_id: Uuid) -> Option<&ActorRef<WaSessionMsg>> {
        self.slots
            .get(&user_id)
            .and_then(|slot| slot.child.as_ref())
    }

    /// Forgets the slot of `user_id`; its actor's exit is then nobody's concern. Returns
    /// the slot's lease (still held: give it back once the session is down) and actor.
    fn release(&mut self, user_id: Uuid) -> Option<(Fence, Option<ActorRef<WaSessionMsg>>)> {
        let slot = self.slots.remove(&user_id)?;
        if let Some(child) = &slot.child {
            self.by_actor.remove(&child.get_id());
        }
        Some((slot.fence, slot.child))
    }

    /// Records a state change of a session this node holds the lease of, and announces it.
    async fn transition(
        &self,
        fence: &Fence,
        user_id: Uuid,
        change: Transition<'_>,
    ) -> Result<(), SessionError> {
        sessions::transition(&self.args.pool, fence, &self.args.events, user_id, change).await
    }

    /// Gives a lease back to the cluster: any node may claim the session now.
    async fn give_back(&self, fence: &Fence) {
        if let Err(error) = lease::release(&self.args.lease_pool, fence).await {
            // It expires by itself; until then nobody else can run the session.
            tracing::warn!(session_id = %fence.session_id(), %error, "cannot release a lease");
        }
    }

    /// Starts supervising the session of `user_id` under `fence` and spawns it.
    async fn adopt(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        user_id: Uuid,
        session_id: Uuid,
        fence: Fence,
    ) {
        self.next_generation += 1;
        self.slots.insert(
            user_id,
            Slot {
                session_id,
                fence,
                child: None,
                generation: self.next_generation,
                crashes: 0,
                connected_at: None,
            },
        );
        self.spawn(myself, user_id).await;
    }

    /// Stops the session of `user_id` without logging out and gives its lease back:
    /// another node takes it over. While the lease is still ours the session is recorded
    /// as reconnecting; one whose lease is lost already is stopped without a write.
    async fn hand_over(&mut self, user_id: Uuid) {
        let Some((fence, child)) = self.release(user_id) else {
            return;
        };
        if let Some(child) = child {
            // Down before the lease goes: the next owner must never see this connection.
            let _ = child
                .stop_and_wait(Some(ENDED.to_owned()), Some(STOP_TIMEOUT))
                .await;
        }
        if fence.is_valid() {
            let moving = Transition::Stopped {
                state: SessionState::Connecting,
                reason: "moving to another node",
                forget_phone: false,
            };
            if let Err(error) = self.transition(&fence, user_id, moving).await {
                tracing::warn!(%user_id, %error, "cannot record a handover");
            }
            self.give_back(&fence).await;
        }
    }

    fn user_of(&mut self, cell: &ActorCell) -> Option<Uuid> {
        self.by_actor.remove(&cell.get_id())
    }
}

impl Actor for SessionSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let placement = placement::Placement::new(&args.config);
        Ok(SupervisorState {
            args,
            slots: HashMap::new(),
            by_actor: HashMap::new(),
            next_generation: 0,
            placement,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Detached: the timer lives as long as the supervisor.
        drop(myself.send_interval(state.placement.tick_every(), || SupervisorMsg::Tick));
        let _ = myself.cast(SupervisorMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Start {
                user_id,
                session_id,
                reply,
            } => {
                let started = start(state, &myself, user_id, session_id).await;
                let _ = reply.send(started);
            }
            SupervisorMsg::Tick => placement::tick(state, &myself).await,
            SupervisorMsg::Restart {
                user_id,
                generation,
            } => {
                let due = state.slots.get(&user_id).is_some_and(|slot| {
                    slot.generation == generation && slot.child.is_none() && slot.fence.is_valid()
                });
                if due {
                    state.spawn(&myself, user_id).await;
                }
            }
            SupervisorMsg::NotifyQueued(user_id) => {
                if let Some(child) = state.child_of(user_id) {
                    let _ = child.cast(WaSessionMsg::Drain);
                }
            }
            SupervisorMsg::SessionConnected(user_id) => {
                if let Some(slot) = state.slots.get_mut(&user_id) {
                    slot.connected_at = Some(Instant::now());
                }
            }
            SupervisorMsg::Disconnect {
                user_id,
                session_id,
                reply,
            } => {
                let result = disconnect(state, user_id, session_id).await;
                let _ = reply.send(result);
            }
            SupervisorMsg::Stop {
                user_id,
                reason,
                reply,
            } => {
                let stopped = stop_one(state, user_id, &reason).await;
                let _ = reply.send(stopped);
            }
            SupervisorMsg::Shutdown(reply) => {
                state.placement.shut_down();
                let users: Vec<Uuid> = state.slots.keys().copied().collect();
                for user_id in users {
                    state.hand_over(user_id).await;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::PairCode {
                user_id,
                phone,
                reply,
            } => match state.child_of(user_id) {
                // A session that stopped meanwhile drops the port: the caller hears so.
                Some(child) => {
                    let _ = child.cast(WaSessionMsg::PairCode { phone, reply });
                }
                None => {
                    let _ = reply.send(Err(crate::error::PairCodeRefusal::NotRunning));
                }
            },
            SupervisorMsg::CrashForTest { user_id, reply } => {
                let child = state.child_of(user_id).cloned();
                if let Some(child) = &child {
                    let _ = child.cast(WaSessionMsg::CrashForTest);
                }
                let _ = reply.send(child.is_some());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden on purpose: ractor's default stops the supervisor when a child exits.
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(user_id) = state.user_of(&cell) {
                    state.crashed(&myself, user_id, error.to_string()).await;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(user_id) = state.user_of(&cell) else {
                    return Ok(());
                };
                if reason.as_deref() == Some(ENDED) {
                    // Ended on purpose (logout, replaced, QR not scanned): it stays down.
                    if let Some((fence, _)) = state.release(user_id) {
                        state.give_back(&fence).await;
                    }
                } else if reason.as_deref() == Some(LEASE_LOST) {
                    // Another node runs it (or will): nothing to restart, nothing to give back.
                    state.release(user_id);
                } else {
                    let reason = reason.unwrap_or_else(|| "stopped".to_owned());
                    state
                        .crashed(&myself, user_id, format!("session actor {reason}"))
                        .await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs the session of `user_id` on this node unless it already does, claiming its lease.
async fn start(
    state: &mut SupervisorState,
    myself: &ActorRef<SupervisorMsg>,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<(), NotOwner> {
    if state.slots.contains_key(&user_id) {
        return Ok(());
    }
    if !state.placement.claims_allowed() {
        return Err(NotOwner);
    }
    let fence = claim(state, session_id).await.ok_or(NotOwner)?;
    state.adopt(myself, user_id, session_id, fence).await;
    Ok(())
}

/// The lease of `session_id` for this node, if it is free.
async fn claim(state: &SupervisorState, session_id: Uuid) -> Option<Fence> {
    let claimed = lease::claim(
        &state.args.pool,
        session_id,
        state.args.node.incarnation,
        state.placement.timing(),
    )
    .await;
    match claimed {
        Ok(fence) => fence,
        Err(error) => {
            tracing::warn!(%session_id, %error, "cannot claim a session lease");
            None
        }
    }
}

/// Stops one user's session without logging out, recording it `disconnected` for `reason`.
/// Returns whether it was running (or waiting for a restart).
async fn stop_one(state: &mut SupervisorState, user_id: Uuid, reason: &str) -> bool {
    let Some((fence, child)) = state.release(user_id) else {
        return false;
    };
    if let Some(child) = child {
        let _ = child
            .stop_and_wait(Some(ENDED.to_owned()), Some(STOP_TIMEOUT))
            .await;
    }
    let stopped = Transition::Stopped {
        state: SessionState::Disconnected,
        reason,
        forget_phone: false,
    };
    if let Err(db) = state.transition(&fence, user_id, stopped).await {
        tracing::error!(%user_id, %db, "cannot record a stopped session");
    }
    state.give_back(&fence).await;
    true
}

/// The user's disconnect: a running session logs its device out; otherwise the device
/// state is only forgotten (there is no connection to log out with), under a lease
/// claimed for that.
async fn disconnect(
    state: &mut SupervisorState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Result<(), String>, NotOwner> {
    if let Some((fence, child)) = state.release(user_id) {
        if let Some(child) = child {
            let logged_out = child.call(WaSessionMsg::Logout, Some(LOGOUT_TIMEOUT)).await;
            if matches!(logged_out, Ok(ractor::rpc::CallResult::Success(()))) {
                state.give_back(&fence).await;
                return Ok(Ok(()));
            }
            tracing::warn!(%user_id, "session did not log out in time; stopping it");
            child.kill();
        }
        let forgotten = forget(state, user_id, &fence).await;
        state.give_back(&fence).await;
        return Ok(forgotten);
    }
    let fence = claim(state, session_id).await.ok_or(NotOwner)?;
    let forgotten = forget(state, user_id, &fence).await;
    state.give_back(&fence).await;
    Ok(forgotten)
}

/// Deletes the device state of a session that is not running, and records it `idle`.
async fn forget(state: &SupervisorState, user_id: Uuid, fence: &Fence) -> Result<(), String> {
    PgStore::new(state.args.pool.clone(), fence.clone())
        .delete_all()
        .await
        .map_err(|error| error.to_string())?;
    let forgotten = Transition::Stopped {
        state: SessionState::Idle,
        reason: "disconnected by the user",
        forget_phone: true,
    };
    state
        .transition(fence, user_id, forgotten)
        .await
        .map_err(|error| error.to_string())
}
