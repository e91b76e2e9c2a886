//! Nodes that stop on purpose hand their sessions over; nodes that freeze are fenced.

use std::time::Duration;

use crate::harness::{Cluster, LEASE_TTL_SECS, User};

/// Links `count` users, all initialized through node 1 (so it runs them), and a
/// recipient phone per user.
async fn users_on_second_node(cluster: &Cluster, count: usize, prefix: &str) -> Vec<User> {
    let mut users = Vec::new();
    for n in 0..count {
        users.push(cluster.linked_user(1, &format!("{prefix}1{n:03}")).await);
        cluster
            .sim
            .create_phone(&format!("{prefix}2{n:03}"), 1)
            .await
            .expect("recipient phone");
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_with_sigterm_hands_its_sessions_over() {
    let mut cluster = Cluster::start(2).await;
    let users = users_on_second_node(&cluster, 4, "1555301").await;
    let leaving = cluster.nodes[1].name.clone();
    let mut moving = Vec::new();
    for (n, user) in users.iter().enumerate() {
        if cluster.owner(user).await.as_deref() == Some(leaving.as_str()) {
            moving.push(n);
        }
        cluster
            .send(
                1,
                user,
                &format!("15553012{n:03}"),
                &format!("before stop {n}"),
            )
            .await;
    }
    assert!(!moving.is_empty(), "the second node runs sessions");

    cluster.nodes[1].signal(libc::SIGTERM);
    let took = cluster.nodes[1].wait_exit(Duration::from_secs(30)).await;
    assert!(took < Duration::from_secs(25), "exited after {took:?}");
    for user in &users {
        cluster.wait_connected(user).await;
        assert_eq!(
            cluster.owner(user).await.as_deref(),
            Some(cluster.nodes[0].name.as_str())
        );
    }
    for n in 0..users.len() {
        let (to, text) = (format!("15553012{n:03}"), format!("before stop {n}"));
        cluster
            .eventually(&text, || async {
                (cluster.received(&to, &text).await >= 1).then_some(())
            })
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..users.len() {
        let (to, text) = (format!("15553012{n:03}"), format!("before stop {n}"));
        assert_eq!(
            cluster.received(&to, &text).await,
            1,
            "{text} decrypted once"
        );
    }
    assert_eq!(cluster.double_connections().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_stops_its_sessions_when_it_wakes_and_writes_nothing() {
    let cluster = Cluster::start(2).await;
    let users = users_on_second_node(&cluster, 3, "1555302").await;
    let frozen = cluster.nodes[1].name.clone();
    let mut theirs = Vec::new();
    for user in &users {
        if cluster.owner(user).await.as_deref() == Some(frozen.as_str()) {
            theirs.push(user);
        }
    }
    assert!(!theirs.is_empty(), "the second node runs sessions");

    cluster.nodes[1].signal(libc::SIGSTOP);
    // The others take over once the leases expire; WhatsApp replaces the frozen node's
    // connections (it cannot tell the node is frozen).
    for user in &theirs {
        cluster
            .eventually("taken over", || async {
                let owner = cluster.owner(user).await?;
                (owner != frozen).then_some(())
            })
            .await;
        cluster.wait_connected(user).await;
    }
    for (n, user) in users.iter().enumerate() {
        cluster
            .send(
                0,
                user,
                &format!("15553022{n:03}"),
                &format!("while frozen {n}"),
            )
            .await;
    }
    let mut taken_over = Vec::new();
    for user in &users {
        taken_over.push(cluster.epoch(user).await);
    }
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_SECS)).await;

    cluster.nodes[1].signal(libc::SIGCONT);
    // Time for every timer of the woken node to fire.
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_SECS)).await;
    // The woken node may be handed sessions again (it holds fewer than its share), but
    // only through a new lease: never by resuming the ones it lost.
    for (user, epoch) in users.iter().zip(&taken_over) {
        cluster.wait_connected(user).await;
        if cluster.owner(user).await.as_deref() == Some(frozen.as_str()) {
            assert!(cluster.epoch(user).await > *epoch, "resumed a lost lease");
        }
    }
    for n in 0..users.len() {
        let (to, text) = (format!("15553022{n:03}"), format!("while frozen {n}"));
        cluster
            .eventually(&text, || async {
                (cluster.received(&to, &text).await >= 1).then_some(())
            })
            .await;
        assert_eq!(
            cluster.received(&to, &text).await,
            1,
            "{text} decrypted once"
        );
    }
    let log = cluster.nodes[1].log();
    assert!(
        log.contains("session stopped"),
        "the woken node stopped its sessions:\n{log}"
    );
    // Every session still works for its new owner.
    for (n, user) in users.iter().enumerate() {
        let (to, text) = (format!("15553022{n:03}"), format!("after waking {n}"));
        cluster.send(1, user, &to, &text).await;
        cluster
            .eventually(&text, || async {
                (cluster.received(&to, &text).await == 1).then_some(())
            })
            .await;
    }
}
