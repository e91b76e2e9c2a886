//! The default database: a private PostgreSQL cluster under the data directory, built from the
//! PostgreSQL binaries installed on the machine, so `botwave serve` works with no database set up.
//!
//! The cluster is created once (`initdb`) and started on a free loopback port. A cluster that is
//! already running — another botwave process on the same data directory, e.g. `botwave admin`
//! while the node runs — is reused and left running; one this process started is stopped by
//! [`EmbeddedPostgres::stop`]. PostgreSQL refuses to run as root, so when botwave runs as root the
//! cluster belongs to, and runs as, the `postgres` system user.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Stdio,
};

use rand::distr::{Alphanumeric, SampleString};
use tokio::process::Command;

use crate::data_dir::write_private;

/// Name of the database botwave uses inside the embedded cluster.
pub const DATABASE_NAME: &str = "botwave";

const INSTALL_HINT: &str = "install PostgreSQL (Debian: `apt-get install postgresql`) or set \
     BOTWAVE_DATABASE_URL / database.url to an existing server";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql: {INSTALL_HINT}"
    )]
    NoBinaries,
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as: {INSTALL_HINT}"
    )]
    NoUnprivilegedUser,
    #[error("{action} failed for the embedded PostgreSQL cluster in {dir}: {detail}")]
    Command {
        action: &'static str,
        dir: PathBuf,
        detail: String,
    },
    #[error("embedded PostgreSQL: {0}")]
    Io(#[from] std::io::Error),
    #[error("embedded PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// A running embedded cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    port: u16,
    password: String,
    binaries: PathBuf,
    run_as: Option<SystemUser>,
    started_here: bool,
}

#[derive(Debug, Clone, Copy)]
struct SystemUser {
    uid: u32,
    gid: u32,
}

impl EmbeddedPostgres {
    /// Creates (first time) and starts (unless running) the cluster in `data_dir/postgres`, and
    /// makes sure the botwave database exists.
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let binaries = find_binaries().ok_or(EmbeddedError::NoBinaries)?;
        let run_as = if running_as_root()? {
            Some(postgres_system_user()?.ok_or(EmbeddedError::NoUnprivilegedUser)?)
        } else {
            None
        };
        std::fs::create_dir_all(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        let cluster_dir = data_dir.join("postgres");
        let password_file = data_dir.join("postgres.password");

        let mut cluster = Self {
            cluster_dir,
            port: 0,
            password: String::new(),
            binaries,
            run_as,
            started_here: false,
        };
        if !cluster.cluster_dir.join("PG_VERSION").exists() {
            cluster.init(&data_dir, &password_file).await?;
        }
        cluster.password = std::fs::read_to_string(&password_file)?.trim().to_owned();

        match cluster.running_port()? {
            Some(port) => cluster.port = port,
            None => cluster.launch().await?,
        }
        cluster.create_database().await?;
        Ok(cluster)
    }

