//! The socket as hyper sees it: it reports activity to the connection's [`Conn`], keeps the
//! connection's place in the table for as long as the socket lives (upgraded websockets
//! included), and replaces the bodiless answers hyper writes by itself for requests it cannot
//! parse (400, 414, 431) with botwave's JSON error answer.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
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
}

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
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
