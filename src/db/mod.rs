//! PostgreSQL access: the connection pool, the migration runner and the embedded cluster that
//! serves as the default database.

pub mod embedded;
pub mod migrate;

use std::time::Duration;

use tokio_postgres::NoTls;

/// The pool every part of a node shares (the same type as `botwave_actors::PgPool`).
pub type DbPool = botwave_actors::PgPool;

/// What can go wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] bb8::RunError<tokio_postgres::Error>),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Opens a pool on `url` and checks that a connection can be made.
pub async fn connect(url: &str, max_size: u32) -> Result<DbPool, DbError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(DbError::InvalidUrl)?;
    // A database that vanished must show as failing queries within seconds, not after the
    // kernel gives up retransmitting: lease renewals depend on it. A connect timeout in the URL
    // wins.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .tcp_user_timeout(Duration::from_secs(10));
    // bb8 retries failed connects until its timeout and then reports only "timed out": try once
    // directly so that a wrong password or an unreachable host fails start-up with the reason.
    let (client, connection) = config.connect(NoTls).await?;
    drop(client);
    drop(connection);
    let manager = botwave_actors::db::PgManager::new(config);
    let pool = bb8::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        // A round trip on every checkout would double the cost of most queries; a connection
        // that died is noticed by its first statement (and by keepalives), and the pool drops
        // connections that report themselves closed.
        .test_on_check_out(false)
        .build(manager)
        .await?;
    Ok(pool)
}

/// The node's database: a pool on the configured server, or on the embedded cluster it started.
pub struct Database {
    pub pool: DbPool,
    /// Where the pool connects, for the few connections that cannot be pooled (LISTEN).
    pub url: String,
    embedded: Option<embedded::EmbeddedPostgres>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Database {
    /// Connects to `url`, or to the embedded cluster under `data_dir` when there is none, and
    /// applies pending migrations.
    pub async fn open(
        url: Option<&str>,
        data_dir: &std::path::Path,
        pool_size: u32,
    ) -> Result<Self, OpenError> {
        let (url, embedded) = match url {
            Some(url) => (url.to_owned(), None),
            None => {
                let cluster = embedded::EmbeddedPostgres::start(data_dir).await?;
                (cluster.url(embedded::DATABASE_NAME), Some(cluster))
            }
        };
        let pool = match connect(&url, pool_size).await {
            Ok(pool) => pool,
            Err(error) => {
                if let Some(cluster) = embedded {
                    let _ = cluster.stop().await;
                }
                return Err(error.into());
            }
        };
        let database = Self {
            pool,
            url,
            embedded,
        };
        migrate::run(&database.pool).await?;
        Ok(database)
    }

    /// Stops the embedded cluster if this process started it.
    pub async fn close(self) {
        drop(self.pool);
        if let Some(cluster) = self.embedded
            && let Err(error) = cluster.stop().await
        {
            tracing::warn!(%error, "could not stop the embedded PostgreSQL");
        }
    }
}
