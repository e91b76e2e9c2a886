//! Who runs a session: the `wa_leases` table, and the [`Fence`] every durable write made
//! for a session carries.
//!
//! A lease names the node incarnation that runs a session, an epoch (the fencing token,
//! one more on every acquisition) and an expiry in the database's clock. A node claims a
//! session only while its lease is free or expired, renews everything it holds in one
//! statement per tick, and gives a lease back by expiring it. It stops a session itself
//! once the session's local deadline passes without a renewal: the deadline is measured
//! from *before* the renewal was sent and lies a margin short of the lease's time to
//! live, so the old owner is down before the database lets anyone else claim.
//!
//! The database enforces the rest (migrations/0007_cluster.sql): a write to a session's
//! state, outbox progress or WhatsApp store is refused with SQLSTATE [`FENCED_SQLSTATE`]
//! unless the connection's `botwave.fence` setting names the session's current lease.
//! A node that was frozen, or cut off from PostgreSQL, therefore cannot corrupt a
//! session that moved on while it was away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::Statement;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::PgPool;
use crate::db::{self, Param, PgConnection};
use crate::error::SessionError;

/// The error code of a write the fence refused.
pub const FENCED_SQLSTATE: &str = "BW409";

/// How long leases live and how much earlier than the database a node gives up.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTiming {
    /// The lease's time to live in the database, renewed every `ttl / 4`.
    pub ttl: Duration,
    /// How much earlier than the database's expiry the owner stops the session.
    pub margin: Duration,
}

impl LeaseTiming {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            margin: ttl / 4,
        }
    }

    /// How often a node renews what it holds.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 4
    }

    /// The local deadline of a lease whose claim or renewal was sent at `sent`.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.ttl.saturating_sub(self.margin)
    }

    fn ttl_secs(&self) -> f64 {
        self.ttl.as_secs_f64()
    }
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self::new(Duration::from_secs(8))
    }
}

/// The lease a node holds on one session, as its writes carry it. Cheap to clone; clones
/// share the deadline, so a renewal or a revocation is seen by every holder at once.
#[derive(Clone)]
pub struct Fence {
    inner: Arc<FenceInner>,
}

struct FenceInner {
    session_id: Uuid,
    epoch: i64,
    token: String,
    deadline: Mutex<Instant>,
    revoked: AtomicBool,
    lost: Notify,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("session_id", &self.inner.session_id)
            .field("epoch", &self.inner.epoch)
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl Fence {
    fn new(session_id: Uuid, epoch: i64, deadline: Instant) -> Self {
        Self {
            inner: Arc::new(FenceInner {
                session_id,
                epoch,
                token: format!("{session_id}/{epoch}"),
                deadline: Mutex::new(deadline),
                revoked: AtomicBool::new(false),
                lost: Notify::new(),
            }),
        }
    }

    /// A lease this node takes itself to hold, without asking: for code that must build
    /// a store it never writes with (the database checks every write anyway).
    #[doc(hidden)]
    pub fn assumed(session_id: Uuid, epoch: i64, valid_for: Duration) -> Self {
        Self::new(session_id, epoch, Instant::now() + valid_for)
    }

    pub fn session_id(&self) -> Uuid {
        self.inner.session_id
    }

    pub fn epoch(&self) -> i64 {
        self.inner.epoch
    }

    /// The value of the `botwave.fence` setting for this lease.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    fn deadline(&self) -> Instant {
        *self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Still ours as far as this node can tell: not revoked, local deadline not passed.
    pub fn is_valid(&self) -> bool {
        !self.inner.revoked.load(Ordering::Acquire) && Instant::now() < self.deadline()
    }

    /// `Ok` while [`is_valid`](Self::is_valid); the refusal otherwise.
    pub fn check(&self) -> Result<(), SessionError> {
        if self.is_valid() {
            Ok(())
        } else {
            Err(SessionError::LeaseLost)
        }
    }

    /// A renewal sent at `sent` succeeded.
    fn extend(&self, deadline: Instant) {
        let mut current = self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if deadline > *current {
            *current = deadline;
        }
    }

    /// The lease is gone (lost, released, or handed over): nothing may be written with
    /// it any more.
    pub fn revoke(&self) {
        self.inner.revoked.store(true, Ordering::Release);
        self.inner.lost.notify_waiters();
    }

    /// Resolves once the lease is revoked or its local deadline passes without a
    /// renewal. Runs on timers only, so it fires even when the database hangs.
    pub async fn lost(&self) {
        loop {
            let notified = self.inner.lost.notified();
            if !self.is_valid() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(self.deadline()) => {}
            }
        }
    }

