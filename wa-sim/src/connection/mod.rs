//! One client websocket: the Noise handshake (XX, IK or XXfallback), then a [`session::Session`] that speaks
//! stanzas until either side closes. Every failure ends only this connection.

mod iq;
mod link_code;
mod messages;
mod pairing;
mod phone_sync;
mod session;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info};
use warp::ws::{Message, WebSocket};

use crate::noise::{
    CompletedHandshake, HandshakePattern, NoiseFailure, ServerHelloStep, respond_to_client_hello,
};
use crate::state::{ConnHandle, Shared};
use crate::wire::{FrameError, FrameReader, encode_frame, strip_prologue};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the socket")]
    Closed,
    #[error("websocket: {0}")]
    WebSocket(#[from] warp::Error),
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    #[error("noise: {0}")]
    Noise(#[from] NoiseFailure),
    #[error("undecodable stanza: {0}")]
    Stanza(String),
    #[error("the client sent a text websocket message")]
    TextMessage,
    #[error("handshake timed out")]
    HandshakeTimeout,
}

pub type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;
pub type WsStream = futures_util::stream::SplitStream<WebSocket>;

/// Serves one upgraded websocket until it closes.
pub async fn serve(ws: WebSocket, shared: Arc<Shared>) {
    let id = shared.next_id();
    shared.stats.connection_opened();
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let conn = ConnHandle {
        id,
        commands: commands_tx,
    };
    let (mut sink, mut stream) = ws.split();
    let mut reader = FrameReader::new(shared.config.max_frame_len);

    let handshake = tokio::time::timeout(
        shared.config.handshake_timeout,
        handshake(&shared, &mut sink, &mut stream, &mut reader),
    )
    .await
    .unwrap_or(Err(ConnError::HandshakeTimeout));

    match handshake {
        Ok(done) => {
            shared.stats.handshake_ok(done.pattern);
            let session = session::Session::new(
                shared.clone(),
                conn,
                commands_rx,
                sink,
                stream,
                reader,
                done.transport,
            );
            let end = session.run(done.client_static, done.payload).await;
            match end {
                Ok(()) | Err(ConnError::Closed) => debug!(conn = id, "connection closed"),
                Err(error) => {
                    if matches!(
                        error,
                        ConnError::Frame(_)
                            | ConnError::Noise(_)
                            | ConnError::Stanza(_)
                            | ConnError::TextMessage
                    ) {
                        shared.stats.protocol_error();
                    }
                    info!(conn = id, %error, "connection closed on error");
                }
            }
        }
        Err(error) => {
            shared.stats.handshake_failed();
            info!(conn = id, %error, "handshake failed");
            let _ = sink.send(Message::close()).await;
            let _ = sink.close().await;
        }
    }
    shared.drop_refs_of(id);
    shared.link_codes.drop_of(id);
    shared.stats.connection_closed();
}

async fn handshake(
    shared: &Shared,
    sink: &mut WsSink,
    stream: &mut WsStream,
    reader: &mut FrameReader,
) -> Result<CompletedHandshake, ConnError> {
    let first = next_binary(stream).await?;
    reader.feed(strip_prologue(&first)?);
    let hello = next_frame(stream, reader).await?;
    // The key rotation hook may swap the identity meanwhile; this handshake keeps the
    // one it started with.
    let identity = shared.noise.current();
    match respond_to_client_hello(&identity, &hello)? {
        ServerHelloStep::Resumed {
            server_hello,
            handshake,
        } => {
            debug!("client resumed with IK");
            sink.send(Message::binary(encode_frame(&server_hello)?))
                .await?;
            Ok(*handshake)
        }
        ServerHelloStep::AwaitFinish {
            server_hello,
            awaiting,
        } => {
            if awaiting.pattern() == HandshakePattern::XxFallback {
                debug!("client tried IK with a stale server static key; answered XXfallback");
            }
            sink.send(Message::binary(encode_frame(&server_hello)?))
                .await?;
            let finish = next_frame(stream, reader).await?;
            Ok(awaiting.complete(&finish)?)
        }
    }
}

/// The payload of the next binary websocket message (pings are answered by warp).
pub async fn next_binary(stream: &mut WsStream) -> Result<Vec<u8>, ConnError> {
    loop {
        let message = stream.next().await.ok_or(ConnError::Closed)??;
        if message.is_close() {
            return Err(ConnError::Closed);
        }
        if message.is_text() {
            return Err(ConnError::TextMessage);
        }
        if message.is_binary() {
            return Ok(message.into_bytes().to_vec());
        }
    }
}

async fn next_frame(stream: &mut WsStream, reader: &mut FrameReader) -> Result<Vec<u8>, ConnError> {
    loop {
        if let Some(frame) = reader.next_frame()? {
            return Ok(frame);
        }
        let bytes = next_binary(stream).await?;
        reader.feed(&bytes);
    }
}
