//! Live authorization for long-lived connections: tells them, within milliseconds, that an
//! account's rights may have changed, so that they re-check it (token version, disabled, role,
//! existence) instead of trusting what was true when they opened.
//!
//! The source is PostgreSQL: a trigger (`migrations/0006_account_changes.sql`) notifies
//! `botwave_account_changed` with the account id whenever those columns change, whoever
//! changed them — this node, another node, or `botwave admin` on the command line. One
//! dedicated connection per node LISTENs (a pooled connection cannot: bb8-postgres drops
//! notifications). Whenever that connection is (re)established, notifications may have been
//! missed, so every connection is told to re-check everything.

use std::{sync::Arc, time::Duration};

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

pub const CHANNEL: &str = "botwave_account_changed";

/// How many changes a slow subscriber may fall behind by; past that it re-checks everything.
const BUFFER: usize = 1024;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What a subscriber should re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    Account(Uuid),
    /// Changes may have been missed: re-check every account.
    All,
}

impl AccountChange {
    pub fn concerns(&self, account: Uuid) -> bool {
        match self {
            AccountChange::Account(id) => *id == account,
            AccountChange::All => true,
        }
    }
}

/// The node's listener; dropping the last clone stops it and closes its connection.
#[derive(Clone)]
pub struct AccountWatch {
    changes: broadcast::Sender<AccountChange>,
    _listener: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One subscriber's view of the changes.
pub struct AccountChanges(broadcast::Receiver<AccountChange>);

impl AccountChanges {
    /// The next change; falling behind counts as "re-check everything". `None` once the
    /// watch is gone (the node is stopping).
    pub async fn next(&mut self) -> Option<AccountChange> {
        match self.0.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(AccountChange::All),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl AccountWatch {
    /// Starts listening on `database_url`, reconnecting for as long as the watch lives.
    pub fn start(database_url: &str) -> Result<Self, tokio_postgres::Error> {
        let config: tokio_postgres::Config = database_url.parse()?;
        let (changes, _) = broadcast::channel(BUFFER);
        let listener = tokio::spawn(listen_forever(config, changes.clone()));
        Ok(Self {
            changes,
            _listener: Arc::new(AbortOnDrop(listener)),
        })
    }

    pub fn subscribe(&self) -> AccountChanges {
        AccountChanges(self.changes.subscribe())
    }
}

async fn listen_forever(config: tokio_postgres::Config, changes: broadcast::Sender<AccountChange>) {
    let mut warned = false;
    loop {
        let mut listening = false;
        let error = listen_once(&config, &changes, &mut listening).await;
        if listening {
            warned = false;
        }
        if !warned {
            tracing::warn!(%error, "the account-change listener failed; reconnecting");
            warned = true;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// One LISTEN connection, until it fails (the reason); sets `listening` once LISTEN is in
/// place.
async fn listen_once(
    config: &tokio_postgres::Config,
    changes: &broadcast::Sender<AccountChange>,
    listening: &mut bool,
) -> String {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => return error.to_string(),
    };
    let statement = format!("LISTEN {CHANNEL}");
    // The connection is polled here, in the same task, for the LISTEN to complete and for
    // notifications to arrive.
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            listened = &mut listen, if !*listening => {
                if let Err(error) = listened {
                    return error.to_string();
                }
                *listening = true;
                // What changed before LISTEN took effect is covered by one re-check of all.
                let _ = changes.send(AccountChange::All);
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if let Ok(id) = notification.payload().parse() {
                        let _ = changes.send(AccountChange::Account(id));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return error.to_string(),
                None => return "the database closed the connection".into(),
            },
        }
    }
}
