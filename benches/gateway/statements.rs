//! What one message costs PostgreSQL, statement by statement: `pg_stat_statements` is reset
//! before a phase and read after it, for the bench's database only, and each statement's
//! calls and execution time are divided by the messages the phase delivered. The profile
//! behind README's "what bounds it".
//!
//! The extension must be preloaded by the server (`shared_preload_libraries =
//! 'pg_stat_statements'`, then a restart); without it the bench says so and goes on.

use botwave::db::DbPool;

/// How many statements the report lists.
const TOP: usize = 15;

/// A phase being counted; `None` from [`Counter::start`] when the server cannot count.
pub struct Counter {
    pool: DbPool,
}

impl Counter {
    pub async fn start(pool: &DbPool) -> Option<Self> {
        let conn = pool.get().await.ok()?;
        let ready = async {
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await?;
            conn.query_one("SELECT pg_stat_statements_reset()", &[])
                .await?;
            Ok::<_, tokio_postgres::Error>(())
        };
        if let Err(error) = ready.await {
            println!(
                "  (statements per message not counted: {error}; preload pg_stat_statements \
                 to see them)"
            );
            return None;
        }
        Some(Self { pool: pool.clone() })
    }

    /// Prints the totals and the statements that cost most per unit of the phase's work:
    /// `units` of `unit` (the messages it delivered, the sessions it resumed).
    pub async fn report(self, units: usize, unit: &str) {
        let Ok(conn) = self.pool.get().await else {
            return;
        };
        let rows = match conn
            .query(
                "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements
                  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND query NOT ILIKE '%pg_stat_statements%'
                  ORDER BY total_exec_time DESC",
                &[],
            )
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                println!("  (cannot read pg_stat_statements: {error})");
                return;
            }
        };
        let per_unit = units.max(1) as f64;
        let calls: i64 = rows.iter().map(|row| row.get::<_, i64>(0)).sum();
        let time: f64 = rows.iter().map(|row| row.get::<_, f64>(1)).sum();
        println!(
            "  PostgreSQL per {unit}: {:.1} statements, {:.2} ms executing \
             ({} distinct statements)",
            calls as f64 / per_unit,
            time / per_unit,
            rows.len()
        );
        println!("    calls/unit  ms/unit  rows/call  statement");
        for row in rows.iter().take(TOP) {
            let calls: i64 = row.get(0);
            let time: f64 = row.get(1);
            let returned: i64 = row.get(2);
            let query: String = row.get(3);
            println!(
                "    {:>9.2} {:>8.3} {:>10.1}  {}",
                calls as f64 / per_unit,
                time / per_unit,
                returned as f64 / calls.max(1) as f64,
                one_line(&query, 110)
            );
        }
    }
}

/// `query` on one line, cut at `width` characters.
fn one_line(query: &str, width: usize) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(width) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
