//! This node's share of the cluster's sessions, kept by the supervisor's tick.
//!
//! Every tick: sessions whose lease ran out here are stopped (their clients were cut off
//! already, see [`crate::session`]); every `ttl / 4` all leases are renewed in one
//! statement together with the node's heartbeat; then the node claims sessions that
//! should run and have no live owner, up to its fair share (wanted sessions / live
//! nodes), or, holding more than that while another node holds less, hands the surplus
//! over: it stops them (socket closed) and only then gives their leases back, so no two
//! nodes ever run one device at once. A draining node hands over everything. Nodes only
//! ever move sessions through the lease table, so they need not agree on anything else.

use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;
use uuid::Uuid;

use super::{SupervisorMsg, SupervisorState};
use crate::cluster::nodes;
use crate::config::SessionConfig;
use crate::lease::{self, Fence, LeaseTiming};
use crate::session::WaSessionMsg;

/// How often connected sessions are checked for queued messages nobody told them about
/// (a notice lost with a cluster link).
const OUTBOX_SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct Placement {
    timing: LeaseTiming,
    tick_every: Duration,
    /// Sessions claimed or handed over per tick (the configured resume rate), so a restart or
    /// a failover spreads its logins.
    moves_per_tick: usize,
    next_renew: Instant,
    next_sweep: Instant,
    draining: bool,
    shutting_down: bool,
}

impl Placement {
    pub fn new(config: &SessionConfig) -> Self {
        let now = Instant::now();
        Self {
            timing: config.lease,
            tick_every: config.placement_tick,
            moves_per_tick: config.moves_per_tick(),
            next_renew: now,
            next_sweep: now + OUTBOX_SWEEP_EVERY,
            draining: false,
            shutting_down: false,
        }
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    pub fn tick_every(&self) -> Duration {
        self.tick_every
    }

    /// The node is stopping: it claims nothing from now on.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    /// Whether this node takes on sessions (it does unless draining or stopping).
    pub fn claims_allowed(&self) -> bool {
        !self.draining && !self.shutting_down
    }
}

pub async fn tick(state: &mut SupervisorState, myself: &ActorRef<SupervisorMsg>) {
    let lost: Vec<Uuid> = state
        .slots
        .iter()
        .filter(|(_, slot)| !slot.fence.is_valid())
        .map(|(user_id, _)| *user_id)
        .collect();
    for user_id in lost {
        tracing::warn!(%user_id, "lease not renewed in time; session stopped");
        state.hand_over(user_id).await;
    }

    let now = Instant::now();
    if now >= state.placement.next_renew {
        state.placement.next_renew = now + state.placement.timing.renew_every();
        renew(state).await;
    }
    if state.placement.shutting_down {
        return;
    }
    if let Err(error) = rebalance(state, myself).await {
        tracing::warn!(%error, "cannot place sessions");
    }
    if now >= state.placement.next_sweep {
        state.placement.next_sweep = now + OUTBOX_SWEEP_EVERY;
        sweep_outboxes(state).await;
    }
}

/// Renews every lease and the heartbeat, within one renewal period: a database that
/// does not answer must not hold the tick past the local deadlines.
async fn renew(state: &mut SupervisorState) {
    let held: Vec<Fence> = state
        .slots
        .values()
        .map(|slot| slot.fence.clone())
        .collect();
    let pool = state.args.lease_pool.clone();
    let node = state.args.node.incarnation;
    let timing = state.placement.timing;
    let work = async {
        let lost = lease::renew(&pool, node, &held, timing).await?;
        let draining = nodes::heartbeat(&pool, node).await?;
        Ok::<_, crate::SessionError>((lost, draining))
    };
    match tokio::time::timeout(timing.renew_every(), work).await {
        Ok(Ok((lost, draining))) => {
            if draining != state.placement.draining {
                tracing::info!(draining, "node drain state changed");
            }
            state.placement.draining = draining;
            for fence in lost {
                let user = state
                    .slots
                    .iter()
                    .find(|(_, slot)| slot.fence.session_id() == fence.session_id())
                    .map(|(user_id, _)| *user_id);
                if let Some(user_id) = user {
                    tracing::warn!(%user_id, "lease taken over by another node; session stopped");
                    state.hand_over(user_id).await;
                }
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot renew leases"),
        Err(_) => tracing::warn!("lease renewal timed out"),
    }
}

async fn rebalance(
    state: &mut SupervisorState,
    myself: &ActorRef<SupervisorMsg>,
) -> Result<(), crate::SessionError> {
    let mine = state.slots.len();
    let batch = state.placement.moves_per_tick;
    if state.placement.draining {
        hand_over_some(state, mine.min(batch)).await;
        return Ok(());
    }
    let load = nodes::load(&state.args.lease_pool, state.placement.timing.ttl).await?;
    let share = load.fair_share();
    if mine < share {
        let limit = (share - mine).min(batch) as i64;
        let claimed = lease::claim_orphans(
            &state.args.lease_pool,
            state.args.node.incarnation,
            limit,
            state.placement.timing,
        )
        .await?;
        for claimed in claimed {
            let session_id = claimed.fence.session_id();
            if state.slots.contains_key(&claimed.user_id) {
                continue;
            }
            tracing::info!(user_id = %claimed.user_id, "claimed a session nobody ran");
            state
                .adopt(myself, claimed.user_id, session_id, claimed.fence)
                .await;
        }
    } else if mine > share && load.least_loaded < share {
        hand_over_some(state, (mine - share).min(batch)).await;
    }
    Ok(())
}

/// Hands `count` sessions to the other nodes, connected ones first (a session showing a
/// QR code would lose it).
async fn hand_over_some(state: &mut SupervisorState, count: usize) {
    if count == 0 {
        return;
    }
    let mut users: Vec<(bool, Uuid)> = state
        .slots
        .iter()
        .map(|(user_id, slot)| (slot.connected_at.is_none(), *user_id))
        .collect();
    users.sort();
    for (_, user_id) in users.into_iter().take(count) {
        tracing::info!(%user_id, "handing a session over to another node");
        state.hand_over(user_id).await;
    }
}

/// Tells connected sessions about queued messages they may not have heard of.
async fn sweep_outboxes(state: &SupervisorState) {
    let users: Vec<Uuid> = state.slots.keys().copied().collect();
    if users.is_empty() {
        return;
    }
    match crate::outbox::users_with_waiting(&state.args.pool, &users).await {
        Ok(waiting) => {
            for user_id in waiting {
                if let Some(child) = state.child_of(user_id) {
                    let _ = child.cast(WaSessionMsg::Drain);
                }
            }
        }
        Err(error) => tracing::debug!(%error, "cannot sweep outboxes"),
    }
}