    /// Names this lease on `conn` for the statements that follow on it. Session-level,
    /// so it also covers statements outside a transaction; every fenced writer sets its
    /// own before writing, and the database checks that the fence names the session of
    /// the row written.
    pub async fn apply(&self, conn: &PgConnection) -> Result<(), SessionError> {
        conn.set_fence_known(None);
        conn.execute_cached(SET_FENCE, &[(&self.token(), Type::TEXT)])
            .await?;
        conn.set_fence_known(Some(self.token()));
        Ok(())
    }

    /// Runs one write of this session under the lease, on a connection from `pool`.
    pub async fn write(
        &self,
        pool: &PgPool,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, SessionError> {
        self.check()?;
        let conn = pool.get().await?;
        self.execute(&conn, sql, params).await
    }

    /// Runs one fenced statement and returns its rows: the setting and the statement go out
    /// pipelined, in one round trip. The database refusing the fence is
    /// [`SessionError::LeaseLost`].
    pub async fn execute(
        &self,
        conn: &PgConnection,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, SessionError> {
        let statement = self.prepare(conn, sql).await?;
        Ok(statement.query(conn, params).await?)
    }

    /// `sql` to run under this lease on `conn`, once the lease is known to hold (checked
    /// first: a statement must not go out behind a setting that was refused). The fence
    /// setting is prepared here; `sql` is prepared (or taken from the cache) when it runs.
    pub async fn prepare<'f>(
        &'f self,
        conn: &PgConnection,
        sql: &'f str,
    ) -> Result<FencedStatement<'f>, SessionError> {
        self.check()?;
        let set_fence = conn
            .prepared(SET_FENCE, &[(&self.token(), Type::TEXT)])
            .await?;
        Ok(FencedStatement {
            fence: self,
            sql,
            set_fence,
        })
    }
}

/// A statement prepared to run under a lease ([`Fence::prepare`]). Its errors are the
/// database's own, with their SQLSTATE (`BW409`: the fence was refused).
pub struct FencedStatement<'f> {
    fence: &'f Fence,
    sql: &'f str,
    set_fence: Statement,
}

impl FencedStatement<'_> {
    /// Runs it with `params` and returns its rows.
    pub async fn query(
        &self,
        conn: &PgConnection,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let values = &db::values(params);
        conn.with_prepared(self.sql, params, |statement| async move {
            self.fenced(conn, conn.query(&statement, values)).await
        })
        .await
    }

    /// Like [`query`](Self::query), for a statement whose rows are not read: answers how
    /// many rows it touched.
    pub async fn execute(
        &self,
        conn: &PgConnection,
        params: &[Param<'_>],
    ) -> Result<u64, tokio_postgres::Error> {
        let values = &db::values(params);
        conn.with_prepared(self.sql, params, |statement| async move {
            self.fenced(conn, conn.execute(&statement, values)).await
        })
        .await
    }

    /// Runs `statement` (a query on `conn`, not yet polled) behind the fence setting. The
    /// setting is session-level and stays on the connection, so it is sent only when the
    /// connection is not known to name this lease already; then it goes out first in the
    /// same round trip (biased: each future sends its statement on its first poll).
    async fn fenced<T>(
        &self,
        conn: &PgConnection,
        statement: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, tokio_postgres::Error> {
        let token = self.fence.token();
        let result = if conn.fence_is(token) {
            statement.await
        } else {
            conn.set_fence_known(None);
            let value: [&(dyn ToSql + Sync); 1] = [&token];
            let (applied, result) = tokio::join!(
                biased;
                conn.execute(&self.set_fence, &value),
                statement,
            );
            applied?;
            conn.set_fence_known(Some(token));
            result
        };
        if result.as_ref().is_err_and(is_fenced) {
            // The database disagrees about the setting: name the lease again next time.
            conn.set_fence_known(None);
        }
        result
    }
}

/// Names the lease in the connection's `botwave.fence` setting (see [`Fence::apply`]).
const SET_FENCE: &str = "SELECT set_config('botwave.fence', $1, false)";

/// Whether `error` is the database refusing a write whose fence is stale.
pub fn is_fenced(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| code.code() == FENCED_SQLSTATE)
}

