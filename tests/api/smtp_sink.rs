//! An SMTP server inside the test: it accepts every message on a loopback port and hands each
//! to the test as it arrives, its body decoded, so a test reads the email a user would get.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One email as delivered: the envelope recipients and the decoded text body.
#[derive(Debug)]
pub struct Received {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

pub struct SmtpSink {
    pub url: String,
    inbox: mpsc::UnboundedReceiver<Received>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (deliver, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, deliver.clone()));
            }
        });
        Self { url, inbox }
    }

    /// The next email, within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.inbox.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Speaks just enough SMTP (RFC 5321) for one client: greeting, EHLO, MAIL, RCPT, DATA, QUIT.
async fn serve(socket: tokio::net::TcpStream, deliver: mpsc::UnboundedSender<Received>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
    let mut to = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                let address = line.split(['<', '>']).nth(1).unwrap_or("").to_owned();
                to.push(address);
                b"250 OK\r\n"
            }
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut data = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    // Dot-stuffing: a leading "." was doubled by the client.
                    data.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
                }
                let _ = deliver.send(parse(std::mem::take(&mut to), &data));
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn parse(to: Vec<String>, data: &[String]) -> Received {
    let split = data.iter().position(String::is_empty).unwrap_or(data.len());
    let (headers, body) = data.split_at(split);
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let raw: Vec<&str> = body.iter().skip(1).map(String::as_str).collect();
    let body = match header("Content-Transfer-Encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw.concat())
                .expect("base64 body"),
        )
        .expect("UTF-8 body"),
        "quoted-printable" => quoted_printable(&raw),
        _ => raw.join("\n"),
    };
    Received {
        to,
        subject: header("Subject"),
        body,
    }
}

fn quoted_printable(lines: &[&str]) -> String {
    let mut text = String::new();
    for line in lines {
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (*line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        let mut decoded = Vec::new();
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
                let hex = std::str::from_utf8(&bytes[i + 1..(i + 3).min(bytes.len())]).unwrap();
                decoded.push(u8::from_str_radix(hex, 16).expect("=XX escape"));
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        text.push_str(&String::from_utf8(decoded).expect("UTF-8 body"));
        if !soft_break {
            text.push('\n');
        }
    }
    text
}
