//! Membership: this node's ractor_cluster node server, and the links to every other live
//! node (a full mesh).
//!
//! ractor_cluster neither reconnects nor notices a silent peer, and it sets no socket
//! options. So the node accepts and dials links itself and hands the sockets over:
//! every link has TCP keepalive and `TCP_USER_TIMEOUT`, so a peer that vanished
//! is noticed within seconds; a loop dials every live node (from `cluster_nodes` and the
//! configured peers) that has no link; and a failure detector pings every peer's
//! gateway, dropping links whose peer stopped answering (a frozen process keeps its
//! sockets open). The library's own listener is bound to loopback on a free port and
//! stays unused. With [`TlsFiles`] every link is mutual TLS ([`super::tls`]) under the
//! cookie; without them it is plaintext, authenticated by the cookie alone.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeServer, NodeServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsStream;
use uuid::Uuid;

use super::NodeIdentity;
use super::gateway::Gateways;
use super::nodes;
use super::tls::{ClusterTls, TlsError, TlsFiles};
use crate::PgPool;

/// A link whose peer has not answered for this long is dropped (and redialed).
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_millis(800);
const MISSED_PINGS: u32 = 3;

/// How often missing links are dialed, and how long a dial may take.
const DIAL_EVERY: Duration = Duration::from_secs(1);
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Unacknowledged data older than this kills a link (Linux `TCP_USER_TIMEOUT`).
const USER_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_RETRIES: u32 = 3;

/// Inbound links open at once (peers are few; anything beyond is not a peer).
const MAX_INBOUND_LINKS: usize = 64;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Where other nodes reach this one.
    pub listen: SocketAddr,
    /// Nodes to dial even before they show up in `cluster_nodes`.
    pub peers: Vec<String>,
    /// Shared by every node; authenticates links (it is not encryption).
    pub cookie: String,
    /// Lease lifetime: a node that has not heartbeated for this long is not dialed.
    pub lease_ttl: Duration,
    /// This node's certificate, key and the cluster's CA; `None` means plaintext links.
    pub tls: Option<TlsFiles>,
}

/// A running membership. Dropping it stops nothing; [`Membership::stop`] does.
pub struct Membership {
    server: ActorRef<NodeServerMessage>,
    listen: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("cannot listen for cluster links on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the cluster node server: {0}")]
    Server(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Membership {
    /// Binds the cluster listener and starts the node server, the dialer and the
    /// failure detector.
    pub async fn start(
        node: &NodeIdentity,
        config: MembershipConfig,
        pool: PgPool,
    ) -> Result<Self, MembershipError> {
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(ClusterTls::load(files)?)),
            None => {
                tracing::warn!(
                    "cluster links are not encrypted (no cluster.tls_cert, tls_key, tls_ca): \
                     the cookie only authenticates; keep node traffic on a private network"
                );
                None
            }
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let listen = listener
            .local_addr()
            .map_err(|source| MembershipError::Bind {
                addr: config.listen,
                source,
            })?;
        let server = NodeServer::new(
            0,
            config.cookie.clone(),
            node.name.clone(),
            node.incarnation.to_string(),
            None,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (server, _join) = Actor::spawn(None, server, ())
            .await
            .map_err(|error| MembershipError::Server(error.to_string()))?;
        let tasks = vec![
            tokio::spawn(accept_links(listener, server.clone(), tls.clone())),
            tokio::spawn(dial_links(
                server.clone(),
                node.incarnation,
                config.clone(),
                tls,
                pool,
            )),
            tokio::spawn(detect_failures(server.clone())),
        ];
        Ok(Self {
            server,
            listen,
            tasks,
        })
    }

    /// The address other nodes dial (the bound one, when the configured port was 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Incarnations of the nodes this one has an authenticated link to.
    pub async fn linked(&self) -> HashSet<Uuid> {
        sessions(&self.server).await.into_keys().collect()
    }

    /// Closes every link and stops dialing.
    pub fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.server.stop(Some("node stopping".into()));
    }
}

/// Authenticated links by the peer's incarnation (the host part of its node name).
async fn sessions(
    server: &ActorRef<NodeServerMessage>,
) -> HashMap<Uuid, NodeServerSessionInformation> {
    let Ok(sessions) = ractor::call_t!(server, NodeServerMessage::GetSessions, 1000) else {
        return HashMap::new();
    };
    sessions
        .into_values()
        .filter_map(|info| {
            let name = info.peer_name.as_ref()?.name.clone();
            let incarnation = name.rsplit('@').next()?.parse().ok()?;
            Some((incarnation, info))
        })
        .collect()
}

async fn accept_links(
    listener: TcpListener,
    server: ActorRef<NodeServerMessage>,
    tls: Option<Arc<ClusterTls>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_INBOUND_LINKS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cluster listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many cluster links open; refused one");
            continue;
        };
        let server = server.clone();
        let tls = tls.clone();
        // Off the accept loop: a TLS handshake takes round trips, and may stall.
        tokio::spawn(async move {
            let Some(link) = Link::open(stream, tls.as_deref(), Side::Accepted, Some(permit)).await
            else {
                return;
            };
            let _ = server.cast(NodeServerMessage::ConnectionOpenedExternal {
                stream: Box::new(link),
                is_server: true,
            });
        });
    }
}

