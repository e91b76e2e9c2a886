//! The `botwave` command line: `serve`, `migrate`, `admin` and `demo`.

use std::{io::BufRead, net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};

use crate::{
    auth::password,
    config::Settings,
    db::Database,
    domain::{Email, NewPassword, Role},
    startup::{Application, shutdown_signal},
    users,
};

#[derive(Parser)]
#[command(
    name = "botwave",
    version,
    about = "Self-hosted, multi-user WhatsApp automation gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: HTTP API, dashboard and WhatsApp sessions.
    Serve(NodeArgs),
    /// Apply pending database migrations and exit.
    Migrate(NodeArgs),
    /// Manage accounts from the command line (works while the node runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Try botwave on one machine: a node on the embedded database, with a generated admin login.
    Demo(NodeArgs),
    /// Operate the cluster of nodes sharing this database (works while the nodes run).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Move every session of node NODE to the other nodes; it takes no new ones until undrained.
    Drain {
        /// The node's `cluster.node_name`.
        node_name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Let node NODE take sessions again.
    Undrain {
        node_name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the nodes: name, address, sessions, last heartbeat.
    Status {
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account. The password is read from stdin or BOTWAVE_ADMIN_PASSWORD.
    Create {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Set a new password for an account (read from stdin or BOTWAVE_ADMIN_PASSWORD); this logs
    /// the account out everywhere.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Where a node's settings come from; flags win over the environment and the file.
#[derive(Args, Clone)]
struct NodeArgs {
    /// TOML config file (see config/botwave.toml).
    #[arg(long, env = "BOTWAVE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory for generated secrets and the embedded database.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Startup(#[from] crate::startup::StartupError),
    #[error(transparent)]
    Database(#[from] crate::db::OpenError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl NodeArgs {
    fn settings(&self) -> Result<Settings, CliError> {
        let mut settings = Settings::load(self.config.as_deref(), |key| std::env::var(key).ok())?;
        if let Some(listen) = self.listen {
            settings.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            settings.data_dir = dir.clone();
        }
        Ok(settings)
    }

    async fn database(&self) -> Result<Database, CliError> {
        let settings = self.settings()?;
        Ok(Database::open(settings.database.url.as_deref(), &settings.data_dir, 2).await?)
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(&args.settings()?).await,
        Command::Migrate(args) => {
            // Opening the database applies the migrations.
            args.database().await?.close().await;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Admin { command } => admin(command).await,
        Command::Demo(args) => demo(args).await,
        Command::Cluster { command } => cluster(command).await,
    }
}

async fn cluster(command: ClusterCommand) -> Result<(), CliError> {
    use botwave_actors::cluster::nodes;
    let failed = |error: botwave_actors::SessionError| CliError::Failed(error.to_string());
    match command {
        ClusterCommand::Drain { node_name, node } => {
            set_draining(&node, &node_name, true).await?;
            println!("{node_name} is draining: its sessions move to the other nodes");
            Ok(())
        }
        ClusterCommand::Undrain { node_name, node } => {
            set_draining(&node, &node_name, false).await?;
            println!("{node_name} takes sessions again");
            Ok(())
        }
        ClusterCommand::Status { node } => {
            let settings = node.settings()?;
            let database = node.database().await?;
            let listed = nodes::list(&database.pool, settings.cluster.lease_ttl())
                .await
                .map_err(failed)?;
            database.close().await;
            for info in listed {
                let state = match (info.alive, info.draining) {
                    (true, false) => "up",
                    (true, true) => "draining",
                    (false, _) => "down",
                };
                println!(
                    "{}\t{}\t{}\t{} sessions\tlast heartbeat {}",
                    info.name, state, info.http_addr, info.sessions, info.last_heartbeat
                );
            }
            Ok(())
        }
    }
}

async fn set_draining(node: &NodeArgs, name: &str, draining: bool) -> Result<(), CliError> {
    let database = node.database().await?;
    let told = botwave_actors::cluster::nodes::set_draining(&database.pool, name, draining).await;
    database.close().await;
    match told {
        Ok(0) => Err(CliError::Failed(format!(
            "no running node is called {name:?}"
        ))),
        Ok(_) => Ok(()),
        Err(error) => Err(CliError::Failed(error.to_string())),
    }
}

async fn serve(settings: &Settings) -> Result<(), CliError> {
    let app = Application::build(settings).await?;
    app.run_until(shutdown_signal()).await;
    Ok(())
}

async fn admin(command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Create { email, node } => {
            let email = Email::parse(&email).map_err(CliError::Usage)?;
            let password = read_new_password()?;
            let database = node.database().await?;
            let result = create_admin(&database, &email, &password).await;
            database.close().await;
            result?;
            println!("created admin {email}");
            Ok(())
        }
        AdminCommand::ResetPassword { email, node } => {
            let email = Email::parse(&email).map_err(CliError::Usage)?;
            let password = read_new_password()?;
            let database = node.database().await?;
            let result = reset_password(&database, &email, &password).await;
            database.close().await;
            result?;
            println!("password changed for {email}");
            Ok(())
        }
    }
}

/// The password from BOTWAVE_ADMIN_PASSWORD, else the first line of stdin.
fn read_new_password() -> Result<NewPassword, CliError> {
    let raw = match std::env::var("BOTWAVE_ADMIN_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|error| {
                    CliError::Usage(format!("cannot read the password from stdin: {error}"))
                })?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    NewPassword::parse(&raw).map_err(CliError::Usage)
}

async fn create_admin(
    database: &Database,
    email: &Email,
    password: &NewPassword,
) -> Result<(), CliError> {
    let hash = password::hash(password.expose())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    users::create(&database.pool, email, &hash, Role::Admin)
        .await
        .map_err(|error| match error {
            users::UserError::EmailTaken => CliError::Failed(format!(
                "an account with email {email} already exists (use `botwave admin reset-password`)"
            )),
            other => CliError::Failed(other.to_string()),
        })?;
    Ok(())
}

async fn reset_password(
    database: &Database,
    email: &Email,
    password: &NewPassword,
) -> Result<(), CliError> {
    let failed = |e: crate::db::DbError| CliError::Failed(e.to_string());
    let (user, _) = users::find_by_email(&database.pool, email)
        .await
        .map_err(failed)?
        .ok_or_else(|| CliError::Failed(format!("no account with email {email}")))?;
    let hash = password::hash(password.expose())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let (_, keys_revoked) = users::set_password(&database.pool, user.id, &hash, true)
        .await
        .map_err(failed)?
        .ok_or_else(|| CliError::Failed(format!("no account with email {email}")))?;
    if keys_revoked > 0 {
        eprintln!("revoked {keys_revoked} API key(s) of {email}");
    }
    Ok(())
}

/// The demo's admin account; its password is generated anew on every start and printed.
const DEMO_ADMIN: &str = "admin@demo.botwave.local";

async fn demo(args: NodeArgs) -> Result<(), CliError> {
    let mut settings = args.settings()?;
    if args.data_dir.is_none() && std::env::var_os("BOTWAVE_DATA_DIR").is_none() {
        settings.data_dir = PathBuf::from(".botwave-demo");
    }
    let simulator = demo_simulator::start(&mut settings).await?;
    let app = match &simulator {
        Some(sim) => Application::build_demo(&settings, sim.control_url()).await?,
        None => Application::build(&settings).await?,
    };
    let password = reset_demo_admin(&app).await?;

    println!();
    println!("  botwave demo is running at http://{}", app.local_addr());
    println!("  admin login: {DEMO_ADMIN}");
    println!("  password:    {password}   (new on every start)");
    if let Some(sim) = &simulator {
        println!();
        println!("  WhatsApp simulator: {}", sim.control_url());
        println!("  link a phone: POST /api/whatsapp/initialize, then");
        println!(
            "    curl -X POST {}/scan -H 'content-type: application/json' -d '{{\"phone\":\"15550001111\",\"qr\":\"<code from GET /api/whatsapp/qr>\"}}'",
            sim.control_url()
        );
    }
    println!();
    app.run_until(shutdown_signal()).await;
    if let Some(sim) = simulator {
        sim.shutdown().await;
    }
    Ok(())
}

/// Creates the demo admin, or gives it a new generated password; returns the password.
async fn reset_demo_admin(app: &Application) -> Result<String, CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    let email = Email::parse(DEMO_ADMIN).map_err(CliError::Failed)?;
    let generated = format!("{}-Demo1", Alphanumeric.sample_string(&mut rand::rng(), 20));
    let password = NewPassword::parse(&generated).map_err(CliError::Failed)?;
    let hash = password::hash(password.expose())
        .await
        .map_err(|e| failed(&e))?;
    match users::find_by_email(app.pool(), &email)
        .await
        .map_err(|e| failed(&e))?
    {
        Some((user, _)) => {
            users::set_password(app.pool(), user.id, &hash, false)
                .await
                .map_err(|e| failed(&e))?;
        }
        None => {
            users::create(app.pool(), &email, &hash, Role::Admin)
                .await
                .map_err(|e| failed(&e))?;
        }
    }
    Ok(generated)
}

/// The demo's WhatsApp: the simulator, in-process, when built with the `simulator` feature.
#[cfg(feature = "simulator")]
mod demo_simulator {
    use botwave_wa_sim::{SimConfig, SimHandle, Simulator};

    use super::CliError;
    use crate::config::Settings;

    pub async fn start(settings: &mut Settings) -> Result<Option<SimHandle>, CliError> {
        if settings.whatsapp.url.is_some() {
            return Ok(None);
        }
        let sim = Simulator::start(SimConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..SimConfig::default()
        })
        .await
        .map_err(|e| CliError::Failed(format!("cannot start the WhatsApp simulator: {e}")))?;
        settings.whatsapp.url = Some(sim.ws_url());
        Ok(Some(sim))
    }
}

/// Without the `simulator` feature the demo talks to whatever `whatsapp.url` says.
#[cfg(not(feature = "simulator"))]
mod demo_simulator {
    use super::CliError;
    use crate::config::Settings;

    pub enum NoSimulator {}

    impl NoSimulator {
        pub fn control_url(&self) -> String {
            match *self {}
        }

        pub async fn shutdown(self) {}
    }

    pub async fn start(_: &mut Settings) -> Result<Option<NoSimulator>, CliError> {
        Ok(None)
    }
}
