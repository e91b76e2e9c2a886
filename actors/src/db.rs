//! The PostgreSQL connection pool: bb8 over tokio-postgres, with each connection keeping the
//! statements it has prepared.
//!
//! `query_typed` sends an unnamed statement that PostgreSQL parses and plans on every call; on
//! the send path (a dozen statements per message, some of them large CTEs) that was a large
//! share of the database's CPU. [`PgConnection::query_cached`] prepares a statement once per
//! connection and afterwards only binds and executes it, so PostgreSQL's plan cache does the
//! rest. A [`PgConnection`] dereferences to the tokio-postgres `Client`, so everything else is
//! used as before.
//!
//! A prepared statement outlives the schema it was planned for: when a migration (run by
//! another node of the cluster, say) changes the columns a statement returns, PostgreSQL
//! refuses to run it ("cached plan must not change result type"). Such a statement is
//! forgotten and prepared again, once.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Error, NoTls, Row, Statement};

/// A statement parameter with its PostgreSQL type, as `query_typed` takes them.
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Statements one connection keeps prepared. The statements of this code base are a fixed
/// set of texts (a few built with `format!` vary in a small number of ways), so the bound is
/// a guard, not an eviction policy: when it is reached the cache starts again.
const MAX_PREPARED: usize = 256;

/// Makes the pool's connections.
#[derive(Clone, Debug)]
pub struct PgManager {
    config: Config,
}

impl PgManager {
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}

/// One pooled connection and the statements prepared on it.
pub struct PgConnection {
    client: Client,
    prepared: Mutex<HashMap<String, Statement>>,
    /// The lease fence this connection's session-level `botwave.fence` setting last
    /// named, when known (see [`crate::lease::Fence`]).
    fence: Mutex<Option<String>>,
}

impl PgConnection {
    /// Runs `sql` as a statement prepared on this connection (prepared on first use, with
    /// the types of `params`) and returns its rows.
    pub async fn query_cached(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        let values = &values(params);
        self.with_prepared(sql, params, |statement| async move {
            self.client.query(&statement, values).await
        })
        .await
    }

    /// Like [`query_cached`](Self::query_cached), for a statement whose rows are not read:
    /// answers how many rows it touched.
    pub async fn execute_cached(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        let values = &values(params);
        self.with_prepared(sql, params, |statement| async move {
            self.client.execute(&statement, values).await
        })
        .await
    }

    /// Runs `run` with `sql` prepared on this connection (see [`prepared`](Self::prepared));
    /// when the schema changed under the cached statement, prepares it again and runs once
    /// more. Statements are run outside transactions here (a transaction borrows the
    /// connection), so the retry is safe.
    pub async fn with_prepared<T, F, Fut>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        run: F,
    ) -> Result<T, Error>
    where
        F: Fn(Statement) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let statement = self.prepared(sql, params).await?;
        match run(statement).await {
            Err(error) if self.forget_if_outdated(sql, &error) => {
                run(self.prepared(sql, params).await?).await
            }
            result => result,
        }
    }

    /// Forgets the prepared `sql` when `error` says the schema changed under it, so that
    /// the next use prepares it again; answers whether it did.
    fn forget_if_outdated(&self, sql: &str, error: &Error) -> bool {
        let outdated = is_outdated_plan(error);
        if outdated {
            self.lock().remove(sql);
        }
        outdated
    }

    /// `sql` prepared on this connection for the types of `params`: from the cache, or
    /// prepared now (one round trip) and kept. For callers that pipeline statements, which
    /// must have every statement in hand before the first goes out.
    pub async fn prepared(&self, sql: &str, params: &[Param<'_>]) -> Result<Statement, Error> {
        if let Some(statement) = self.lock().get(sql) {
            return Ok(statement.clone());
        }
        let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
        let statement = self.client.prepare_typed(sql, &types).await?;
        let mut prepared = self.lock();
        if prepared.len() >= MAX_PREPARED {
            prepared.clear();
        }
        prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Whether this connection's fence setting is known to name `token`, so that a fenced
    /// statement can go out without setting it again. Knowing it wrong is safe: the
    /// database checks the setting itself and refuses a write it does not cover.
    pub fn fence_is(&self, token: &str) -> bool {
        lock(&self.fence).as_deref() == Some(token)
    }

    /// Records what the fence setting now names (`None`: unknown, set it again).
    pub fn set_fence_known(&self, token: Option<&str>) {
        *lock(&self.fence) = token.map(str::to_owned);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        lock(&self.prepared)
    }
}

/// The caches behind these locks hold no invariant a panic could break halfway, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `error` is PostgreSQL refusing a prepared statement because the tables it reads
/// changed shape since it was prepared. Its SQLSTATE (0A000, feature not supported) is
/// shared with unrelated refusals, so the message tells them apart.
fn is_outdated_plan(error: &Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED
            && db
                .message()
                .starts_with("cached plan must not change result type")
    })
}

/// The values of `params`, as `query` takes them.
pub fn values<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}

impl Deref for PgConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl bb8::ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = Error;

    async fn connect(&self) -> Result<PgConnection, Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(PgConnection {
            client,
            prepared: Mutex::new(HashMap::new()),
            fence: Mutex::new(None),
        })
    }

    async fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Error> {
        conn.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed()
    }
}