async fn dial_links(
    server: ActorRef<NodeServerMessage>,
    me: Uuid,
    config: MembershipConfig,
    tls: Option<Arc<ClusterTls>>,
    pool: PgPool,
) {
    let mut ticker = tokio::time::interval(DIAL_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let linked = sessions(&server).await;
        let known = match nodes::peers(&pool, me, config.lease_ttl).await {
            Ok(known) => known,
            Err(error) => {
                tracing::debug!(%error, "cannot list cluster peers");
                Vec::new()
            }
        };
        let mut targets: Vec<String> = known
            .iter()
            .filter(|(incarnation, _)| !linked.contains_key(incarnation))
            .map(|(_, addr)| addr.clone())
            .collect();
        // Configured peers not (yet) known from the table: dialed until they show up.
        for peer in &config.peers {
            let listed = known.iter().any(|(_, addr)| addr == peer);
            let linked_to = linked.values().any(|info| &info.peer_addr == peer);
            if !listed && !linked_to {
                targets.push(peer.clone());
            }
        }
        for target in targets {
            dial(&server, &target, tls.as_deref()).await;
        }
    }
}

async fn dial(server: &ActorRef<NodeServerMessage>, target: &str, tls: Option<&ClusterTls>) {
    let stream = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%target, %error, "cannot dial a cluster peer");
            return;
        }
        Err(_) => {
            tracing::debug!(%target, "dialing a cluster peer timed out");
            return;
        }
    };
    if let Some(link) = Link::open(stream, tls, Side::Dialed(target), None).await {
        // The link is open (in TLS, when used); the cookie handshake goes on in the node server.
        let _ = ractor_cluster::client_connect_external(server, Box::new(link)).await;
    }
}

/// Pings every linked peer's gateway; a peer that misses [`MISSED_PINGS`] in a row has
/// its link closed, so its remote actors leave pg and requests for it fail fast.
async fn detect_failures(server: ActorRef<NodeServerMessage>) {
    let mut missed: HashMap<Uuid, u32> = HashMap::new();
    let mut ticker = tokio::time::interval(PING_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let linked = sessions(&server).await;
        missed.retain(|incarnation, _| linked.contains_key(incarnation));
        for (incarnation, info) in linked {
            if Gateways.ping(incarnation, PING_TIMEOUT).await {
                missed.remove(&incarnation);
                continue;
            }
            let count = missed.entry(incarnation).or_insert(0);
            *count += 1;
            if *count >= MISSED_PINGS {
                tracing::warn!(peer = %incarnation, "cluster peer stopped answering; link dropped");
                info.actor.stop(Some("peer stopped answering pings".into()));
                missed.remove(&incarnation);
            }
        }
    }
}

/// Which end of a link this node is.
enum Side<'a> {
    Accepted,
    /// Dialed to this `host:port`.
    Dialed(&'a str),
}

/// One cluster link: its socket, with keepalive and a user timeout, in TLS when the
/// cluster uses it, holding its share of the inbound cap for as long as the link lives.
struct Link {
    transport: Transport,
    peer: String,
    local: String,
    permit: Option<OwnedSemaphorePermit>,
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Link {
    /// Sets the socket options, then runs the TLS handshake when `tls` is given;
    /// `None` (logged) when either fails.
    async fn open(
        stream: TcpStream,
        tls: Option<&ClusterTls>,
        side: Side<'_>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<Self> {
        let (peer, local) = match configure(&stream) {
            Ok(addresses) => addresses,
            Err(error) => {
                tracing::warn!(%error, "cannot set up a cluster link socket");
                return None;
            }
        };
        let peer = peer.to_string();
        let transport = match (tls, side) {
            (None, _) => Transport::Plain(stream),
            (Some(tls), Side::Accepted) => {
                Transport::Tls(Box::new(tls.accept(stream, &peer).await?))
            }
            (Some(tls), Side::Dialed(target)) => {
                Transport::Tls(Box::new(tls.connect(stream, target).await?))
            }
        };
        Some(Self {
            transport,
            peer,
            local: local.to_string(),
            permit,
        })
    }
}

/// Keepalive and `TCP_USER_TIMEOUT` on the TCP socket (under TLS too); answers the
/// peer's and the local address.
fn configure(stream: &TcpStream) -> std::io::Result<(SocketAddr, SocketAddr)> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_RETRIES),
    )?;
    socket.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    Ok((stream.peer_addr()?, stream.local_addr()?))
}

impl ClusterBidiStream for Link {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        fn halves(
            read: impl tokio::io::AsyncRead + Unpin + Send + 'static,
            write: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
            permit: Option<OwnedSemaphorePermit>,
        ) -> (BoxRead, BoxWrite) {
            let read = PermitHolder {
                inner: read,
                _permit: permit,
            };
            (Box::new(read), Box::new(write))
        }
        match self.transport {
            Transport::Plain(stream) => {
                let (read, write) = stream.into_split();
                halves(read, write, self.permit)
            }
            Transport::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                halves(read, write, self.permit)
            }
        }
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }

    fn local_label(&self) -> Option<String> {
        Some(self.local.clone())
    }
}

/// The read half of a link, releasing the inbound slot when the link is gone.
struct PermitHolder<R> {
    inner: R,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for PermitHolder<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
