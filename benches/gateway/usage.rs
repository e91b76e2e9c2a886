//! Where the CPU went during a phase: CPU time of the node, of PostgreSQL, of the simulator
//! and of the bench's own load generator, the machine's busy share, and the node's pool waits.
//!
//! Everything is read from `/proc` (clock ticks of `utime + stime`), so a figure is exact for
//! the processes and threads it names and needs no profiler. The split answers "which
//! resource ran out first": with two cores, a phase whose machine share is near 100% was
//! bounded by CPU, and the largest consumer is the one to make cheaper; a phase well below
//! it was bounded by waiting (pool waits, round trips, pacing).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use botwave::db::DbPool;

/// Whose CPU time a phase is split into.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Consumer {
    Node,
    Postgres,
    Simulator,
    /// The bench process's HTTP clients (when the node runs in it: its other threads).
    LoadGenerator,
}

impl Consumer {
    fn label(self) -> &'static str {
        match self {
            Consumer::Node => "node",
            Consumer::Postgres => "PostgreSQL",
            Consumer::Simulator => "simulator",
            Consumer::LoadGenerator => "bench clients",
        }
    }
}

/// How to find the node's CPU time.
#[derive(Clone, Copy)]
pub enum NodeCpu {
    /// The node runs inside the bench process on a runtime whose threads are named
    /// `NODE_THREAD_NAME`; the bench's other threads are the load generator.
    InProcess,
    /// The node is its own process.
    Process(u32),
}

/// Thread name of the in-process node's runtime.
pub const NODE_THREAD_NAME: &str = "node";

/// The processes a phase's CPU time is read from.
#[derive(Clone)]
pub struct Probe {
    pub node: NodeCpu,
    /// `None`: a simulator of somebody else's, not measured.
    pub simulator_pid: Option<u32>,
    /// Reads the pids of the PostgreSQL backends serving the node's database, and the
    /// server's own background processes (WAL writer, checkpointer, autovacuum).
    pub postgres: DbPool,
    /// The in-process node's pool, for its wait counters.
    pub node_pool: Option<DbPool>,
}

/// CPU ticks per process or thread at one moment.
struct Snapshot {
    at: Instant,
    ticks: HashMap<(Consumer, u32), u64>,
    machine: MachineTicks,
    pool: Option<PoolCounters>,
}

#[derive(Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    total: u64,
}

#[derive(Clone, Copy, Default)]
struct PoolCounters {
    waited: u64,
    wait_time: Duration,
    gets: u64,
}

/// What a phase used, ready to print.
pub struct Usage {
    pub phase: String,
    pub wall: Duration,
    /// CPU seconds per consumer.
    pub cpu: Vec<(Consumer, f64)>,
    /// Share of all cores busy on the machine, including processes that are not the bench's.
    pub machine_busy: f64,
    pub cores: usize,
    pool: Option<PoolCounters>,
}

impl Usage {
    /// CPU seconds of `consumer`.
    pub fn seconds(&self, consumer: Consumer) -> f64 {
        self.cpu
            .iter()
            .find(|(c, _)| *c == consumer)
            .map_or(0.0, |(_, s)| *s)
    }

    /// Percent of one core `consumer` used on average.
    pub fn percent_of_core(&self, consumer: Consumer) -> f64 {
        100.0 * self.seconds(consumer) / self.wall.as_secs_f64().max(f64::EPSILON)
    }

    /// One paragraph: the split, the machine's busy share and a verdict on what bounded it.
    pub fn report(&self) -> String {
        let wall = self.wall.as_secs_f64().max(f64::EPSILON);
        let ours: f64 = self.cpu.iter().map(|(_, s)| s).sum();
        let capacity = wall * self.cores as f64;
        let mut out = format!("  cpu during {} ({:.1} s wall):", self.phase, wall);
        for (consumer, seconds) in &self.cpu {
            let _ = write!(
                out,
                " {} {:.2} s ({:.0}% of a core);",
                consumer.label(),
                seconds,
                100.0 * seconds / wall
            );
        }
        let other = (self.machine_busy * capacity - ours).max(0.0);
        let _ = write!(
            out,
            " machine {:.0}% busy of {} cores (processes outside the bench: {:.2} s)",
            100.0 * self.machine_busy,
            self.cores,
            other
        );
        if let Some(pool) = self.pool {
            let _ = write!(
                out,
                "\n  node pool: {} checkouts, {} waited for a connection ({:.1} ms waiting in all)",
                pool.gets,
                pool.waited,
                pool.wait_time.as_secs_f64() * 1000.0
            );
        }
        let _ = write!(out, "\n  bounded by: {}", self.verdict());
        out
    }

