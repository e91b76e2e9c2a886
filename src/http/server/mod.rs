//! The node's HTTP listener: accepts connections under a cap in all and per client address,
//! serves each with hyper and the warp routes, and closes those that stall — a request head
//! that does not arrive, an idle keep-alive, a request that never ends. warp's own server has
//! none of these limits, so this replaces it.
//!
//! Every answer leaves through [`Handler`], which is also where a panicking handler becomes a
//! logged 500 JSON answer instead of a dropped connection, and where the headers every answer
//! carries are set.

mod io;
mod table;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{io::AsyncWriteExt, net::TcpListener, task::JoinSet};
use warp::http::{HeaderValue, Request, StatusCode, header};

use self::{
    io::MeteredIo,
    table::{Conn, ConnectionTable, Phase, Refusal},
};
use super::error::{self, ApiError};
use crate::config::HttpSettings;

/// The address a request's connection came from, for [`super::filters::client_ip`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// File descriptors kept free for everything else a node opens: database connections,
/// WhatsApp sockets, the embedded cluster, logs.
const RESERVED_FILES: u64 = 1024;

/// How long a refused connection is given to take its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// From the first byte of a request head until the head is complete.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no traffic is closed after this.
    pub keep_alive_timeout: Duration,
    /// From a complete head until the answer is ready; a backstop behind the body timeout.
    pub request_timeout: Duration,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
}

impl Limits {
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            max_connections: http.max_connections,
            max_connections_per_ip: http.max_connections_per_ip,
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            keep_alive_timeout: Duration::from_secs(http.keep_alive_timeout_secs),
            request_timeout: Duration::from_secs(http.request_timeout_secs),
            max_header_bytes: http.max_header_bytes,
        }
    }

    /// Raises this process's open-files limit to its hard limit and lowers the connection cap
    /// if the limit still cannot hold it, so that the node refuses connections cleanly rather
    /// than running out of descriptors.
    pub fn fit_open_files(mut self) -> Self {
        let Some(open_files) = raise_open_files_limit() else {
            return self;
        };
        let room = open_files.saturating_sub(RESERVED_FILES).max(64) as usize;
        if self.max_connections > room {
            tracing::warn!(
                open_files,
                configured = self.max_connections,
                using = room,
                "the open-files limit cannot hold http.max_connections; using less (raise LimitNOFILE)"
            );
            self.max_connections = room;
        }
        self
    }
}

/// The soft open-files limit after raising it as far as the hard limit allows.
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Any error of an answer's body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An answer, whichever service made it (the warp routes, or Socket.IO in front of them).
pub type Response = warp::http::Response<BoxBody<Bytes, BoxError>>;

/// What the listener serves: the node's warp routes as a service (`warp::service`), possibly
/// behind another service (Socket.IO) with answers of its own body type.
pub trait Routes: Clone + Send + 'static {
    type Body: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + 'static;
    type Future: Future<Output = Result<warp::http::Response<Self::Body>, Infallible>>
        + Send
        + 'static;

    fn answer(&mut self, request: Request<Incoming>) -> Self::Future;
}

impl<S, B> Routes for S
where
    S: tower_service::Service<
            Request<Incoming>,
            Response = warp::http::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + 'static,
{
    type Body = B;
    type Future = S::Future;

    fn answer(&mut self, request: Request<Incoming>) -> Self::Future {
        tower_service::Service::call(self, request)
    }
}

/// `response` with its body boxed into the listener's one body type.
fn boxed<B>(response: warp::http::Response<B>) -> Response
where
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + 'static,
{
    response.map(|body| body.map_err(Into::into).boxed())
}

