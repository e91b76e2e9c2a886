//! Cluster bench: three real `botwave serve` processes (release build) on one PostgreSQL
//! and the WhatsApp simulator, 300 linked sessions spread over them. Prints
//!
//! - the extra latency of a request routed to another node: `POST /api/whatsapp/initialize`
//!   for a running session (a no-op on its owner) sent to the owner itself and to a node
//!   that is not the owner, p50/p99 of each;
//! - failover time: `kill -9` of one node until every session it ran is logged in to
//!   WhatsApp again from the others (leases of `LEASE_TTL_SECS` s, see tests/cluster).
//!
//! `cargo bench --bench cluster --features simulator [-- --sessions N --requests N]`

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/cluster/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "gateway/simulator.rs"]
mod simulator;

/// The harness's simulator process: this bench binary again, in simulator mode.
mod sim_process {
    pub use crate::simulator::spawn_child as start;
}

use std::time::{Duration, Instant};

use harness::{Cluster, LEASE_TTL_SECS, User};

struct Options {
    sessions: usize,
    requests: usize,
}

fn options() -> Options {
    let mut options = Options {
        sessions: 300,
        requests: 300,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.windows(2) {
        let number = || {
            pair[1]
                .parse()
                .unwrap_or_else(|_| panic!("{} needs a number", pair[0]))
        };
        match pair[0].as_str() {
            "--sessions" => options.sessions = number(),
            "--requests" => options.requests = number(),
            _ => {}
        }
    }
    options
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn timed_initialize(cluster: &Cluster, node: usize, user: &User) -> Duration {
    let started = Instant::now();
    cluster.initialize(node, user).await;
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if simulator::is_child() {
        simulator::run_child().await;
        return;
    }
    let options = options();
    let cluster = Cluster::start(3).await;
    let linking = Instant::now();
    let mut users = Vec::with_capacity(options.sessions);
    let mut next = 0;
    while next < options.sessions {
        let batch: Vec<usize> = (next..(next + 25).min(options.sessions)).collect();
        next += batch.len();
        let cluster = &cluster;
        let linked =
            futures_util::future::join_all(batch.into_iter().map(|n| async move {
                cluster.linked_user(n % 3, &format!("1555400{n:04}")).await
            }))
            .await;
        users.extend(linked);
    }
    println!(
        "linked {} sessions over 3 nodes in {:.1} s: {:?}",
        users.len(),
        linking.elapsed().as_secs_f64(),
        cluster.spread().await
    );

    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let mut local = Vec::new();
    let mut routed = Vec::new();
    for user in users.iter().cycle().take(options.requests) {
        let owner = cluster.owner(user).await.expect("an owner");
        let owner_index = names
            .iter()
            .position(|n| *n == owner)
            .expect("a known node");
        local.push(timed_initialize(&cluster, owner_index, user).await);
        routed.push(timed_initialize(&cluster, (owner_index + 1) % 3, user).await);
    }
    local.sort();
    routed.sort();
    let (local50, local99) = (percentile(&local, 0.5), percentile(&local, 0.99));
    let (routed50, routed99) = (percentile(&routed, 0.5), percentile(&routed, 0.99));
    println!(
        "request on the owner: p50 {:.2} ms, p99 {:.2} ms; routed to another node: p50 {:.2} ms, p99 {:.2} ms; extra p50 {:.2} ms, p99 {:.2} ms",
        ms(local50),
        ms(local99),
        ms(routed50),
        ms(routed99),
        ms(routed50.saturating_sub(local50)),
        ms(routed99.saturating_sub(local99)),
    );

    let victim = 2;
    let mut moving = Vec::new();
    for user in &users {
        if cluster.owner(user).await.as_deref() == Some(names[victim].as_str()) {
            moving.push(user);
        }
    }
    cluster.nodes[victim].signal(libc::SIGKILL);
    let killed = Instant::now();
    let mut last = Duration::ZERO;
    for user in &moving {
        cluster
            .eventually("a moved session connected", || async {
                let owner = cluster.owner(user).await?;
                (owner != names[victim] && cluster.is_connected(user).await).then_some(())
            })
            .await;
        last = killed.elapsed();
    }
    println!(
        "failover: {} sessions of the killed node connected on the others {:.1} s after kill -9 (lease {LEASE_TTL_SECS} s); double connections seen by WhatsApp: {}",
        moving.len(),
        last.as_secs_f64(),
        cluster.double_connections().await
    );
    println!(
        "BENCH_JSON {{\"sessions\":{},\"routed_extra_p50_ms\":{:.3},\"routed_extra_p99_ms\":{:.3},\"failover_s\":{:.2},\"moved\":{}}}",
        users.len(),
        ms(routed50.saturating_sub(local50)),
        ms(routed99.saturating_sub(local99)),
        last.as_secs_f64(),
        moving.len()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