    /// Which resource ran out first, in words.
    pub fn verdict(&self) -> String {
        let top = self
            .cpu
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(consumer, _)| consumer.label())
            .unwrap_or("nothing");
        let waits = self.pool.is_some_and(|pool| pool.waited > pool.gets / 10);
        if self.machine_busy >= 0.9 {
            format!(
                "CPU: the machine was {:.0}% busy; {top} used the most",
                100.0 * self.machine_busy
            )
        } else if waits {
            "the node's connection pool: more than a tenth of checkouts waited".into()
        } else {
            format!(
                "not CPU ({:.0}% of the machine was idle) nor pool waits: waiting on round trips or pacing; {top} used the most CPU",
                100.0 * (1.0 - self.machine_busy)
            )
        }
    }
}

impl Probe {
    /// Starts measuring a phase; [`Running::finish`] reads the counters again.
    pub async fn start(&self, phase: &str) -> Running {
        Running {
            phase: phase.to_owned(),
            probe: self.clone(),
            first: self.snapshot().await,
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let mut ticks = HashMap::new();
        match self.node {
            NodeCpu::Process(pid) => {
                if let Some(t) = process_ticks(pid) {
                    ticks.insert((Consumer::Node, pid), t);
                }
            }
            NodeCpu::InProcess => {
                for (tid, name, t) in own_threads() {
                    let consumer = if name.starts_with(NODE_THREAD_NAME) {
                        Consumer::Node
                    } else {
                        Consumer::LoadGenerator
                    };
                    ticks.insert((consumer, tid), t);
                }
            }
        }
        if let NodeCpu::Process(_) = self.node
            && let Some(t) = process_ticks(std::process::id())
        {
            ticks.insert((Consumer::LoadGenerator, std::process::id()), t);
        }
        if let Some(pid) = self.simulator_pid
            && let Some(t) = process_ticks(pid)
        {
            ticks.insert((Consumer::Simulator, pid), t);
        }
        for pid in postgres_pids(&self.postgres).await {
            if let Some(t) = process_ticks(pid) {
                ticks.insert((Consumer::Postgres, pid), t);
            }
        }
        Snapshot {
            at: Instant::now(),
            ticks,
            machine: machine_ticks(),
            pool: self.node_pool.as_ref().map(pool_counters),
        }
    }
}

/// A phase being measured.
pub struct Running {
    phase: String,
    probe: Probe,
    first: Snapshot,
}

impl Running {
    pub async fn finish(self) -> Usage {
        let last = self.probe.snapshot().await;
        let hz = clock_ticks_per_second();
        let mut per_consumer: HashMap<Consumer, u64> = HashMap::new();
        // A process or thread that started during the phase counts from zero; one that
        // ended during it is lost (short-lived autovacuum workers, idle blocking threads).
        for (key, end) in &last.ticks {
            let start = self.first.ticks.get(key).copied().unwrap_or(0);
            *per_consumer.entry(key.0).or_default() += end.saturating_sub(start);
        }
        let mut cpu: Vec<(Consumer, f64)> = per_consumer
            .into_iter()
            .map(|(consumer, ticks)| (consumer, ticks as f64 / hz))
            .collect();
        cpu.sort_by_key(|(consumer, _)| *consumer);
        let busy = last.machine.busy.saturating_sub(self.first.machine.busy);
        let total = last.machine.total.saturating_sub(self.first.machine.total);
        let pool = match (self.first.pool, last.pool) {
            (Some(a), Some(b)) => Some(PoolCounters {
                waited: b.waited.saturating_sub(a.waited),
                wait_time: b.wait_time.saturating_sub(a.wait_time),
                gets: b.gets.saturating_sub(a.gets),
            }),
            _ => None,
        };
        Usage {
            phase: self.phase,
            wall: last.at.duration_since(self.first.at),
            cpu,
            machine_busy: if total == 0 {
                0.0
            } else {
                busy as f64 / total as f64
            },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pool,
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// `utime + stime` from a `/proc/.../stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `(thread id, thread name, ticks)` of every thread of this process.
fn own_threads() -> Vec<(u32, String, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid: u32 = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let ticks = stat_ticks(&std::fs::read_to_string(task.path().join("stat")).ok()?)?;
            Some((tid, name.trim().to_owned(), ticks))
        })
        .collect()
}

fn machine_ticks() -> MachineTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return MachineTicks::default();
    };
    let values: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    MachineTicks {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// Backends of the database `pool` connects to, and the server's background processes.
async fn postgres_pids(pool: &DbPool) -> Vec<u32> {
    let Ok(conn) = pool.get().await else {
        return Vec::new();
    };
    let rows = conn
        .query(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() OR backend_type <> 'client backend'",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|row| u32::try_from(row.get::<_, i32>(0)).ok())
        .collect()
}

fn pool_counters(pool: &DbPool) -> PoolCounters {
    let statistics = pool.state().statistics;
    PoolCounters {
        waited: statistics.get_waited,
        wait_time: statistics.get_wait_time,
        gets: statistics.get_direct + statistics.get_waited + statistics.get_timed_out,
    }
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
