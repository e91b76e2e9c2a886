//! Double connections: how often two connections of one companion device were logged
//! in at the same time, and for how long. WhatsApp replaces the older one at once, so
//! a client cluster that moves a session without closing the old socket first shows
//! up here (botwave's failover tests assert there were none).
//!
//! A connection counts as logged in from its `<success>` until its session ends: the
//! socket closed, or the server ended it with a terminal stanza such as the
//! `replaced` conflict (the socket may linger a moment for the client to read it, but
//! nothing it sends is served any more).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::state::{DeviceKey, Shared, lock};

/// Double connections of one device, or of all devices together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleConnections {
    /// Logins of a device while another connection of it was logged in.
    #[serde(rename = "double_connections")]
    pub count: u64,
    /// The longest stretch during which the device had two or more logged-in
    /// connections (one still going counts up to now).
    #[serde(rename = "longest_double_connection_ms")]
    pub longest_ms: u64,
}

/// Logged-in connections and double-connection records, by device.
#[derive(Default)]
pub struct DoubleConnectionTracker {
    devices: Mutex<HashMap<DeviceKey, DeviceLogins>>,
}

#[derive(Default)]
struct DeviceLogins {
    logged_in: Vec<u64>,
    /// When the device last went from one logged-in connection to two.
    double_since: Option<Instant>,
    count: u64,
    longest: Duration,
}

impl DeviceLogins {
    fn report(&self, now: Instant) -> DoubleConnections {
        let ongoing = self
            .double_since
            .map_or(Duration::ZERO, |since| now - since);
        DoubleConnections {
            count: self.count,
            longest_ms: self.longest.max(ongoing).as_millis() as u64,
        }
    }
}

impl DoubleConnectionTracker {
    fn log_in(&self, device: &DeviceKey, conn_id: u64) {
        let mut devices = lock(&self.devices);
        let logins = devices.entry(device.clone()).or_default();
        if !logins.logged_in.is_empty() {
            logins.count += 1;
            logins.double_since.get_or_insert_with(Instant::now);
        }
        logins.logged_in.push(conn_id);
    }

    fn log_out(&self, device: &DeviceKey, conn_id: u64) {
        let mut devices = lock(&self.devices);
        let Some(logins) = devices.get_mut(device) else {
            return;
        };
        logins.logged_in.retain(|id| *id != conn_id);
        if logins.logged_in.len() < 2
            && let Some(since) = logins.double_since.take()
        {
            logins.longest = logins.longest.max(since.elapsed());
        }
    }

    /// The record of one device (zero if it never logged in twice).
    pub fn of_device(&self, device: &DeviceKey) -> DoubleConnections {
        lock(&self.devices)
            .get(device)
            .map(|logins| logins.report(Instant::now()))
            .unwrap_or_default()
    }

    /// All devices together: the sum of the counts and the longest overlap of any.
    pub fn total(&self) -> DoubleConnections {
        let now = Instant::now();
        lock(&self.devices)
            .values()
            .map(|logins| logins.report(now))
            .fold(DoubleConnections::default(), |total, device| {
                DoubleConnections {
                    count: total.count + device.count,
                    longest_ms: total.longest_ms.max(device.longest_ms),
                }
            })
    }
}

/// One connection logged in as a device; its session ends when this is dropped, so a
/// connection task that ends in any way (even a panic) stops counting as logged in.
pub struct LoggedIn {
    shared: Arc<Shared>,
    device: DeviceKey,
    conn_id: u64,
}

impl LoggedIn {
    pub fn new(shared: Arc<Shared>, device: DeviceKey, conn_id: u64) -> Self {
        shared.stats.double_connections.log_in(&device, conn_id);
        Self {
            shared,
            device,
            conn_id,
        }
    }
}

impl Drop for LoggedIn {
    fn drop(&mut self) {
        self.shared
            .stats
            .double_connections
            .log_out(&self.device, self.conn_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_logins_of_one_device_count_once_per_extra_login() {
        let tracker = DoubleConnectionTracker::default();
        let device = DeviceKey::new("15550001111", 1);
        tracker.log_in(&device, 1);
        tracker.log_out(&device, 1);
        tracker.log_in(&device, 2);
        assert_eq!(tracker.of_device(&device).count, 0, "one after the other");

        tracker.log_in(&device, 3);
        std::thread::sleep(Duration::from_millis(20));
        tracker.log_out(&device, 2);
        let record = tracker.of_device(&device);
        assert_eq!(record.count, 1);
        assert!(record.longest_ms >= 20, "{record:?}");

        tracker.log_in(&DeviceKey::new("15550001111", 2), 4);
        assert_eq!(tracker.total(), record, "another device alone adds nothing");
    }
}