    /// Connection URL for `database` inside the cluster.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Stops the cluster if this process started it; a reused cluster keeps running for its owner.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        if self.started_here {
            let dir = self.cluster_dir.display().to_string();
            self.pg_ctl("stop", &["-D", &dir, "-m", "fast", "-w"])
                .await?;
            tracing::info!("stopped embedded PostgreSQL");
        }
        Ok(())
    }

    async fn init(&self, data_dir: &Path, password_file: &Path) -> Result<(), EmbeddedError> {
        tracing::info!(dir = %self.cluster_dir.display(), "creating embedded PostgreSQL cluster");
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
        write_private(password_file, &password)?;

        std::fs::create_dir_all(&self.cluster_dir)?;
        std::fs::set_permissions(&self.cluster_dir, std::fs::Permissions::from_mode(0o700))?;
        // initdb reads the superuser password from a file it must be able to open (and the
        // cluster directory must be empty): a private file beside it, removed right after.
        let initdb_password = data_dir.join(".initdb-password");
        write_private(&initdb_password, &password)?;
        if let Some(user) = self.run_as {
            if let Some(blocked) = untraversable_ancestor(data_dir, user) {
                return Err(EmbeddedError::Command {
                    action: "initdb",
                    dir: self.cluster_dir.clone(),
                    detail: format!(
                        "PostgreSQL runs as the postgres user, which cannot enter {}; \
                         choose a data directory outside it (--data-dir /var/lib/botwave)",
                        blocked.display()
                    ),
                });
            }
            // The postgres user must be able to walk down to its directory; 0711 lets it pass
            // through the data directory without listing or reading anything in it.
            let mode = std::fs::metadata(data_dir)?.permissions().mode();
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode | 0o711))?;
            std::os::unix::fs::chown(&self.cluster_dir, Some(user.uid), Some(user.gid))?;
            std::os::unix::fs::chown(&initdb_password, Some(user.uid), Some(user.gid))?;
        }

        let dir = self.cluster_dir.display().to_string();
        let pwfile = format!("--pwfile={}", initdb_password.display());
        let result = self
            .run(
                "initdb",
                "initdb",
                &[
                    "-D",
                    &dir,
                    "-U",
                    "postgres",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    &pwfile,
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
            )
            .await;
        let _ = std::fs::remove_file(&initdb_password);
        result
    }

    async fn launch(&mut self) -> Result<(), EmbeddedError> {
        self.port = free_port()?;
        let dir = self.cluster_dir.display().to_string();
        let log = self.cluster_dir.join("server.log").display().to_string();
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k '{dir}'", self.port);
        let started = self
            .pg_ctl(
                "start",
                &["-D", &dir, "-l", &log, "-w", "-t", "60", "-o", &options],
            )
            .await;
        match started {
            Ok(()) => {
                self.started_here = true;
                tracing::info!(port = self.port, "started embedded PostgreSQL");
                Ok(())
            }
            // Another botwave process may have started it between our check and our start.
            Err(error) => match self.running_port()? {
                Some(port) => {
                    self.port = port;
                    Ok(())
                }
                None => Err(error),
            },
        }
    }

    /// The port of the postmaster running on this cluster, read from `postmaster.pid` (its
    /// fourth line), if that process is alive.
    fn running_port(&self) -> Result<Option<u16>, EmbeddedError> {
        let Ok(pid_file) = std::fs::read_to_string(self.cluster_dir.join("postmaster.pid")) else {
            return Ok(None);
        };
        let mut lines = pid_file.lines();
        let pid = lines.next().map(str::trim).unwrap_or_default();
        let port = lines.nth(2).and_then(|line| line.trim().parse().ok());
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        Ok(port.filter(|_| alive))
    }

    async fn create_database(&self) -> Result<(), EmbeddedError> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&DATABASE_NAME],
            )
            .await?
            .is_some();
        if !exists {
            // Identifiers cannot be bound as parameters; the name is a constant.
            let created = client
                .batch_execute(&format!("CREATE DATABASE {DATABASE_NAME}"))
                .await;
            if let Err(error) = created
                && error.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
            {
                return Err(error.into());
            }
        }
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// `pg_ctl <action> <args…>`.
    async fn pg_ctl(&self, action: &'static str, args: &[&str]) -> Result<(), EmbeddedError> {
        let mut full = vec![action];
        full.extend_from_slice(args);
        self.run(action, "pg_ctl", &full).await
    }

    async fn run(
        &self,
        action: &'static str,
        program: &str,
        args: &[&str],
    ) -> Result<(), EmbeddedError> {
        let mut command = Command::new(self.binaries.join(program));
        command
            .args(args)
            .current_dir(&self.cluster_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Under a Type=notify unit these name the node's systemd socket: PostgreSQL, built
            // with systemd support, would report itself ready there as if it were the node.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        if let Some(user) = self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let output = command.output().await?;
        if output.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        if action == "start" {
            let log =
                std::fs::read_to_string(self.cluster_dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            detail.push_str(&format!(" (server.log: {})", tail.join(" | ")));
        }
        Err(EmbeddedError::Command {
            action,
            dir: self.cluster_dir.clone(),
            detail,
        })
    }
}

/// The directory holding `initdb` and `pg_ctl`: PATH first, then the newest Debian-style
/// `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| has_tools(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The first directory above `dir` that `user` may not pass through (no search permission for
/// it as owner, group or other), e.g. a root-only home directory.
fn untraversable_ancestor(dir: &Path, user: SystemUser) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|ancestor| {
        let meta = std::fs::metadata(ancestor).ok()?;
        let mode = meta.permissions().mode();
        let passable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!passable).then(|| ancestor.to_owned())
    })
}

fn running_as_root() -> Result<bool, std::io::Error> {
    // /proc/self is owned by the process's effective user.
    Ok(std::fs::metadata("/proc/self")?.uid() == 0)
}

/// The `postgres` user from /etc/passwd (`name:x:uid:gid:...`).
fn postgres_system_user() -> Result<Option<SystemUser>, std::io::Error> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some(SystemUser {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    }))
}

fn free_port() -> Result<u16, std::io::Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
