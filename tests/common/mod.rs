//! Shared by every integration suite: a fresh, migrated PostgreSQL database per test, dropped
//! when the test ends.
//!
//! The server is `BOTWAVE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a superuser connection used only to create and drop databases). When that variable is unset
//! and nothing answers at the default, a throwaway cluster is started from the local PostgreSQL
//! binaries under the temp directory (the same embedded cluster `botwave serve` uses) and reused
//! by later test processes.

#![allow(dead_code)]

use std::time::Duration;

use botwave::db::{Database, DbPool, embedded::EmbeddedPostgres};
use tokio::sync::OnceCell;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    pub pool: DbPool,
    /// Connection URL of this test's database.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `botwave_test_<uuid>` and applies every migration.
    pub async fn create() -> Self {
        let server = server_url().await;
        let name = format!("botwave_test_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let url = with_database(&server, &name);
        let scratch = std::env::temp_dir().join(&name);
        let database = Database::open(Some(&url), &scratch, 8)
            .await
            .expect("migrate the test database");
        Self {
            pool: database.pool,
            url,
            name,
        }
    }
}

impl TestDatabase {
    /// A second, small pool on this database, as a node keeps for its lease work.
    #[allow(dead_code)] // not every suite starts session managers
    pub async fn lease_pool(&self) -> DbPool {
        botwave::db::connect(&self.url, 2)
            .await
            .expect("a lease pool on the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let Some(server) = SERVER.get().cloned() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of
        // its own to remove the database.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        });
        if let Ok(Err(error)) = dropped.join() {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

static SERVER: OnceCell<String> = OnceCell::const_new();

/// The admin URL of the server tests create their databases on.
async fn server_url() -> String {
    SERVER
        .get_or_init(|| async {
            let configured = std::env::var("BOTWAVE_TEST_DATABASE_URL").ok();
            let url = configured.clone().unwrap_or_else(|| DEFAULT_SERVER.to_owned());
            if answers(&url).await {
                return url;
            }
            assert!(
                configured.is_none(),
                "BOTWAVE_TEST_DATABASE_URL={url} does not answer"
            );
            let dir = std::env::temp_dir().join("botwave-test-postgres");
            let cluster = EmbeddedPostgres::start(&dir)
                .await
                .expect("no PostgreSQL at the default address, and none could be started from local binaries");
            // Not stopped on purpose: later test processes reuse it; it lives in the temp dir.
            cluster.url("postgres")
        })
        .await
        .clone()
}

async fn answers(url: &str) -> bool {
    let attempt = tokio_postgres::connect(url, tokio_postgres::NoTls);
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Ok(_))
    )
}

/// `url` with its database path replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut result = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}
