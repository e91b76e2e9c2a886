//! A test-only crash point, compiled only with the `simulator` feature: never in a release
//! build, and no route, setting or variable reaches it. A test arms it for one user; that
//! user's outbox pipeline then stops dead the next time a batch has gone out, before its
//! outcome (`sent`) is recorded, as if the process had died at that instant. The test then
//! kills the session (or the node) and checks what the next run makes of what was left.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use tokio::sync::oneshot;
use uuid::Uuid;

/// Armed users, each with whom to tell once its pipeline stopped.
static ARMED: LazyLock<Mutex<HashMap<Uuid, oneshot::Sender<()>>>> = LazyLock::new(Default::default);

/// Arms the crash point for `user_id`, once: its outbox pipeline stops dead after its next
/// batch went out, before recording it. The answer resolves when it stopped there.
#[doc(hidden)]
pub fn stop_after_send(user_id: Uuid) -> oneshot::Receiver<()> {
    let (stopped, reached) = oneshot::channel();
    ARMED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(user_id, stopped);
    reached
}

/// Where the outbox pipeline has sent a batch and not yet recorded it: never returns if the
/// point is armed for `user_id` (the pipeline ends when its session does).
pub(crate) async fn after_send(user_id: Uuid) {
    let armed = ARMED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&user_id);
    if let Some(stopped) = armed {
        tracing::warn!(%user_id, "outbox pipeline stopped dead at the test crash point");
        let _ = stopped.send(());
        std::future::pending::<()>().await;
    }
}
