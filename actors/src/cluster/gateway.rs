//! The gateway: one remotable actor per node, the only one other nodes talk to (remote
//! actor shims stay one per node instead of one per session). It answers requests for
//! the sessions this node owns, delivers other nodes' events to the local hub, and
//! answers pings (the failure detector's). [`Gateways`] is the calling side.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, pg};
use uuid::Uuid;

use super::wire::{self, Call, Outcome, WIRE_VERSION};
use crate::events::{EventHub, SessionEvent};
use crate::manager::LocalSessions;

/// The pg scope of botwave's groups.
const SCOPE: &str = "botwave";
/// The group every gateway joins (event fan-out).
const ALL_GATEWAYS: &str = "gateways";

/// The group of the gateway of node incarnation `incarnation`.
fn group_of(incarnation: Uuid) -> String {
    format!("gw:{incarnation}")
}

#[derive(ractor_cluster::RactorClusterMessage)]
pub enum GatewayMsg {
    /// A request for a session this node should own.
    #[rpc]
    Call(Call, RpcReplyPort<Outcome>),
    /// An event published on another node.
    Publish(wire::Event),
    /// Liveness, for the failure detector.
    #[rpc]
    Ping(RpcReplyPort<u64>),
}

pub struct Gateway;

pub struct GatewayArgs {
    pub incarnation: Uuid,
    pub local: LocalSessions,
    pub events: EventHub,
}

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayArgs;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cell = myself.get_cell();
        pg::join_scoped(SCOPE.into(), group_of(args.incarnation), vec![cell.clone()]);
        pg::join_scoped(SCOPE.into(), ALL_GATEWAYS.into(), vec![cell]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            GatewayMsg::Call(call, reply) => {
                // Off the mailbox: a logout may take seconds, pings must not wait for it.
                let local = state.local.clone();
                tokio::spawn(async move {
                    let outcome = if call.version == WIRE_VERSION {
                        local.run(call.user_id, call.session_id, &call.op).await
                    } else {
                        Outcome::Unreadable
                    };
                    let _ = reply.send(outcome);
                });
            }
            GatewayMsg::Publish(wire::Event {
                version: WIRE_VERSION,
                event: Some(event),
            }) => state.events.deliver_from_peer(event),
            GatewayMsg::Publish(_) => tracing::debug!("dropped an event this node cannot read"),
            GatewayMsg::Ping(reply) => {
                let _ = reply.send(WIRE_VERSION.into());
            }
        }
        Ok(())
    }
}

/// Finding and calling the other nodes' gateways. pg is replicated over the links, so
/// what it lists is what this node can reach right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gateways;

/// Why a request did not reach an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// No link to that node (down, or not connected yet).
    NoLink,
    /// Sent, but no answer in time: whether it acted is unknown.
    NoAnswer,
}

impl Gateways {
    pub fn of(&self, incarnation: Uuid) -> Option<ActorRef<GatewayMsg>> {
        pg::get_scoped_members(&SCOPE.to_owned(), &group_of(incarnation))
            .into_iter()
            .next()
            .map(ActorRef::from)
    }

    /// Asks the node `owner` to do `call`, waiting up to `timeout`.
    pub async fn call(
        &self,
        owner: Uuid,
        call: Call,
        timeout: Duration,
    ) -> Result<Outcome, Unreachable> {
        let gateway = self.of(owner).ok_or(Unreachable::NoLink)?;
        match gateway
            .call(|reply| GatewayMsg::Call(call, reply), Some(timeout))
            .await
        {
            Ok(CallResult::Success(outcome)) => Ok(outcome),
            // A timeout and a link that dropped mid-call look alike: unknown outcome.
            Ok(CallResult::Timeout | CallResult::SenderError) | Err(_) => {
                Err(Unreachable::NoAnswer)
            }
        }
    }

    /// Answers whether the gateway of `owner` answers a ping within `timeout`.
    pub async fn ping(&self, owner: Uuid, timeout: Duration) -> bool {
        let Some(gateway) = self.of(owner) else {
            return false;
        };
        matches!(
            gateway.call(GatewayMsg::Ping, Some(timeout)).await,
            Ok(CallResult::Success(_))
        )
    }

    /// Delivers `event` to every other node's hub, best effort: a node that misses it
    /// (link down) shows the state from the database when its websockets reconnect.
    pub fn broadcast(&self, event: &SessionEvent) {
        for cell in pg::get_scoped_members(&SCOPE.to_owned(), &ALL_GATEWAYS.to_owned()) {
            if cell.get_id().is_local() {
                continue;
            }
            let gateway: ActorRef<GatewayMsg> = cell.into();
            let _ = gateway.cast(GatewayMsg::Publish(wire::Event {
                version: WIRE_VERSION,
                event: Some(event.clone()),
            }));
        }
    }
}

/// Spawns this node's gateway and the task that forwards its hub's events to the others.
pub async fn start(args: GatewayArgs) -> Result<ActorRef<GatewayMsg>, ractor::SpawnErr> {
    let events = args.events.clone();
    let (gateway, _join) = Actor::spawn(None, Gateway, args).await?;
    let (sink, mut outgoing) = tokio::sync::mpsc::unbounded_channel();
    events.forward_to_cluster(sink);
    tokio::spawn(async move {
        while let Some(event) = outgoing.recv().await {
            Gateways.broadcast(&event);
        }
    });
    Ok(gateway)
}
