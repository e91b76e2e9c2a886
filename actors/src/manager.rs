//! `SessionManager`: the handle the HTTP layer holds. Cheap to clone.
//!
//! Every request for a session can arrive at any node. The manager asks the lease table
//! who owns the session: this node's [`SessionSupervisor`] handles it when this node
//! does (or nobody does: then this node claims it), the owner's gateway otherwise
//! (see [`crate::cluster::gateway`]). A lease that moves in between makes the owner
//! answer "not owner", and the request is routed again.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::PgPool;
use crate::cluster::NodeIdentity;
use crate::cluster::gateway::{self, GatewayArgs, Gateways, Unreachable};
use crate::cluster::wire::{Call, Op, Outcome, WIRE_VERSION};
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::events::EventHub;
use crate::lease;
use crate::session::pair_code::PairCode;
use crate::sessions::{self, SessionStatus};
use crate::supervisor::{NotOwner, SessionSupervisor, SupervisorArgs, SupervisorMsg};

/// Longest wait for the local supervisor to answer a request.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for another node: a link code or a logout takes seconds, the rest less.
const REMOTE_SLOW: Duration = Duration::from_secs(45);
const REMOTE_QUICK: Duration = Duration::from_secs(10);

/// How often a request follows a lease that keeps moving before giving up.
const ROUTE_ATTEMPTS: usize = 3;

#[derive(Clone)]
pub struct SessionManager {
    local: LocalSessions,
    pool: PgPool,
    node: NodeIdentity,
}

impl SessionManager {
    /// Starts the supervisor and this node's gateway. Sessions are not resumed here:
    /// the supervisor's first tick claims those that should run and nobody runs. `lease_pool`
    /// is the supervisor's own (see [`SupervisorArgs::lease_pool`]).
    pub async fn start(
        pool: PgPool,
        lease_pool: PgPool,
        events: EventHub,
        config: SessionConfig,
        node: NodeIdentity,
    ) -> Result<Self, SessionError> {
        let args = SupervisorArgs {
            pool: pool.clone(),
            lease_pool,
            events: events.clone(),
            config: Arc::new(config),
            node: node.clone(),
        };
        let (supervisor, _join) = Actor::spawn(None, SessionSupervisor, args)
            .await
            .map_err(|error| SessionError::Actor(error.to_string()))?;
        let local = LocalSessions {
            supervisor,
            pool: pool.clone(),
        };
        gateway::start(GatewayArgs {
            incarnation: node.incarnation,
            local: local.clone(),
            events,
        })
        .await
        .map_err(|error| SessionError::Actor(error.to_string()))?;
        Ok(Self { local, pool, node })
    }

    /// Who this node is.
    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// Starts the user's session if it is not running, and returns its status. The QR
    /// code or the connection follows as events.
    pub async fn initialize(&self, user_id: Uuid) -> Result<SessionStatus, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        sessions::set_wanted(&self.pool, user_id, true).await?;
        self.on_owner(user_id, session_id, Op::Start).await?;
        sessions::status(&self.pool, user_id)
            .await?
            .ok_or(SessionError::UnknownUser)
    }

    /// Starts the user's session if it is not running and asks it for a link code for
    /// `phone` (digits in international form), to type on that phone instead of
    /// scanning the QR code. The connection follows as events, as after a scan.
    pub async fn pair_code(&self, user_id: Uuid, phone: &str) -> Result<PairCode, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        sessions::set_wanted(&self.pool, user_id, true).await?;
        let op = Op::PairCode {
            phone: phone.to_owned(),
        };
        match self.on_owner(user_id, session_id, op).await? {
            Outcome::PairCode { code } => Ok(code),
            Outcome::PairCodeRefused { refusal } => Err(SessionError::PairCode(refusal)),
            other => Err(unexpected(other)),
        }
    }

    /// Logs the user's device out of WhatsApp, forgets it and stops the session.
    pub async fn disconnect(&self, user_id: Uuid) -> Result<(), SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        sessions::set_wanted(&self.pool, user_id, false).await?;
        match self.on_owner(user_id, session_id, Op::Disconnect).await? {
            Outcome::Done => Ok(()),
            Outcome::Failed { reason } => Err(SessionError::Store(reason)),
            other => Err(unexpected(other)),
        }
    }

    /// Stops the user's session without logging its device out (it stays paired and
    /// [`initialize`](Self::initialize) resumes it without a QR code). Returns whether a
    /// session was running.
    pub async fn stop(&self, user_id: Uuid, reason: &str) -> Result<bool, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        sessions::set_wanted(&self.pool, user_id, false).await?;
        let op = Op::Stop {
            reason: reason.to_owned(),
        };
        ran(self.on_owner(user_id, session_id, op).await?)
    }

    /// Tells the user's session that its outbox has new rows. A session that is not
    /// connected sends them once it is; one whose notice is lost (a link dropped)
    /// finds them in its owner's periodic sweep.
    pub fn notify_queued(&self, user_id: Uuid) {
        let manager = self.clone();
        tokio::spawn(async move {
            let Ok(session_id) = sessions::ensure(&manager.pool, user_id).await else {
                return;
            };
            if let Err(error) = manager.on_owner(user_id, session_id, Op::Queued).await {
                tracing::debug!(%user_id, %error, "could not tell the session about new messages");
            }
        });
    }

    /// Hands every session of this node to the others (no logout) and stops claiming
    /// new ones. For node shutdown and tests that restart a node.
    pub async fn shutdown(&self) {
        let _ = self.local.call(SupervisorMsg::Shutdown).await;
        let _ = self
            .local
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
    }

    /// Panics the user's session actor, to exercise supervision. Returns whether a
    /// session was running.
    #[doc(hidden)]
    pub async fn crash_for_test(&self, user_id: Uuid) -> Result<bool, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        ran(self.on_owner(user_id, session_id, Op::CrashForTest).await?)
    }

    /// Runs `op` where the session lives.
    async fn on_owner(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        op: Op,
    ) -> Result<Outcome, SessionError> {
        for _ in 0..ROUTE_ATTEMPTS {
            let outcome = match lease::owner_of(&self.pool, session_id).await? {
                Some(owner) if owner != self.node.incarnation => {
                    let call = Call {
                        version: WIRE_VERSION,
                        user_id,
                        session_id,
                        op: op.clone(),
                    };
                    let timeout = match op {
                        Op::PairCode { .. } | Op::Disconnect => REMOTE_SLOW,
                        _ => REMOTE_QUICK,
                    };
                    match Gateways.call(owner, call, timeout).await {
                        Ok(outcome) => outcome,
                        Err(Unreachable::NoLink | Unreachable::NoAnswer) => {
                            return Err(SessionError::OwnerUnreachable);
                        }
                    }
                }
                _ => self.local.run(user_id, session_id, &op).await,
            };
            match outcome {
                Outcome::NotOwner => continue,
                Outcome::Unreadable => {
                    return Err(SessionError::Actor(
                        "the node owning the session runs another botwave version".into(),
                    ));
                }
                other => return Ok(other),
            }
        }
        Err(SessionError::OwnerUnreachable)
    }
}

