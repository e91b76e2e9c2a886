//! What nodes send each other. Encoded as JSON (ractor_cluster carries the bytes), with
//! a version, so that a node meeting a message it cannot read answers so instead of
//! dropping it (ractor_cluster drops undecodable messages silently).

use ractor::BytesConvertable;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::PairCodeRefusal;
use crate::events::SessionEvent;
use crate::session::pair_code::PairCode;

/// Bumped on any change a node of the previous version could misread.
pub const WIRE_VERSION: u32 = 1;

/// What is asked of a session's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Run the session (it may already).
    Start,
    /// A link code for this phone number.
    PairCode { phone: String },
    /// Log the device out and forget it.
    Disconnect,
    /// Stop without logging out.
    Stop { reason: String },
    /// The outbox has new rows.
    Queued,
    /// Crash the session actor (tests of supervision).
    CrashForTest,
}

/// A request for the session of `user_id`, to the node that owns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub version: u32,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub op: Op,
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// Whether a session was running (for `Stop` and `CrashForTest`).
    Ran {
        running: bool,
    },
    PairCode {
        code: PairCode,
    },
    PairCodeRefused {
        refusal: PairCodeRefusal,
    },
    /// The disconnect did not complete.
    Failed {
        reason: String,
    },
    /// The node does not hold the session's lease (it moved meanwhile): ask again.
    NotOwner,
    /// The node could not read the request (another version).
    Unreadable,
}

/// An event published on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub version: u32,
    /// `None` when the event could not be read.
    pub event: Option<SessionEvent>,
}

macro_rules! json_wire {
    ($type:ty, $unreadable:expr) => {
        impl BytesConvertable for $type {
            fn into_bytes(self) -> Vec<u8> {
                // Serializing these plain data types cannot fail; an empty payload would
                // only decode as unreadable.
                serde_json::to_vec(&self).unwrap_or_default()
            }

            fn from_bytes(bytes: Vec<u8>) -> Self {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| $unreadable)
            }
        }
    };
}

json_wire!(
    Call,
    Call {
        version: 0,
        user_id: Uuid::nil(),
        session_id: Uuid::nil(),
        op: Op::Queued,
    }
);
json_wire!(Outcome, Outcome::Unreadable);
json_wire!(
    Event,
    Event {
        version: 0,
        event: None,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_outcomes_survive_the_wire() {
        let call = Call {
            version: WIRE_VERSION,
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            op: Op::PairCode {
                phone: "4915112345678".into(),
            },
        };
        let back = Call::from_bytes(call.clone().into_bytes());
        assert_eq!(back.user_id, call.user_id);
        assert!(matches!(back.op, Op::PairCode { phone } if phone == "4915112345678"));
        let refused = Outcome::PairCodeRefused {
            refusal: PairCodeRefusal::InProgress,
        };
        assert!(matches!(
            Outcome::from_bytes(refused.into_bytes()),
            Outcome::PairCodeRefused {
                refusal: PairCodeRefusal::InProgress
            }
        ));
    }

    #[test]
    fn garbage_decodes_as_unreadable_instead_of_panicking() {
        assert!(matches!(
            Outcome::from_bytes(b"{not json".to_vec()),
            Outcome::Unreadable
        ));
        assert_eq!(Call::from_bytes(vec![0xff]).version, 0);
        assert!(Event::from_bytes(Vec::new()).event.is_none());
    }
}
