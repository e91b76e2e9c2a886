//! A node that loses PostgreSQL while the others keep it (its database URL goes through a
//! [`DbProxy`] the test cuts): it cuts its WhatsApp clients off by its own lease deadline,
//! the others take its sessions over without a new pairing, and once the database is back
//! it resumes none of them and no write it makes under a lost lease lands. Both ways a
//! database goes away: refusing connections, and a black hole that accepts and never answers.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::db_proxy::{Cut, DbProxy};
use crate::harness::{Cluster, LEASE_TTL_SECS, User};

const USERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_postgresql_refuses_connections_stops_its_sessions_and_writes_nothing_when_back()
 {
    node_loses_postgresql(Cut::Refuse, "1555401").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_postgresql_hangs_stops_its_sessions_and_writes_nothing_when_back() {
    node_loses_postgresql(Cut::BlackHole, "1555402").await;
}

async fn node_loses_postgresql(cut: Cut, prefix: &str) {
    // Every user links on the node that will lose its database while it is alone (no
    // rebalancing can move a session showing a QR code); then two more nodes join.
    let mut cluster = Cluster::start(0).await;
    let proxy = DbProxy::start(&cluster.db.url).await;
    let x = cluster.add_node_with_database(proxy.url()).await;
    let cut_off = cluster.nodes[x].name.clone();
    let recipient = |n: usize| format!("{prefix}2{n:03}");
    let mut users = Vec::new();
    for n in 0..USERS {
        users.push(cluster.linked_user(x, &format!("{prefix}1{n:03}")).await);
        cluster
            .sim
            .create_phone(&recipient(n), 1)
            .await
            .expect("recipient phone");
    }
    let others = [cluster.add_node().await, cluster.add_node().await];
    // Placement spreads them over the three nodes.
    cluster
        .eventually("two sessions on every node", || async {
            let spread = cluster.spread().await;
            (spread.len() == 3 && spread.values().all(|held| *held == 2)).then_some(())
        })
        .await;
    for (n, user) in users.iter().enumerate() {
        cluster.wait_connected(user).await;
        let id = cluster
            .send(
                others[0],
                user,
                &recipient(n),
                &format!("before the cut {n}"),
            )
            .await;
        wait_sent(&cluster, &id).await;
    }

    let mut theirs = Vec::new();
    let mut lost = HashSet::new();
    for (n, user) in users.iter().enumerate() {
        if cluster.owner(user).await.as_deref() == Some(cut_off.as_str()) {
            lost.insert(fence(&cluster, user).await);
            theirs.push((n, user));
        }
    }
    assert_eq!(theirs.len(), 2, "{cut_off} runs its share");
    let their_users: Vec<&User> = theirs.iter().map(|(_, user)| *user).collect();

    // Phones keep writing to the node's sessions around the cut, so that it has store
    // writes under way when the database goes (black-holed, they arrive late).
    // Until a second after the cut, and at most for a minute.
    let chatter = async {
        let mut rounds_after_cut = 0;
        for round in 0..1200 {
            for (n, user) in &theirs {
                let text = format!("chatter {round}");
                let _ = cluster
                    .sim
                    .send_text(&recipient(*n), &user.phone, &text)
                    .await;
            }
            if proxy.is_cut() {
                rounds_after_cut += 1;
                if rounds_after_cut == 20 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let cutting = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut_at_next_write(cut);
        cluster
            .eventually("a write to cut at", || async {
                proxy.is_cut().then_some(())
            })
            .await;
        let cut_at = Instant::now();
        // It cuts its clients off by its own deadline, within a lease's lifetime of the
        // cut, whatever its queries are stuck in.
        let within = Duration::from_secs(LEASE_TTL_SECS);
        let down = cut_off_within(&cluster, &their_users, within).await;
        eprintln!("{cut_off}'s clients down {down:?} after the cut ({cut:?})");
        cut_at
    };
    let ((), cut_at) = tokio::join!(chatter, cutting);
    assert!(
        proxy
            .statements()
            .iter()
            .any(|statement| !statement.sent_after_cut
                && lost.contains(&statement.fence)
                && statement.wrote()),
        "the proxy saw the node's fenced writes before the cut"
    );
    // The others take them over with the stored keys: the same device logs in again.
    for user in &their_users {
        cluster
            .eventually("taken over", || async {
                let owner = cluster.owner(user).await?;
                (owner != cut_off).then_some(())
            })
            .await;
        cluster.wait_connected(user).await;
    }
    eprintln!("taken over {:?} after the cut", cut_at.elapsed());
    for (n, user) in users.iter().enumerate() {
        cluster
            .send(
                others[1],
                user,
                &recipient(n),
                &format!("while cut off {n}"),
            )
            .await;
    }
    let mut taken_over = HashMap::new();
    for user in &users {
        taken_over.insert(user.id, cluster.epoch(user).await);
    }
    // Cut off a while longer, with every timer of the node run out.
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_SECS)).await;

    proxy.restore();
    // Time for whatever the node held back to reach the database, and its timers to fire.
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_SECS)).await;
    // It takes its share again, but only through new leases: never by resuming a lost one.
    cluster
        .eventually("the node runs sessions again", || async {
            let spread = cluster.spread().await;
            (spread.get(&cut_off).copied().unwrap_or(0) > 0).then_some(())
        })
        .await;
    for user in &users {
        cluster.wait_connected(user).await;
        if cluster.owner(user).await.as_deref() == Some(cut_off.as_str()) {
            assert!(
                cluster.epoch(user).await > taken_over[&user.id],
                "resumed a lost lease"
            );
        }
    }
    // Everything the database ran under a lost lease after the cut wrote nothing: the
    // fence refused it, or it matched no row. In a black hole that includes the write
    // the cut caught under way, which reached the database only after the takeover.
    let late: Vec<_> = proxy
        .statements()
        .into_iter()
        .filter(|statement| statement.sent_after_cut && lost.contains(&statement.fence))
        .collect();
    if cut == Cut::BlackHole {
        assert!(!late.is_empty(), "the write under way reached the database");
    }
    let landed: Vec<_> = late.iter().filter(|statement| statement.wrote()).collect();
    assert!(landed.is_empty(), "stale writes landed: {landed:#?}");
    let refused = late
        .iter()
        .filter(|statement| statement.error.as_deref() == Some("BW409"))
        .count();
    eprintln!(
        "{} statements under lost leases reached the database after the cut; {refused} refused by the fence",
        late.len()
    );
    assert_eq!(
        proxy.unreadable_connections(),
        0,
        "the proxy read everything"
    );
    let log = cluster.nodes[x].log();
    assert!(
        [
            "lease lost; stopping the session",
            "lease not renewed in time"
        ]
        .iter()
        .any(|line| log.contains(line)),
        "{cut_off} stopped its sessions itself:\n{log}"
    );

    // Every session works for its owner, through the node that was cut off too; nothing
    // was sent twice, and no device was ever logged in twice at once.
    for (n, user) in users.iter().enumerate() {
        let text = format!("after the restore {n}");
        cluster.send(x, user, &recipient(n), &text).await;
        for text in [
            format!("before the cut {n}"),
            format!("while cut off {n}"),
            text,
        ] {
            let to = recipient(n);
            cluster
                .eventually(&text, || async {
                    (cluster.received(&to, &text).await >= 1).then_some(())
                })
                .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..USERS {
        for text in ["before the cut", "while cut off", "after the restore"] {
            let text = format!("{text} {n}");
            assert_eq!(
                cluster.received(&recipient(n), &text).await,
                1,
                "{text} decrypted once"
            );
        }
    }
    assert_eq!(cluster.double_connections().await, 0);
}

/// Waits until none of `users` is logged in to WhatsApp, each seen down at least once
/// within `within`; answers when the last was.
async fn cut_off_within(cluster: &Cluster, users: &[&User], within: Duration) -> Duration {
    let started = Instant::now();
    let mut down = HashSet::new();
    loop {
        for user in users {
            if !cluster.is_connected(user).await {
                down.insert(user.id);
            }
        }
        if down.len() == users.len() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still logged in {within:?} after losing the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `botwave.fence` of `user`'s current lease.
async fn fence(cluster: &Cluster, user: &User) -> String {
    let conn = cluster.db.pool.get().await.expect("db");
    let row = conn
        .query_one(
            "SELECT s.id, l.epoch FROM wa_sessions s JOIN wa_leases l ON l.session_id = s.id
              WHERE s.user_id = $1",
            &[&user.id],
        )
        .await
        .expect("lease query");
    let (session, epoch): (Uuid, i64) = (row.get(0), row.get(1));
    format!("{session}/{epoch}")
}

/// Waits until the message `id` is recorded as handed to WhatsApp: a takeover then has
/// nothing to send again.
async fn wait_sent(cluster: &Cluster, id: &str) {
    let id: Uuid = id.parse().expect("message id");
    cluster
        .eventually("sent", || async {
            let conn = cluster.db.pool.get().await.ok()?;
            let row = conn
                .query_one("SELECT status FROM messages WHERE id = $1", &[&id])
                .await
                .ok()?;
            let status: String = row.get(0);
            ["sent", "delivered", "read"]
                .contains(&status.as_str())
                .then_some(())
        })
        .await;
}
