//! How sessions connect, how crashed sessions are restarted and how long leases live.

use std::time::Duration;

use crate::lease::LeaseTiming;
use crate::pacing::PacingSettings;

/// Settings shared by every session of a node.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Websocket URL of the WhatsApp server; `None` means the real WhatsApp.
    pub whatsapp_url: Option<String>,
    /// Delay before the first restart of a crashed session; doubles per consecutive crash.
    pub restart_base: Duration,
    /// Upper bound of the restart delay (before jitter).
    pub restart_max: Duration,
    /// Consecutive crashes tolerated; one more marks the session `failed`. A session that
    /// stayed connected for a while starts counting afresh.
    pub restart_budget: u32,
    /// How long leases live, and so how soon the sessions of a node that died run
    /// elsewhere.
    pub lease: LeaseTiming,
    /// How often the node renews, claims and hands over sessions.
    pub placement_tick: Duration,
    /// Sessions per second the node claims and starts, or hands over; a failover or a
    /// restart with thousands of sessions spreads its logins at this pace.
    pub resume_rate: u32,
    /// Pacing of every number whose account has no settings of its own (checked).
    pub pacing: PacingSettings,
}

impl SessionConfig {
    /// Sessions moved (claimed, or handed over) per placement tick: `resume_rate` spread over
    /// the ticks of a second, at least one.
    pub fn moves_per_tick(&self) -> usize {
        let per_tick = f64::from(self.resume_rate) * self.placement_tick.as_secs_f64();
        (per_tick.ceil() as usize).max(1)
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            whatsapp_url: None,
            restart_base: Duration::from_millis(500),
            restart_max: Duration::from_secs(60),
            restart_budget: 5,
            lease: LeaseTiming::default(),
            placement_tick: Duration::from_secs(1),
            resume_rate: 100,
            pacing: PacingSettings::default(),
        }
    }
}