/// Serves `routes` on `listener` until `shutdown` resolves, then lets open requests finish
/// for up to `grace`.
pub async fn serve<S>(
    listener: TcpListener,
    routes: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: Routes,
{
    let limits = Arc::new(limits);
    let table = ConnectionTable::new(limits.max_connections, limits.max_connections_per_ip);
    let mut connections = JoinSet::new();
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors (or another transient failure): back off briefly rather
                // than spinning on accept.
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%error, "cannot accept connections");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match table.admit(peer.ip()) {
            Ok(admission) => {
                let conn = admission.conn.clone();
                let io = MeteredIo::new(stream, admission);
                connections.spawn(drive(io, conn, peer, routes.clone(), limits.clone()));
            }
            Err(refusal) => {
                connections.spawn(refuse(stream, refusal));
            }
        }
    }
    drop(listener);
    table.close_all();
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    let message = match refusal {
        Refusal::NodeFull => "the server has too many open connections; retry shortly",
        Refusal::AddressFull => "too many open connections from your address",
    };
    let answer = error::raw_error_response(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// Runs one connection, closing it when its current phase outlasts its timeout or when the
/// table (making room, or the node stopping) asks it to.
async fn drive<S>(io: MeteredIo, conn: Arc<Conn>, peer: SocketAddr, routes: S, limits: Arc<Limits>)
where
    S: Routes,
{
    let handler = Handler {
        routes,
        conn: conn.clone(),
        client: ClientAddr(peer),
    };
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(limits.max_header_bytes)
        .header_read_timeout(None);
    let connection = builder
        .serve_connection(TokioIo::new(io), handler)
        .with_upgrades();
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let phase = conn.phase();
        let timeout = match phase {
            Phase::Idle => limits.keep_alive_timeout,
            Phase::ReadingHead => limits.header_read_timeout,
            Phase::InRequest => limits.request_timeout,
            // The websocket task owns the socket from here; the connection future ends.
            Phase::Upgraded => Duration::from_secs(24 * 3600),
        };
        let deadline = conn.since() + timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result
                    && !error.is_incomplete_message()
                {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if conn.phase() != phase || Instant::now() < conn.since() + timeout {
                    continue;
                }
                tracing::debug!(%peer, ?phase, "closing a stalled connection");
                return;
            }
            _ = conn.phase_changed.notified() => continue,
            _ = conn.close.notified(), if !closing => {
                // Nothing is lost by dropping a connection without a request in flight (and
                // hyper's graceful shutdown would wait for one that never sent anything).
                if matches!(conn.phase(), Phase::Idle | Phase::ReadingHead) {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// The per-connection service hyper calls for each request.
#[derive(Clone)]
struct Handler<S> {
    routes: S,
    conn: Arc<Conn>,
    client: ClientAddr,
}

impl<S> hyper::service::Service<Request<Incoming>> for Handler<S>
where
    S: Routes,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.conn.request_started();
        request.extensions_mut().insert(self.client);
        let is_api = request.uri().path().starts_with("/api/");
        let answer = self.routes.clone().answer(request);
        let conn = self.conn.clone();
        Box::pin(async move {
            let mut response = match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(Ok(response)) => boxed(response),
                Ok(Err(never)) => match never {},
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    boxed(
                        ApiError::Internal(format!("request handler panicked: {what}"))
                            .into_response(),
                    )
                }
            };
            secure_headers(&mut response, is_api);
            conn.request_answered(response.status() == StatusCode::SWITCHING_PROTOCOLS);
            Ok(response)
        })
    }
}

/// Headers on every answer: no MIME sniffing anywhere, and no caching of API answers (they
/// carry tokens, keys and people's messages).
fn secure_headers(response: &mut Response, is_api: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use warp::Filter;

    fn limits() -> Limits {
        Limits {
            max_connections: 4,
            max_connections_per_ip: 4,
            header_read_timeout: Duration::from_millis(500),
            keep_alive_timeout: Duration::from_millis(800),
            request_timeout: Duration::from_secs(5),
            max_header_bytes: 8192,
        }
    }

    async fn start(limits: Limits) -> SocketAddr {
        let routes = warp::path!("ok")
            .map(|| "fine")
            .or(warp::path!("boom").map(|| -> &'static str { panic!("forced panic") }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            warp::service(routes),
            limits,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        addr
    }

    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes after answering")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Reads until the server closes; how long that took.
    async fn time_to_close(stream: &mut tokio::net::TcpStream) -> Duration {
        let started = Instant::now();
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink))
            .await
            .expect("closed by the server")
            .ok();
        started.elapsed()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json_and_the_node_serves_on() {
        let addr = start(limits()).await;
        let answer = exchange(
            addr,
            "GET /boom HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("application/json"), "{answer}");
        assert!(answer.contains(r#""code":"internal""#), "{answer}");
        assert!(
            !answer.contains("forced panic"),
            "the panic stays in the log: {answer}"
        );
        let answer = exchange(
            addr,
            "GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn unparseable_requests_get_json_errors() {
        let addr = start(limits()).await;
        let long = "a".repeat(9000);
        let answer = exchange(
            addr,
            &format!("GET /ok HTTP/1.1\r\nhost: x\r\nx-big: {long}\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(answer.contains(r#""code":"headers_too_large""#), "{answer}");
        let answer = exchange(
            addr,
            "POST /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(r#""code":"bad_request""#), "{answer}");
    }

    #[tokio::test]
    async fn silent_slow_and_idle_connections_are_closed_on_time() {
        let addr = start(limits()).await;
        // Connects and says nothing: the keep-alive timeout (0.8 s).
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let waited = time_to_close(&mut silent).await;
        assert!(waited < Duration::from_millis(2000), "{waited:?}");
        // Half a head, then a trickle: the header timeout (0.5 s) counts from the first byte.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /ok HTTP/1.1\r\n").await.unwrap();
        let trickle = async {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if slow.write_all(b"x-a: b\r\n").await.is_err() {
                    break;
                }
            }
        };
        let started = Instant::now();
        trickle.await;
        let waited = started.elapsed() + time_to_close(&mut slow).await;
        assert!(waited < Duration::from_millis(2500), "{waited:?}");
    }

    #[tokio::test]
    async fn at_the_cap_idle_connections_make_room_for_new_ones() {
        let addr = start(limits()).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let answer = exchange(
            addr,
            "GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < Duration::from_millis(500));
        // The first idle connection was the one let go.
        let waited = time_to_close(&mut idle[0]).await;
        assert!(waited < Duration::from_millis(200), "{waited:?}");
    }
}
