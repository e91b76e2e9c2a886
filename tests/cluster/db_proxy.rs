//! A TCP proxy between one node and PostgreSQL that a test cuts and restores, reading the
//! PostgreSQL protocol as it passes: which statement the node ran under which lease
//! (`botwave.fence`) and what the database answered, so a test can tell that no write of a
//! node that lost its leases landed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the database goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Open connections are reset and new ones closed at once: the database is down.
    Refuse,
    /// Connections stay open and new ones are accepted, but nothing passes either way
    /// until the restore, when everything held goes on: a database (or a path to it) that
    /// hangs without a word. The node's kernel sees every byte acknowledged, so no TCP
    /// timeout of the node fires.
    BlackHole,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Link {
    cut: Option<Cut>,
    /// How many cuts there were.
    cuts: u64,
    /// How many refusing cuts there were: a connection older than the latest one ends.
    refusals: u64,
}

/// One statement the node ran under a fence, and how the database answered it.
#[derive(Clone, Debug)]
pub struct Statement {
    /// Shown when a test reports the statement.
    #[allow(dead_code)]
    pub sql: String,
    /// The `botwave.fence` it ran under: set by the statement just before it on its
    /// connection (every fenced write pipelines a `set_config` ahead of itself), or
    /// earlier in its transaction.
    pub fence: String,
    /// It reached the database after a cut had begun (held through a black hole, say).
    pub sent_after_cut: bool,
    /// The SQLSTATE it failed with.
    pub error: Option<String>,
    /// Its command tag, if it completed (`UPDATE 1`, `INSERT 0 0`, `SELECT 3`).
    pub tag: Option<String>,
}

impl Statement {
    /// It changed rows: a write that landed.
    pub fn wrote(&self) -> bool {
        let Some(tag) = &self.tag else {
            return false;
        };
        let words: Vec<&str> = tag.split_whitespace().collect();
        matches!(
            words.first(),
            Some(&("INSERT" | "UPDATE" | "DELETE" | "MERGE"))
        ) && words
            .last()
            .and_then(|rows| rows.parse::<u64>().ok())
            .is_some_and(|rows| rows > 0)
    }
}

#[derive(Default)]
struct Log {
    /// Fenced statements in the order the database finished them.
    statements: Vec<Statement>,
    /// Connections whose traffic could not be read (the record would miss statements).
    unreadable: usize,
}

/// What the proxy and its connections share.
struct Shared {
    link: watch::Sender<Link>,
    /// A cut to make the moment the node sends its next fenced write.
    armed: Mutex<Option<Cut>>,
    log: Mutex<Log>,
}

impl Shared {
    fn cut(&self, cut: Cut) {
        self.link.send_modify(|link| {
            link.cut = Some(cut);
            link.cuts += 1;
            if cut == Cut::Refuse {
                link.refusals += 1;
            }
        });
    }
}

