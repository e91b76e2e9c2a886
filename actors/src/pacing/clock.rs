//! The clock pacing plans by. It is the system clock; builds with the `simulator` feature
//! (tests and the demo, never a release build, and no route or setting reaches it) let a
//! test move one user's clock forward, so quiet hours or a daily cap can be shown to end
//! without waiting for them. Moving it wakes that user's outbox pipeline.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What time it is for `user_id`'s pacing.
pub fn now(user_id: Uuid) -> DateTime<Utc> {
    Utc::now() + shift::of(user_id)
}

/// Watches `user_id`'s clock for moves (there are none outside test builds).
pub fn watch(user_id: Uuid) -> ClockWatch {
    ClockWatch(shift::watch(user_id))
}

/// See [`watch`].
pub struct ClockWatch(shift::Watch);

impl ClockWatch {
    /// Resolves when the clock was moved since the last time this resolved (or since
    /// [`watch`]).
    pub async fn moved(&mut self) {
        self.0.moved().await
    }
}

#[cfg(feature = "simulator")]
mod shift {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};

    use tokio::sync::watch;
    use uuid::Uuid;

    /// Each shifted user's offset, and a channel that ticks when it changes.
    static SHIFTS: LazyLock<Mutex<HashMap<Uuid, watch::Sender<chrono::TimeDelta>>>> =
        LazyLock::new(Default::default);

    pub struct Watch(watch::Receiver<chrono::TimeDelta>);

    impl Watch {
        pub async fn moved(&mut self) {
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn watch(user_id: Uuid) -> Watch {
        Watch(
            SHIFTS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(user_id)
                .or_insert_with(|| watch::channel(chrono::TimeDelta::zero()).0)
                .subscribe(),
        )
    }

    pub fn of(user_id: Uuid) -> chrono::TimeDelta {
        SHIFTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user_id)
            .map(|shift| *shift.borrow())
            .unwrap_or_else(chrono::TimeDelta::zero)
    }

    /// Moves `user_id`'s pacing clock `by` further (tests only).
    pub fn advance(user_id: Uuid, by: chrono::TimeDelta) {
        let mut shifts = SHIFTS.lock().unwrap_or_else(PoisonError::into_inner);
        let shift = shifts
            .entry(user_id)
            .or_insert_with(|| watch::channel(chrono::TimeDelta::zero()).0);
        shift.send_modify(|offset| *offset += by);
    }
}

#[cfg(not(feature = "simulator"))]
mod shift {
    use uuid::Uuid;

    pub fn of(_user_id: Uuid) -> chrono::TimeDelta {
        chrono::TimeDelta::zero()
    }

    pub struct Watch;

    impl Watch {
        pub async fn moved(&mut self) {
            std::future::pending::<()>().await
        }
    }

    pub fn watch(_user_id: Uuid) -> Watch {
        Watch
    }
}

/// Moves `user_id`'s pacing clock `by` further: test builds only.
#[cfg(feature = "simulator")]
#[doc(hidden)]
pub fn advance_for_test(user_id: Uuid, by: chrono::TimeDelta) {
    shift::advance(user_id, by);
}
