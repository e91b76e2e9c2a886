//! Every open HTTP connection of the node, with what it is doing and since when — what the
//! listener needs to cap connections in all and per client address, and to make room at the
//! cap by closing the connection that is doing the least (idle first, then half-sent heads).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// What a connection is doing; the phase decides which timeout applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// No request in flight: just opened, or between keep-alive requests.
    Idle = 0,
    /// The first bytes of a request head arrived; the head is not complete yet.
    ReadingHead = 1,
    /// A handler holds the request (reading its body or working on the answer).
    InRequest = 2,
    /// Upgraded to a websocket, which keeps itself alive with pings.
    Upgraded = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Idle,
            1 => Phase::ReadingHead,
            2 => Phase::InRequest,
            _ => Phase::Upgraded,
        }
    }
}

/// One connection's shared state: written by its IO wrapper and its request handler, read by
/// its watchdog and by the table when it must choose whom to close.
#[derive(Debug)]
pub struct Conn {
    pub ip: IpAddr,
    phase: AtomicU8,
    /// Milliseconds since the table's epoch when the phase began (or, idle, the last activity).
    since_ms: AtomicU64,
    /// Responses handed to hyper whose head has not been written yet.
    responses_owed: AtomicUsize,
    evicted: AtomicBool,
    /// Woken when the table evicts this connection or the node shuts down.
    pub close: Notify,
    /// Woken when the phase changes, so the watchdog moves to the new phase's deadline.
    pub phase_changed: Notify,
    epoch: Instant,
}

impl Conn {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.phase_changed.notify_one();
    }

    /// When the current phase began (idle: when the connection was last active).
    pub fn since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire))
    }

    /// Bytes arrived from the client.
    pub fn on_read(&self) {
        if self.phase() == Phase::Idle {
            self.enter(Phase::ReadingHead);
        }
    }

    /// Bytes went out to the client: an idle connection writing its last answer is not idle.
    pub fn on_write(&self) {
        if self.phase() == Phase::Idle {
            self.since_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    pub fn request_started(&self) {
        self.responses_owed.fetch_add(1, Ordering::AcqRel);
        self.enter(Phase::InRequest);
    }

    pub fn request_answered(&self, upgraded: bool) {
        self.enter(if upgraded {
            Phase::Upgraded
        } else {
            Phase::Idle
        });
    }

    /// A response head is being written. `false` means no handler produced it: hyper is
    /// answering a request it could not parse on its own.
    pub fn take_owed_response(&self) -> bool {
        self.responses_owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                owed.checked_sub(1)
            })
            .is_ok()
    }

    pub fn was_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }
}

/// Why a connection could not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NodeFull,
    AddressFull,
}

#[derive(Debug)]
pub struct ConnectionTable {
    max_connections: usize,
    max_per_ip: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<Conn>>,
    /// Connections not yet evicted, in all and per address: what the caps count.
    counted: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place in the table, held for as long as its socket is open (an upgraded
/// websocket included); dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    id: u64,
    pub conn: Arc<Conn>,
    table: Arc<ConnectionTable>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        if inner.live.remove(&self.id).is_some() && !self.conn.was_evicted() {
            inner.uncount(self.conn.ip);
        }
    }
}

impl Inner {
    fn uncount(&mut self, ip: IpAddr) {
        self.counted = self.counted.saturating_sub(1);
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl ConnectionTable {
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_connections,
            max_per_ip,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Admits a connection from `ip`. At a cap, the least busy connection in its scope (the
    /// whole node, or that address) is told to close to make room; when every one of them is
    /// busy, the new connection is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut inner = self.lock();
        let address_full = inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip;
        let node_full = inner.counted >= self.max_connections;
        if address_full || node_full {
            let victim = inner
                .live
                .iter()
                .filter(|(_, conn)| !conn.was_evicted() && (!address_full || conn.ip == ip))
                .filter_map(|(id, conn)| {
                    let rank = match conn.phase() {
                        Phase::Idle => 0,
                        Phase::ReadingHead => 1,
                        Phase::InRequest | Phase::Upgraded => return None,
                    };
                    // Ids grow with admission: the older of two equally idle ones goes.
                    Some(((rank, conn.since(), *id), conn.clone()))
                })
                .min_by_key(|(key, _)| *key)
                .map(|(_, conn)| conn);
            let Some(victim) = victim else {
                return Err(if address_full {
                    Refusal::AddressFull
                } else {
                    Refusal::NodeFull
                });
            };
            victim.evicted.store(true, Ordering::Release);
            victim.close.notify_one();
            inner.uncount(victim.ip);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let conn = Arc::new(Conn {
            ip,
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            responses_owed: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
            phase_changed: Notify::new(),
            epoch: self.epoch,
        });
        inner.live.insert(id, conn.clone());
        inner.counted += 1;
        *inner.per_ip.entry(ip).or_default() += 1;
        Ok(Admission {
            id,
            conn,
            table: self.clone(),
        })
    }

    /// Tells every connection that is not upgraded to finish its request and close.
    pub fn close_all(&self) {
        for conn in self.lock().live.values() {
            conn.close.notify_one();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn at_the_node_cap_the_longest_idle_connection_makes_room() {
        let table = ConnectionTable::new(2, 10);
        let first = table.admit(A).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit(B).unwrap();
        let third = table.admit(B).unwrap();
        assert!(first.conn.was_evicted(), "the oldest idle one goes");
        assert!(!second.conn.was_evicted());
        drop(first);
        assert_eq!(table.len(), 2);
        drop((second, third));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn busy_connections_are_never_evicted_and_a_full_node_refuses() {
        let table = ConnectionTable::new(1, 10);
        let busy = table.admit(A).unwrap();
        busy.conn.request_started();
        assert_eq!(table.admit(B).unwrap_err(), Refusal::NodeFull);
        busy.conn.request_answered(true);
        assert_eq!(
            table.admit(B).unwrap_err(),
            Refusal::NodeFull,
            "websockets stay"
        );
    }

    #[test]
    fn the_address_cap_evicts_only_that_address() {
        let table = ConnectionTable::new(10, 1);
        let other = table.admit(B).unwrap();
        let first = table.admit(A).unwrap();
        let _second = table.admit(A).unwrap();
        assert!(first.conn.was_evicted());
        assert!(!other.conn.was_evicted());
        first.conn.request_started();
    }

    #[test]
    fn idle_goes_before_a_half_sent_head() {
        let table = ConnectionTable::new(2, 10);
        let slow = table.admit(A).unwrap();
        slow.conn.on_read();
        std::thread::sleep(Duration::from_millis(5));
        let idle = table.admit(A).unwrap();
        let _new = table.admit(A).unwrap();
        assert!(idle.conn.was_evicted());
        assert!(!slow.conn.was_evicted());
    }

    #[test]
    fn only_unowed_heads_are_hypers_own() {
        let table = ConnectionTable::new(2, 10);
        let admitted = table.admit(A).unwrap();
        assert!(!admitted.conn.take_owed_response());
        admitted.conn.request_started();
        assert!(admitted.conn.take_owed_response());
        assert!(!admitted.conn.take_owed_response());
    }
}
