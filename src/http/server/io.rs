//! The socket as hyper sees it: it reports activity to the connection's [`Conn`], keeps the
//! connection's place in the table for as long as the socket lives (upgraded websockets
//! included), and replaces the bodiless answers hyper writes by itself for requests it cannot
//! parse (400, 414, 431) with botwave's JSON error answer. Closing, it lingers: see
//! [`Linger`].

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use warp::http::StatusCode;

use super::table::Admission;
use crate::http::error;

pub struct MeteredIo {
    stream: TcpStream,
    admission: Admission,
    rewrite: Rewrite,
    linger: Option<Linger>,
}

/// After our FIN, what the client still sends (a request body no handler read, say) is read
/// and dropped for a moment before the socket closes. Closing with unread bytes makes the
/// kernel answer with a reset, which destroys the end of a large answer the client has not
/// read yet. Bounded in time and bytes, like nginx's lingering close.
struct Linger {
    until: Pin<Box<tokio::time::Sleep>>,
    drained: usize,
}

const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

enum Rewrite {
    None,
    /// Writing our answer in place of hyper's; `usize` is how much of it is out.
    Writing(Vec<u8>, usize),
    /// Our answer is out: hyper has nothing more to say on this connection.
    Done,
}

impl MeteredIo {
    pub fn new(stream: TcpStream, admission: Admission) -> Self {
        Self {
            stream,
            admission,
            rewrite: Rewrite::None,
            linger: None,
        }
    }

    /// Looks at the start of a write: a response head nobody asked a handler for is hyper's
    /// own parse-error answer, which gets replaced.
    fn inspect(&mut self, buf: &[u8]) {
        let Some(status) = response_status(buf) else {
            return;
        };
        if status.is_informational() || self.admission.conn.take_owed_response() {
            return;
        }
        let (code, message) = match status {
            StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                "headers_too_large",
                "the request headers are larger than this server accepts",
            ),
            StatusCode::BAD_REQUEST => ("bad_request", "the request is not valid HTTP/1.1"),
            _ => return,
        };
        if buf.ends_with(b"\r\n\r\n") {
            self.rewrite = Rewrite::Writing(error::raw_error_response(status, code, message), 0);
        }
    }
}

/// The status of `buf` if it starts with an HTTP/1.1 response head.
fn response_status(buf: &[u8]) -> Option<StatusCode> {
    let code = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    StatusCode::from_bytes(code).ok()
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.admission.conn.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.rewrite, Rewrite::None) {
            this.inspect(buf);
        }
        match &mut this.rewrite {
            Rewrite::None => {
                let written = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
                this.admission.conn.on_write();
                Poll::Ready(Ok(written))
            }
            Rewrite::Writing(answer, sent) => {
                while *sent < answer.len() {
                    let n = ready!(Pin::new(&mut this.stream).poll_write(cx, &answer[*sent..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *sent += n;
                }
                this.rewrite = Rewrite::Done;
                Poll::Ready(Ok(buf.len()))
            }
            Rewrite::Done => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                drained: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 4096];
        loop {
            if linger.until.as_mut().poll(cx).is_ready() || linger.drained > LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                // The client closed its side too, or the socket failed: nothing to wait for.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => linger.drained += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
