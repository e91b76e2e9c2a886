//! Per-number pacing (anti-ban): a linked number sends with a least gap between messages
//! (plus random jitter), at most so many per minute, hour and local day, not during quiet
//! hours, with lower daily caps in its first days ([`policy`]); WhatsApp's own
//! rate-overlimit answers make it wait and slow down. Pacing only delays: a held message
//! stays queued with `not_before` saying when it is due. The session's sender plans with a
//! [`Pacer`]; its memory is rebuilt from the `messages` table whenever the session starts on
//! a node, so the limits hold wherever the session runs ([`store`]).

pub mod clock;
pub mod pacer;
pub mod policy;
pub mod store;

pub use pacer::Pacer;
pub use policy::{PacingPolicy, PacingSettings, PacingSettingsError, QuietHoursSettings};
