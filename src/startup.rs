//! Builds a node from its settings — database, secrets, HTTP server — and runs it until told to
//! stop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use botwave_actors::{
    EventHub, NodeIdentity, SessionConfig, SessionManager,
    cluster::{
        membership::{Membership, MembershipConfig},
        nodes,
        tls::TlsFiles,
    },
    lease::LeaseTiming,
};

use crate::{
    auth::account_watch::AccountWatch,
    config::Settings,
    data_dir,
    db::{Database, DbError, OpenError},
    http,
    mail::Mailer,
    state::{AppState, Outbound},
    webhooks::{client::DeliveryClient, worker::Worker},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Database(#[from] OpenError),
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send email as configured: {0}")]
    Mail(String),
    #[error("cannot start the WhatsApp sessions: {0}")]
    Sessions(String),
    #[error("cannot join the cluster: {0}")]
    Cluster(String),
    #[error("cannot set up billing: {0}")]
    Billing(String),
    #[error("cannot set up webhook deliveries: {0}")]
    Webhooks(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Events a slow websocket client may fall behind by before it is dropped.
const EVENT_BUFFER: usize = 1024;

/// How long open requests get to finish once the node is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connections kept apart for the session supervisor's lease work (claims, renewals, the
/// heartbeat), which runs one statement at a time; the second covers a connection that is
/// being replaced.
const LEASE_POOL_SIZE: u32 = 2;

pub struct Application {
    local_addr: SocketAddr,
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    database: Database,
    limits: http::server::Limits,
    membership: Option<Membership>,
    shutdown_timeout: Duration,
    webhook_worker: Option<Worker>,
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, None).await
    }

    /// A node for `botwave demo`, whose dashboard may drive the simulator at `simulator_control`.
    pub async fn build_demo(
        settings: &Settings,
        simulator_control: String,
    ) -> Result<Self, StartupError> {
        Self::build_with(settings, Some(simulator_control)).await
    }

    async fn build_with(
        settings: &Settings,
        demo_simulator: Option<String>,
    ) -> Result<Self, StartupError> {
        // First, before any session or connection takes a descriptor: each is one.
        let limits = http::server::Limits::from_settings(&settings.http).fit_open_files();
        let data_dir_error = |source| StartupError::DataDir {
            path: settings.data_dir.clone(),
            source,
        };
        let jwt_secret = match &settings.auth.jwt_secret {
            Some(secret) => secret.clone(),
            None => data_dir::load_or_create_secret(&settings.data_dir, "jwt_secret")
                .map_err(data_dir_error)?,
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        let database = Database::open(
            settings.database.url.as_deref(),
            &settings.data_dir,
            settings.database.pool_size,
        )
        .await?;
        let events = EventHub::new(EVENT_BUFFER);
        let node = NodeIdentity::new(settings.cluster.node_name());
        let cluster = &settings.cluster;
        let membership = match (cluster.listen, &cluster.cookie) {
            (Some(listen), Some(cookie)) => Some(
                Membership::start(
                    &node,
                    MembershipConfig {
                        listen,
                        peers: cluster.peers.clone(),
                        cookie: cookie.clone(),
                        lease_ttl: cluster.lease_ttl(),
                        tls: match (&cluster.tls_cert, &cluster.tls_key, &cluster.tls_ca) {
                            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
                                cert: cert.clone(),
                                key: key.clone(),
                                ca: ca.clone(),
                            }),
                            _ => None,
                        },
                    },
                    database.pool.clone(),
                )
                .await
                .map_err(|e| StartupError::Cluster(e.to_string()))?,
            ),
            _ => None,
        };
        let cluster_addr = membership
            .as_ref()
            .map(|membership| membership.listen_addr().to_string());
        nodes::register(
            &database.pool,
            &node,
            &local_addr.to_string(),
            cluster_addr.as_deref(),
        )
        .await
        .map_err(|e| StartupError::Cluster(e.to_string()))?;
        tracing::info!(node = %node.name, incarnation = %node.incarnation, cluster = ?cluster_addr, "node identity");
        let lease_pool = crate::db::connect(&database.url, LEASE_POOL_SIZE)
            .await
            .map_err(|e| StartupError::Database(OpenError::Db(e)))?;
        let sessions = SessionManager::start(
            database.pool.clone(),
            lease_pool,
            events.clone(),
            SessionConfig {
                whatsapp_url: settings.whatsapp.url.clone(),
                resume_rate: settings.whatsapp.resume_rate,
                lease: LeaseTiming::new(cluster.lease_ttl()),
                pacing: settings.pacing.clone(),
                ..SessionConfig::default()
            },
            node,
        )
        .await
        .map_err(|e| StartupError::Sessions(e.to_string()))?;
        let accounts = AccountWatch::start(&database.url)
            .map_err(|e| StartupError::Database(OpenError::Db(DbError::InvalidUrl(e))))?;
        let mailer = Mailer::from_settings(&settings.smtp, demo_simulator.is_some())
            .map_err(StartupError::Mail)?;
        let hooks = &settings.webhooks;
        let webhook_client = DeliveryClient::new(
            hooks.allow_private_targets,
            Duration::from_millis(hooks.connect_timeout_ms),
            Duration::from_millis(hooks.request_timeout_ms),
        )
        .map_err(|e| StartupError::Webhooks(e.to_string()))?;
        let webhook_worker = Worker {
            pool: database.pool.clone(),
            database_url: database.url.clone(),
            node: sessions.node().incarnation,
            settings: hooks.clone(),
            client: webhook_client.clone(),
            events: events.clone(),
            metrics: crate::metrics::WebhookMetrics::default(),
        };
        let mut state = AppState::new(
            settings,
            database.pool.clone(),
            &jwt_secret,
            sessions,
            events,
            accounts,
            Outbound {
                mailer,
                webhook_client,
            },
        );
        state.demo_simulator = demo_simulator;
        state.billing = crate::billing::Billing::from_settings(&settings.billing)
            .map_err(StartupError::Billing)?;
        state.webhook_metrics = webhook_worker.metrics.clone();
        if settings.http.public_url.is_none() {
            // The address actually bound (`listen` may say port 0).
            state.public_url = format!("http://{local_addr}");
        }
        let state = Arc::new(state);
        Ok(Self {
            local_addr,
            listener,
            state,
            database,
            limits,
            membership,
            shutdown_timeout: settings.cluster.shutdown_timeout(),
            webhook_worker: Some(webhook_worker),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's event hub: what its websockets deliver (for embedding, and for tests that
    /// need more events than a session produces).
    pub fn events(&self) -> EventHub {
        self.state.events.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The (method, path template) of every operation this node serves, from the route table
    /// its router is assembled from.
    pub fn served_operations(&self) -> Vec<(String, String)> {
        http::table(&self.state)
            .into_iter()
            .map(|route| (route.method.to_string(), route.path))
            .collect()
    }

    pub fn pool(&self) -> &crate::db::DbPool {
        &self.state.pool
    }

    /// The address other nodes reach this one at, when it links to a cluster.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.membership.as_ref().map(Membership::listen_addr)
    }

    /// Serves until `shutdown` resolves; then, within the configured shutdown timeout, hands
    /// this node's sessions to the others, gives open requests a grace period, leaves the
    /// cluster and releases the database (stopping the embedded cluster if this node
    /// started it).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()> + Send + 'static) {
        // Deliveries stop (and give their locks back) as soon as the node is stopping.
        let webhooks = self
            .webhook_worker
            .take()
            .map(|worker| tokio::spawn(worker.run(self.state.stopping.subscribe())));
        let state = self.state.clone();
        let timeout = self.shutdown_timeout;
        let shutdown = async move {
            shutdown.await;
            crate::systemd::stopping();
            state.stopping.send_replace(true);
            tracing::info!("shutting down: handing sessions over");
            // Sessions first, while requests are still served and the links to the other
            // nodes are up: they claim what this node gives back.
            let handed_over = tokio::time::timeout(timeout, state.sessions.shutdown()).await;
            if handed_over.is_err() {
                tracing::warn!(
                    "handing sessions over timed out; their leases expire by themselves"
                );
            }
        };
        let routes = http::service(self.state.clone());
        tracing::info!(addr = %self.local_addr, "botwave is listening");
        let serve =
            http::server::serve(self.listener, routes, self.limits, shutdown, SHUTDOWN_GRACE);
        crate::systemd::ready();
        let watchdog = crate::systemd::spawn_watchdog();
        serve.await;
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        let node = self.state.sessions.node().incarnation;
        if let Err(error) = nodes::mark_stopped(&self.state.pool, node).await {
            tracing::warn!(%error, "cannot record this node as stopped");
        }
        if let Some(membership) = self.membership {
            membership.stop();
        }
        drop(self.state);
        self.database.close().await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