/// Claims the lease of `session_id` for `owner` if it is free or expired.
pub async fn claim(
    pool: &PgPool,
    session_id: Uuid,
    owner: Uuid,
    timing: LeaseTiming,
) -> Result<Option<Fence>, SessionError> {
    let conn = pool.get().await?;
    let sent = Instant::now();
    let row = conn
        .query_typed_opt(
            "INSERT INTO wa_leases AS l (session_id, owner, epoch, expires_at)
             VALUES ($1, $2, 1, now() + make_interval(secs => $3))
             ON CONFLICT (session_id) DO UPDATE
                SET owner = EXCLUDED.owner, epoch = l.epoch + 1,
                    expires_at = EXCLUDED.expires_at, acquired_at = now()
              WHERE l.expires_at <= now()
             RETURNING epoch",
            &[
                (&session_id, Type::UUID),
                (&owner, Type::UUID),
                (&timing.ttl_secs(), Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.map(|row| Fence::new(session_id, row.get(0), timing.deadline(sent))))
}

/// A session a node claimed in a sweep.
pub struct Claimed {
    pub user_id: Uuid,
    pub fence: Fence,
}

/// Claims up to `limit` sessions that should run and have no live owner: wanted, of an
/// enabled user, with a free or expired lease. Safe to run on every node at once: the
/// conditional upsert gives each session to one of them.
pub async fn claim_orphans(
    pool: &PgPool,
    owner: Uuid,
    limit: i64,
    timing: LeaseTiming,
) -> Result<Vec<Claimed>, SessionError> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let conn = pool.get().await?;
    let sent = Instant::now();
    let rows = conn
        .query_typed(
            "WITH orphans AS (
                 SELECT s.id FROM wa_sessions s
                   JOIN users u ON u.id = s.user_id
                   LEFT JOIN wa_leases l ON l.session_id = s.id
                  WHERE s.wanted AND u.disabled_at IS NULL
                    AND (l.session_id IS NULL OR l.expires_at <= now())
                  ORDER BY s.updated_at
                  LIMIT $3
             ), claimed AS (
                 INSERT INTO wa_leases AS l (session_id, owner, epoch, expires_at)
                 SELECT id, $1, 1, now() + make_interval(secs => $2) FROM orphans
                 ON CONFLICT (session_id) DO UPDATE
                    SET owner = EXCLUDED.owner, epoch = l.epoch + 1,
                        expires_at = EXCLUDED.expires_at, acquired_at = now()
                  WHERE l.expires_at <= now()
                 RETURNING session_id, epoch
             )
             SELECT c.session_id, c.epoch, s.user_id
               FROM claimed c JOIN wa_sessions s ON s.id = c.session_id",
            &[
                (&owner, Type::UUID),
                (&timing.ttl_secs(), Type::FLOAT8),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    let deadline = timing.deadline(sent);
    Ok(rows
        .iter()
        .map(|row| Claimed {
            user_id: row.get(2),
            fence: Fence::new(row.get(0), row.get(1), deadline),
        })
        .collect())
}

/// Renews every lease in `held` in one statement. Each one renewed gets its deadline
/// moved; the ones the database no longer has for us are returned (and revoked).
pub async fn renew(
    pool: &PgPool,
    owner: Uuid,
    held: &[Fence],
    timing: LeaseTiming,
) -> Result<Vec<Fence>, SessionError> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let conn = pool.get().await?;
    let sessions: Vec<Uuid> = held.iter().map(Fence::session_id).collect();
    let epochs: Vec<i64> = held.iter().map(Fence::epoch).collect();
    let sent = Instant::now();
    let rows = conn
        .query_typed(
            "UPDATE wa_leases l SET expires_at = now() + make_interval(secs => $4)
               FROM unnest($2::uuid[], $3::bigint[]) AS h(session_id, epoch)
              WHERE l.session_id = h.session_id AND l.epoch = h.epoch
                AND l.owner = $1 AND l.expires_at > now()
             RETURNING l.session_id",
            &[
                (&owner, Type::UUID),
                (&sessions, Type::UUID_ARRAY),
                (&epochs, Type::INT8_ARRAY),
                (&timing.ttl_secs(), Type::FLOAT8),
            ],
        )
        .await?;
    let renewed: std::collections::HashSet<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    let deadline = timing.deadline(sent);
    let mut lost = Vec::new();
    for fence in held {
        if renewed.contains(&fence.session_id()) {
            fence.extend(deadline);
        } else {
            fence.revoke();
            lost.push(fence.clone());
        }
    }
    Ok(lost)
}

/// Gives a lease back (its session is stopped): any node may claim it from now on.
pub async fn release(pool: &PgPool, fence: &Fence) -> Result<(), SessionError> {
    fence.revoke();
    let conn = pool.get().await?;
    conn.execute_typed(
        "UPDATE wa_leases SET expires_at = now()
          WHERE session_id = $1 AND epoch = $2 AND expires_at > now()",
        &[
            (&fence.session_id(), Type::UUID),
            (&fence.epoch(), Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

/// The live owner of a session: its node incarnation, if its lease has not expired.
pub async fn owner_of(pool: &PgPool, session_id: Uuid) -> Result<Option<Uuid>, SessionError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            "SELECT owner FROM wa_leases WHERE session_id = $1 AND expires_at > now()",
            &[(&session_id, Type::UUID)],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