fn ran(outcome: Outcome) -> Result<bool, SessionError> {
    match outcome {
        Outcome::Ran { running } => Ok(running),
        Outcome::Done => Ok(true),
        other => Err(unexpected(other)),
    }
}

fn unexpected(outcome: Outcome) -> SessionError {
    SessionError::Actor(format!(
        "unexpected answer from the session owner: {outcome:?}"
    ))
}

/// This node's sessions: requests handled by the local supervisor, whether they came
/// from this node's HTTP layer or another node's gateway.
#[derive(Clone)]
pub struct LocalSessions {
    supervisor: ActorRef<SupervisorMsg>,
    pool: PgPool,
}

impl LocalSessions {
    /// Does `op` for the session of `user_id` here, or answers [`Outcome::NotOwner`]
    /// when another node holds its lease. Errors travel as outcomes: they may have to
    /// cross the wire.
    pub async fn run(&self, user_id: Uuid, session_id: Uuid, op: &Op) -> Outcome {
        match self.try_run(user_id, session_id, op).await {
            Ok(outcome) => outcome,
            Err(SessionError::LeaseLost) => Outcome::NotOwner,
            Err(error) => Outcome::Failed {
                reason: error.to_string(),
            },
        }
    }

    async fn try_run(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        op: &Op,
    ) -> Result<Outcome, SessionError> {
        let not_owner = |_: NotOwner| SessionError::LeaseLost;
        match op {
            Op::Start => {
                self.start(user_id, session_id).await?.map_err(not_owner)?;
                Ok(Outcome::Done)
            }
            Op::PairCode { phone } => {
                self.start(user_id, session_id).await?.map_err(not_owner)?;
                let phone = phone.clone();
                let answer = self
                    .call(|reply| SupervisorMsg::PairCode {
                        user_id,
                        phone,
                        reply,
                    })
                    .await?;
                Ok(match answer {
                    Ok(code) => Outcome::PairCode { code },
                    Err(refusal) => Outcome::PairCodeRefused { refusal },
                })
            }
            Op::Disconnect => {
                let result = self
                    .call(|reply| SupervisorMsg::Disconnect {
                        user_id,
                        session_id,
                        reply,
                    })
                    .await?
                    .map_err(not_owner)?;
                Ok(match result {
                    Ok(()) => Outcome::Done,
                    Err(reason) => Outcome::Failed { reason },
                })
            }
            Op::Stop { reason } => {
                let reason = reason.clone();
                let running = self
                    .call(|reply| SupervisorMsg::Stop {
                        user_id,
                        reason,
                        reply,
                    })
                    .await?;
                Ok(Outcome::Ran { running })
            }
            Op::Queued => {
                let _ = self.supervisor.cast(SupervisorMsg::NotifyQueued(user_id));
                Ok(Outcome::Done)
            }
            Op::CrashForTest => {
                let running = self
                    .call(|reply| SupervisorMsg::CrashForTest { user_id, reply })
                    .await?;
                Ok(Outcome::Ran { running })
            }
        }
    }

    /// Runs the session here, unless another node holds its lease. Checks the account
    /// again: the request may have crossed the cluster while the user was disabled.
    async fn start(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Result<(), NotOwner>, SessionError> {
        if !sessions::user_enabled(&self.pool, user_id).await? {
            return Err(SessionError::UnknownUser);
        }
        self.call(|reply| SupervisorMsg::Start {
            user_id,
            session_id,
            reply,
        })
        .await
    }

    async fn call<T: Send + 'static>(
        &self,
        message: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, SessionError> {
        match self.supervisor.call(message, Some(CALL_TIMEOUT)).await {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(CallResult::Timeout) => Err(SessionError::Actor(
                "the session supervisor did not answer in time".into(),
            )),
            Ok(CallResult::SenderError) | Err(_) => Err(SessionError::SupervisorGone),
        }
    }
}
