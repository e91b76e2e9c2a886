//! `SessionManager`: the handle the HTTP layer holds. Cheap to clone; every clone talks
//! to the same [`SessionSupervisor`].

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::PgPool;
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::events::EventHub;
use crate::session::pair_code::PairCode;
use crate::sessions::{self, SessionStatus};
use crate::supervisor::{SessionSupervisor, SupervisorArgs, SupervisorMsg};

/// Longest wait for the supervisor to answer a request.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct SessionManager {
    supervisor: ActorRef<SupervisorMsg>,
    pool: PgPool,
}

impl SessionManager {
    /// Starts the supervisor and resumes every session that has a paired device.
    pub async fn start(
        pool: PgPool,
        events: EventHub,
        config: SessionConfig,
    ) -> Result<Self, SessionError> {
        let args = SupervisorArgs {
            pool: pool.clone(),
            events,
            config: Arc::new(config),
        };
        let (supervisor, _join) = Actor::spawn(None, SessionSupervisor, args)
            .await
            .map_err(|error| SessionError::Actor(error.to_string()))?;
        let manager = Self { supervisor, pool };
        for (user_id, session_id) in sessions::paired_users(&manager.pool).await? {
            manager.start_session(user_id, session_id).await?;
        }
        Ok(manager)
    }

    /// Starts the user's session if it is not running, and returns its status. The QR
    /// code or the connection follows as events.
    pub async fn initialize(&self, user_id: Uuid) -> Result<SessionStatus, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        self.start_session(user_id, session_id).await?;
        sessions::status(&self.pool, user_id)
            .await?
            .ok_or(SessionError::UnknownUser)
    }

    /// Starts the user's session if it is not running and asks it for a link code for
    /// `phone` (digits in international form), to type on that phone instead of
    /// scanning the QR code. The connection follows as events, as after a scan.
    pub async fn pair_code(&self, user_id: Uuid, phone: &str) -> Result<PairCode, SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        self.start_session(user_id, session_id).await?;
        let phone = phone.to_owned();
        let answer = self
            .call(|reply| SupervisorMsg::PairCode {
                user_id,
                phone,
                reply,
            })
            .await?;
        Ok(answer?)
    }

    /// Logs the user's device out of WhatsApp, forgets it and stops the session.
    pub async fn disconnect(&self, user_id: Uuid) -> Result<(), SessionError> {
        let session_id = sessions::ensure(&self.pool, user_id).await?;
        let result = self
            .call(|reply| SupervisorMsg::Disconnect {
                user_id,
                session_id,
                reply,
            })
            .await?;
        result.map_err(SessionError::Store)
    }

    /// Stops the user's session without logging its device out (it stays paired and
    /// [`initialize`](Self::initialize) resumes it without a QR code). Returns whether a
    /// session was running.
    pub async fn stop(&self, user_id: Uuid, reason: &str) -> Result<bool, SessionError> {
        let reason = reason.to_owned();
        self.call(|reply| SupervisorMsg::Stop {
            user_id,
            reason,
            reply,
        })
        .await
    }

    /// Tells the user's session that its outbox has new rows. A session that is not
    /// connected sends them once it is.
    pub fn notify_queued(&self, user_id: Uuid) {
        let _ = self.supervisor.cast(SupervisorMsg::NotifyQueued(user_id));
    }

    /// Stops every session without logging out, then the supervisor. For node shutdown
    /// and tests that restart a node.
    pub async fn shutdown(&self) {
        let _ = self.call(SupervisorMsg::Shutdown).await;
        let _ = self
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
    }

    /// Panics the user's session actor, to exercise supervision. Returns whether a
    /// session was running.
    #[doc(hidden)]
    pub async fn crash_for_test(&self, user_id: Uuid) -> Result<bool, SessionError> {
        self.call(|reply| SupervisorMsg::CrashForTest { user_id, reply })
            .await
    }

    async fn start_session(&self, user_id: Uuid, session_id: Uuid) -> Result<(), SessionError> {
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