pub struct DbProxy {
    url: String,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to the server of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let (upstream, url_at) = split_authority(database_url);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the database proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (link, _) = watch::channel(Link {
            cut: None,
            cuts: 0,
            refusals: 0,
        });
        let shared = Arc::new(Shared {
            link,
            armed: Mutex::new(None),
            log: Mutex::new(Log::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Self {
            url: url_at(&addr.to_string()),
            shared,
            accept,
        }
    }

    /// The database URL that goes through this proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn cut(&self, cut: Cut) {
        self.shared.cut(cut);
    }

    /// Cuts the moment the node sends its next fenced write, before the write goes on:
    /// the database goes away with the write under way.
    pub fn cut_at_next_write(&self, cut: Cut) {
        *lock(&self.shared.armed) = Some(cut);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.link.borrow().cut.is_some()
    }

    /// Lets traffic through again (after a black hole, what was held goes on first).
    pub fn restore(&self) {
        self.shared.link.send_modify(|link| link.cut = None);
    }

    /// Every fenced statement so far, in the order the database finished them.
    pub fn statements(&self) -> Vec<Statement> {
        lock(&self.shared.log).statements.clone()
    }

    pub fn unreadable_connections(&self) -> usize {
        lock(&self.shared.log).unreadable
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(Cut::Refuse);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server's `host:port` in `url`, and a function putting another one in its place.
fn split_authority(url: &str) -> (String, impl Fn(&str) -> String) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let host = &url[host_start..end];
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let (before, after) = (url[..host_start].to_owned(), url[end..].to_owned());
    (upstream, move |addr: &str| format!("{before}{addr}{after}"))
}

async fn accept_loop(listener: TcpListener, upstream: String, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let now = *shared.link.borrow();
        if now.cut == Some(Cut::Refuse) {
            drop(client);
            continue;
        }
        let connection = Connection {
            upstream: upstream.clone(),
            link: shared.link.subscribe(),
            born_after: now.refusals,
            tap: Mutex::new(Tap::default()),
            shared: shared.clone(),
        };
        tokio::spawn(connection.run(client));
    }
}

struct Connection {
    upstream: String,
    link: watch::Receiver<Link>,
    born_after: u64,
    tap: Mutex<Tap>,
    shared: Arc<Shared>,
}

impl Connection {
    async fn run(self, client: TcpStream) {
        let (mut open, mut refused) = (self.link.clone(), self.link.clone());
        // A connection accepted into a black hole reaches the server only once restored.
        let server = tokio::select! {
            _ = wait_open(&mut open) => TcpStream::connect(&self.upstream).await,
            _ = wait_refused(&mut refused, self.born_after) => return,
        };
        let Ok(server) = server else {
            return;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let to_server = self.pump(client_read, server_write, Side::Client);
        let to_client = self.pump(server_read, client_write, Side::Server);
        tokio::select! {
            _ = async { tokio::join!(to_server, to_client) } => {}
            _ = wait_refused(&mut refused, self.born_after) => {}
        }
    }

    /// Copies one direction, reading what passes and holding it while black-holed.
    async fn pump(
        &self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        side: Side,
    ) {
        let mut link = self.link.clone();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let fed = lock(&self.tap).feed(side, &buffer[..read]);
            match fed {
                Ok(fed) => {
                    if fed.fenced_write
                        && let Some(cut) = lock(&self.shared.armed).take()
                    {
                        self.shared.cut(cut);
                    }
                    if !fed.finished.is_empty() {
                        lock(&self.shared.log).statements.extend(fed.finished);
                    }
                }
                Err(Unreadable) => lock(&self.shared.log).unreadable += 1,
            }
            wait_open(&mut link).await;
            if let Side::Client = side {
                let after_cut = link.borrow().cuts > 0;
                lock(&self.tap).forwarding(after_cut);
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
}

async fn wait_open(link: &mut watch::Receiver<Link>) {
    let _ = link.wait_for(|link| link.cut.is_none()).await;
}

async fn wait_refused(link: &mut watch::Receiver<Link>, born_after: u64) {
    let _ = link.wait_for(|link| link.refusals > born_after).await;
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

/// Traffic that does not parse as the PostgreSQL protocol (TLS, say).
struct Unreadable;

/// What one read showed.
#[derive(Default)]
struct Fed {
    /// Fenced statements the database finished.
    finished: Vec<Statement>,
    /// The node sent a write under a fence.
    fenced_write: bool,
}

/// One connection's protocol state: statements sent and not yet answered, in order.
#[derive(Default)]
struct Tap {
    from_client: Vec<u8>,
    from_server: Vec<u8>,
    /// The client's startup message (or an SSL/GSS request) is still to come.
    started: bool,
    /// Chunks read from the client so far.
    client_chunks: u64,
    /// Single-byte answers to SSL/GSS requests the server still owes.
    owed_bytes: usize,
    /// The server's first ReadyForQuery ends the startup, not a statement.
    ready: bool,
    broken: bool,
    /// Prepared statements by name ("" is the unnamed one).
    prepared: HashMap<String, String>,
    /// The statement being assembled (Parse/Bind … up to Sync).
    group: Group,
    pending: VecDeque<Group>,
    /// A fence set by the previous statement, for the next one.
    fence_next: Option<String>,
    in_transaction: bool,
    transaction_fence: Option<String>,
}

#[derive(Default)]
struct Group {
    sql: String,
    /// The client chunk its Execute (or simple Query) came in: the database runs it
    /// when that chunk arrives.
    executed_in: Option<u64>,
    sent_after_cut: bool,
    sets_fence: Option<String>,
    fence: Option<String>,
    error: Option<String>,
    tag: Option<String>,
}

impl Tap {
    /// Reads what passed.
    fn feed(&mut self, side: Side, bytes: &[u8]) -> Result<Fed, Unreadable> {
        if self.broken {
            return Ok(Fed::default());
        }
        let parsed = match side {
            Side::Client => {
                self.from_client.extend_from_slice(bytes);
                self.client_chunks += 1;
                self.client_messages().map(|fenced_write| Fed {
                    fenced_write,
                    ..Fed::default()
                })
            }
            Side::Server => {
                self.from_server.extend_from_slice(bytes);
                self.server_messages().map(|finished| Fed {
                    finished,
                    ..Fed::default()
                })
            }
        };
        if parsed.is_err() {
            self.broken = true;
        }
        parsed
    }

    /// Reads the client's complete messages; answers whether one was a fenced write.
    fn client_messages(&mut self) -> Result<bool, Unreadable> {
        let mut fenced_write = false;
        loop {
            let buffer = &self.from_client;
            if !self.started {
                // Untyped: length, then the protocol code.
                let Some(len) = length(buffer, 0) else {
                    return Ok(fenced_write);
                };
                if buffer.len() < len {
                    return Ok(fenced_write);
                }
                let code = buffer
                    .get(4..8)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match code {
                    Some(80_877_103 | 80_877_104) => self.owed_bytes += 1,
                    // A cancel request's connection carries nothing else.
                    Some(80_877_102) => {
                        self.broken = true;
                        return Ok(fenced_write);
                    }
                    Some(196_608) => self.started = true,
                    _ => return Err(Unreadable),
                }
                self.from_client.drain(..len);
                continue;
            }
            let Some(len) = length(buffer, 1) else {
                return Ok(fenced_write);
            };
            if buffer.len() < len + 1 {
                return Ok(fenced_write);
            }
            let kind = buffer[0];
            let body: Vec<u8> = buffer[5..len + 1].to_vec();
            self.from_client.drain(..len + 1);
            fenced_write |= self.client_message(kind, &body)?;
        }
    }

    /// Reads one client message; answers whether it sent a write under a fence.
    fn client_message(&mut self, kind: u8, body: &[u8]) -> Result<bool, Unreadable> {
        let mut reader = Reader(body);
        match kind {
            b'P' => {
                let name = reader.string()?;
                let sql = reader.string()?;
                self.group.sql = sql.clone();
                self.prepared.insert(name, sql);
            }
            b'B' => {
                let _portal = reader.string()?;
                let statement = reader.string()?;
                if let Some(sql) = self.prepared.get(&statement) {
                    self.group.sql = sql.clone();
                }
                let formats = reader.i16()?;
                for _ in 0..formats {
                    reader.i16()?;
                }
                let params = reader.i16()?;
                for _ in 0..params {
                    let len = reader.i32()?;
                    if len < 0 {
                        continue;
                    }
                    let value = reader.take(len as usize)?;
                    if self.group.sql.contains("botwave.fence") {
                        self.group.sets_fence = std::str::from_utf8(value).ok().map(str::to_owned);
                    }
                }
            }
            b'E' => self.group.executed_in = Some(self.client_chunks),
            b'S' => {
                let group = std::mem::take(&mut self.group);
                return Ok(self.send(group));
            }
            b'Q' => {
                let sql = reader.string()?;
                let words = sql.trim_start().to_ascii_uppercase();
                let group = Group {
                    sql,
                    executed_in: Some(self.client_chunks),
                    ..Group::default()
                };
                let fenced_write = self.send(group);
                if words.starts_with("BEGIN") || words.starts_with("START TRANSACTION") {
                    self.in_transaction = true;
                } else if words.starts_with("COMMIT") || words.starts_with("ROLLBACK") {
                    self.in_transaction = false;
                    self.transaction_fence = None;
                }
                return Ok(fenced_write);
            }
            _ => {}
        }
        Ok(false)
    }

    /// The chunk read last goes on to the server now.
    fn forwarding(&mut self, after_cut: bool) {
        let chunk = Some(self.client_chunks);
        for group in self.pending.iter_mut().chain([&mut self.group]) {
            if group.executed_in == chunk {
                group.sent_after_cut = after_cut;
            }
        }
    }

    /// A statement went out: it runs under the fence set just before it (or in its
    /// transaction); one that sets a fence passes it on. Answers whether it is a write
    /// under a fence.
    fn send(&mut self, mut group: Group) -> bool {
        group.fence = self
            .fence_next
            .take()
            .or_else(|| self.transaction_fence.clone());
        let first_word = group.sql.split_whitespace().next().unwrap_or_default();
        let fenced_write = group.fence.is_some()
            && ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|write| first_word.eq_ignore_ascii_case(write));
        if let Some(fence) = &group.sets_fence {
            if self.in_transaction {
                self.transaction_fence = Some(fence.clone());
            } else {
                self.fence_next = Some(fence.clone());
            }
        }
        self.pending.push_back(group);
        fenced_write
    }

    fn server_messages(&mut self) -> Result<Vec<Statement>, Unreadable> {
        let mut finished = Vec::new();
        loop {
            if self.owed_bytes > 0 {
                match self.from_server.first() {
                    None => return Ok(finished),
                    Some(b'N') => {
                        self.owed_bytes -= 1;
                        self.from_server.drain(..1);
                        continue;
                    }
                    Some(_) => return Err(Unreadable),
                }
            }
            let buffer = &self.from_server;
            let Some(len) = length(buffer, 1) else {
                return Ok(finished);
            };
            if buffer.len() < len + 1 {
                return Ok(finished);
            }
            let kind = buffer[0];
            let body: Vec<u8> = buffer[5..len + 1].to_vec();
            self.from_server.drain(..len + 1);
            let mut reader = Reader(&body);
            match kind {
                b'E' => {
                    let code = error_code(&mut reader)?;
                    if let Some(group) = self.pending.front_mut() {
                        group.error.get_or_insert(code);
                    }
                }
                b'C' => {
                    let tag = reader.string()?;
                    if let Some(group) = self.pending.front_mut() {
                        group.tag = Some(tag);
                    }
                }
                b'Z' if !self.ready => self.ready = true,
                b'Z' => {
                    let group = self.pending.pop_front().ok_or(Unreadable)?;
                    if let Some(fence) = group.fence {
                        finished.push(Statement {
                            sql: group.sql,
                            fence,
                            sent_after_cut: group.sent_after_cut,
                            error: group.error,
                            tag: group.tag,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// The length of the message at `buffer[at..]` (it counts itself), once its 4 bytes came.
fn length(buffer: &[u8], at: usize) -> Option<usize> {
    let bytes = buffer.get(at..at + 4)?;
    let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    usize::try_from(len).ok().filter(|len| *len >= 4)
}

/// The SQLSTATE field of an ErrorResponse.
fn error_code(reader: &mut Reader<'_>) -> Result<String, Unreadable> {
    let mut code = String::new();
    loop {
        let field = reader.take(1)?[0];
        if field == 0 {
            return Ok(code);
        }
        let value = reader.string()?;
        if field == b'C' {
            code = value;
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Unreadable> {
        if self.0.len() < len {
            return Err(Unreadable);
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn string(&mut self) -> Result<String, Unreadable> {
        let end = self.0.iter().position(|b| *b == 0).ok_or(Unreadable)?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }

    fn i16(&mut self) -> Result<i16, Unreadable> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, Unreadable> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}
