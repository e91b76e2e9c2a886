//! Tells systemd how the node is doing, for `Type=notify` units (systemd/botwave.service,
//! systemd/botwave@.service): ready, stopping, a status line, and watchdog pings. This is the
//! sd_notify protocol — one datagram of `KEY=value` lines to the socket named by
//! `$NOTIFY_SOCKET` — written with std rather than a crate, since it is a few lines. Without
//! `$NOTIFY_SOCKET` (not started by systemd) every function does nothing.
//!
//! Notifications are advisory: a failure to send one is logged and never stops the node (if
//! `READY=1` is lost, systemd reports the start as timed out, which names the problem well
//! enough).

use std::{
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// How long one notification may wait for room in systemd's socket queue. systemd reads it
/// promptly; a full queue means systemd is stuck, and the node should not be stuck with it.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is neither a socket path nor an @abstract name")]
    Address(String),
    #[error("cannot notify systemd at {socket}: {source}")]
    Send {
        socket: String,
        #[source]
        source: io::Error,
    },
}

/// The node is serving: systemd marks the unit started (and `systemctl start` returns).
pub fn ready() {
    notify("READY=1");
}

/// The node is shutting down: systemd shows the unit as deactivating instead of failed.
pub fn stopping() {
    notify("STOPPING=1");
}

/// A one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    // A newline would start a new assignment in the datagram.
    notify(&format!("STATUS={}", text.replace('\n', " ")));
}

/// Tells systemd's watchdog the node is alive; [`spawn_watchdog`] calls it on schedule.
pub fn watchdog_ping() {
    notify("WATCHDOG=1");
}

/// When the unit has `WatchdogSec=` (systemd sets `WATCHDOG_USEC`, and `WATCHDOG_PID` if it
/// is meant for one process), pings every half interval from a tokio task, so that a node
/// whose runtime stops making progress is restarted. Returns the task, or `None` when there is
/// no watchdog for this process. Needs a tokio runtime.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let socket = std::env::var("NOTIFY_SOCKET").ok()?;
    let period = watchdog_period(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )?;
    tracing::debug!(?period, "pinging the systemd watchdog");
    Some(spawn_watchdog_to(socket, period))
}

/// Half the watchdog interval, if `watchdog_usec` is a positive number of microseconds and the
/// watchdog is for `our_pid`.
fn watchdog_period(
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    our_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = watchdog_pid
        && pid.trim().parse::<u32>().ok() != Some(our_pid)
    {
        return None;
    }
    let usec: u64 = watchdog_usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

fn spawn_watchdog_to(socket: String, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            if let Err(error) = send(&socket, "WATCHDOG=1") {
                tracing::warn!(%error, "systemd watchdog ping failed");
            }
        }
    })
}

fn notify(message: &str) {
    let Ok(socket) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket, message) {
        tracing::warn!(%error, "systemd notification failed");
    }
}

/// Sends `message` as one datagram to `socket`: a filesystem path, or `@name` for a Linux
/// abstract socket.
fn send(socket: &str, message: &str) -> Result<(), NotifyError> {
    let address = notify_address(socket)?;
    let send_error = |source| NotifyError::Send {
        socket: socket.to_owned(),
        source,
    };
    let sender = UnixDatagram::unbound().map_err(send_error)?;
    sender
        .set_write_timeout(Some(SEND_TIMEOUT))
        .map_err(send_error)?;
    sender
        .send_to_addr(message.as_bytes(), &address)
        .map_err(send_error)?;
    Ok(())
}

fn notify_address(socket: &str) -> Result<SocketAddr, NotifyError> {
    let bad = || NotifyError::Address(socket.to_owned());
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| bad())
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket).map_err(|_| bad())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket standing in for systemd's, in a fresh temp dir.
    struct FakeSystemd {
        socket: UnixDatagram,
        path: String,
        dir: std::path::PathBuf,
    }

    impl FakeSystemd {
        fn bind() -> Self {
            let dir = std::env::temp_dir().join(format!("botwave-notify-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("notify");
            let socket = UnixDatagram::bind(&path).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            Self {
                socket,
                path: path.to_str().unwrap().to_owned(),
                dir,
            }
        }

        fn receive(&self) -> String {
            receive(&self.socket)
        }
    }

    impl Drop for FakeSystemd {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let len = socket.recv(&mut buf).expect("a datagram arrives");
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    #[test]
    fn each_notification_is_one_datagram_systemd_understands() {
        let systemd = FakeSystemd::bind();
        for message in [
            "READY=1",
            "STOPPING=1",
            "WATCHDOG=1",
            "STATUS=serving 12 sessions",
        ] {
            send(&systemd.path, message).unwrap();
            assert_eq!(systemd.receive(), message);
        }
    }

    #[test]
    fn abstract_socket_names_reach_the_abstract_namespace() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("botwave-notify-test-{}", uuid::Uuid::new_v4());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&address).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        send(&format!("@{name}"), "READY=1").unwrap();
        assert_eq!(receive(&systemd), "READY=1");
    }

    #[test]
    fn an_unusable_socket_is_an_error_naming_it() {
        let relative = send("run/notify", "READY=1").unwrap_err().to_string();
        assert!(relative.contains("run/notify"), "{relative}");
        let missing = std::env::temp_dir().join(format!("botwave-none-{}", uuid::Uuid::new_v4()));
        let missing = missing.to_str().unwrap();
        let unreachable = send(missing, "READY=1").unwrap_err().to_string();
        assert!(unreachable.contains(missing), "{unreachable}");
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_interval_and_only_for_our_process() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 42),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_period(Some("30000000"), Some("42"), 42),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_period(Some("30000000"), Some("41"), 42), None);
        assert_eq!(watchdog_period(None, None, 42), None);
        assert_eq!(watchdog_period(Some("0"), None, 42), None);
        assert_eq!(watchdog_period(Some("soon"), None, 42), None);
    }

    #[tokio::test]
    async fn the_watchdog_task_keeps_pinging() {
        let systemd = FakeSystemd::bind();
        let task = spawn_watchdog_to(systemd.path.clone(), Duration::from_millis(20));
        let pings = tokio::task::spawn_blocking(move || {
            let pings = [systemd.receive(), systemd.receive(), systemd.receive()];
            drop(systemd);
            pings
        })
        .await
        .unwrap();
        task.abort();
        assert_eq!(pings, ["WATCHDOG=1"; 3]);
    }
}
