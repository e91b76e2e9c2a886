//! Three nodes, thirty sessions: any node serves any session, events reach every node (over
//! `/ws` and `/socket.io/`), a killed node's sessions come back on the others without a QR
//! code, and a fourth node takes its share, all without WhatsApp ever seeing one device
//! connected twice.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::{
    harness::{Cluster, User},
    socket_io_client::SocketIoClient,
};

const SESSIONS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_sessions_route_requests_and_survive_a_killed_node() {
    let mut cluster = Cluster::start(3).await;
    let mut users: Vec<User> = Vec::new();
    for batch in 0..SESSIONS / 10 {
        let cluster = &cluster;
        let linking = (0..10).map(|i| async move {
            let n = batch * 10 + i;
            cluster.linked_user(n % 3, &format!("1555100{n:04}")).await
        });
        users.extend(futures_util::future::join_all(linking).await);
    }
    for n in 0..SESSIONS {
        cluster
            .sim
            .create_phone(&format!("1555200{n:04}"), 1)
            .await
            .expect("recipient phone");
    }
    // Nodes even out what they run while sessions are linked, so a session can be between
    // two owners for a placement tick: wait for every one to have an owner again.
    let spread = cluster
        .eventually("every session owned", || async {
            let spread = cluster.spread().await;
            (spread.values().sum::<i64>() == SESSIONS as i64).then_some(spread)
        })
        .await;
    assert_eq!(spread.len(), 3, "every node runs sessions: {spread:?}");

    // Any request to any node: the status and a send, through a node that is not the owner.
    for (n, user) in users.iter().enumerate() {
        let owner = cluster.owner(user).await.expect("an owner");
        let via = (0..3)
            .find(|&i| cluster.nodes[i].name != owner)
            .expect("a node that is not the owner");
        assert_eq!(cluster.status(via, user).await["state"], "connected");
        cluster
            .send(via, user, &format!("1555200{n:04}"), &format!("routed {n}"))
            .await;
    }
    for n in 0..SESSIONS {
        let (to, text) = (format!("1555200{n:04}"), format!("routed {n}"));
        cluster
            .eventually(&text, || async {
                (cluster.received(&to, &text).await == 1).then_some(())
            })
            .await;
    }

    // A dashboard on one node hears about a session another node runs.
    let watched = &users[0];
    let owner = cluster.owner(watched).await.expect("an owner");
    let watcher = (0..3)
        .find(|&i| cluster.nodes[i].name != owner)
        .expect("another node");
    let mut dashboard = cluster.dashboard(watcher, watched).await;
    // So does a Socket.IO client there, on long-polling (every request to that one node).
    let mut socket_io =
        SocketIoClient::connect(&cluster.nodes[watcher].http, "polling", &watched.token).await;
    socket_io.next("authenticated").await;
    let id = cluster
        .send(
            (watcher + 1) % 3,
            watched,
            "15552000000",
            "watched from afar",
        )
        .await;
    assert!(
        dashboard.delivered(&id, Duration::from_secs(60)).await,
        "no delivered event on node {watcher}"
    );
    socket_io
        .next_where("message_status", |line| {
            line["payload"]["message_id"] == id.as_str() && line["payload"]["status"] == "delivered"
        })
        .await;
    socket_io.close().await;

    // kill -9 a node right after it accepted messages.
    let victim = 2;
    let victim_name = cluster.nodes[victim].name.clone();
    let mut orphans = Vec::new();
    for (n, user) in users.iter().enumerate() {
        if cluster.owner(user).await.as_deref() == Some(victim_name.as_str()) {
            cluster
                .send(
                    victim,
                    user,
                    &format!("1555200{n:04}"),
                    &format!("before kill {n}"),
                )
                .await;
            orphans.push(n);
        }
    }
    assert!(!orphans.is_empty());
    let pairings = cluster.pairings().await;
    cluster.nodes[victim].signal(libc::SIGKILL);
    let killed = Instant::now();
    cluster.nodes[victim]
        .wait_exit(Duration::from_secs(5))
        .await;
    for &n in &orphans {
        let user = &users[n];
        cluster
            .eventually("the session back on a live node", || async {
                let owner = cluster.owner(user).await?;
                (owner != victim_name && cluster.is_connected(user).await).then_some(())
            })
            .await;
    }
    let failover = killed.elapsed();
    eprintln!("{} sessions moved in {failover:?}", orphans.len());
    assert!(
        failover < Duration::from_secs(15),
        "failover took {failover:?}"
    );
    assert_eq!(
        cluster.pairings().await,
        pairings,
        "no session needed a new QR scan"
    );
    for &n in &orphans {
        let (to, text) = (format!("1555200{n:04}"), format!("before kill {n}"));
        cluster
            .eventually(&text, || async {
                (cluster.received(&to, &text).await >= 1).then_some(())
            })
            .await;
    }
    // Give a duplicate the time to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for &n in &orphans {
        let (to, text) = (format!("1555200{n:04}"), format!("before kill {n}"));
        assert_eq!(
            cluster.received(&to, &text).await,
            1,
            "{text} decrypted once"
        );
    }

    // A fourth node takes its share over.
    let fourth = cluster.add_node().await;
    let fourth_name = cluster.nodes[fourth].name.clone();
    cluster
        .eventually("the new node running sessions", || async {
            let spread = cluster.spread().await;
            (spread.get(&fourth_name).copied().unwrap_or(0) >= 5).then_some(())
        })
        .await;
    for user in &users {
        cluster.wait_connected(user).await;
    }
    assert_eq!(cluster.pairings().await, pairings);
    assert_eq!(
        cluster.double_connections().await,
        0,
        "WhatsApp never saw a device connected twice"
    );
    let answered = cluster
        .api(
            fourth,
            Method::GET,
            "/api/whatsapp/status",
            &users[1].token,
            None,
        )
        .await;
    assert_eq!(answered.status(), 200);
}
