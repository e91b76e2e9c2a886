//! WhatsApp Web socket framing: the `WA\x06\x03` prologue on the first message, then
//! `len24_be + payload` frames, reassembled across websocket messages with a size cap.

use wacore_binary::consts::WA_CONN_HEADER;

/// Bytes in a frame's big-endian length prefix.
const LENGTH_PREFIX: usize = 3;
/// The optional edge-routing pre-intro the client prepends when the server handed it routing info.
const EDGE_ROUTING_MAGIC: [u8; 2] = *b"ED";

/// Why the bytes a client sent cannot be framed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the first message does not start with the WA prologue")]
    BadPrologue,
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("frame payload of {0} bytes does not fit a 24-bit length")]
    TooLongToEncode(usize),
}

/// Strips the optional edge-routing pre-intro and the mandatory `WA` prologue from the
/// first websocket message, returning the framed bytes that follow.
pub fn strip_prologue(first_message: &[u8]) -> Result<&[u8], FrameError> {
    let mut rest = first_message;
    if rest.starts_with(&EDGE_ROUTING_MAGIC) {
        // "ED" 0x00 0x01 + len24 + routing info
        let header_len = 4 + LENGTH_PREFIX;
        if rest.len() < header_len {
            return Err(FrameError::BadPrologue);
        }
        let routing_len = read_len24(&rest[4..header_len]);
        rest = rest
            .get(header_len + routing_len..)
            .ok_or(FrameError::BadPrologue)?;
    }
    rest.strip_prefix(&WA_CONN_HEADER[..])
        .ok_or(FrameError::BadPrologue)
}

fn read_len24(bytes: &[u8]) -> usize {
    (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2])
}

/// Prefixes `payload` with its 24-bit length.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = payload.len();
    if len >= 1 << 24 {
        return Err(FrameError::TooLongToEncode(len));
    }
    let mut out = Vec::with_capacity(LENGTH_PREFIX + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reassembles frames from websocket messages; refuses any frame above `max_frame_len`
/// as soon as its length prefix is seen, before buffering it.
pub struct FrameReader {
    buffer: Vec<u8>,
    max_frame_len: usize,
}

impl FrameReader {
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            buffer: Vec::new(),
            max_frame_len,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buffer.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = read_len24(&self.buffer[..LENGTH_PREFIX]);
        if len > self.max_frame_len {
            return Err(FrameError::Oversized {
                len,
                max: self.max_frame_len,
            });
        }
        if self.buffer.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        let frame = self.buffer[LENGTH_PREFIX..LENGTH_PREFIX + len].to_vec();
        self.buffer.drain(..LENGTH_PREFIX + len);
        Ok(Some(frame))
    }

    /// Bytes received that do not yet form a whole frame.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_packed_across_messages_are_reassembled() {
        let mut wire = encode_frame(b"hello").unwrap();
        wire.extend(encode_frame(b"world!").unwrap());
        let mut reader = FrameReader::new(64);
        reader.feed(&wire[..4]);
        assert_eq!(reader.next_frame().unwrap(), None);
        reader.feed(&wire[4..]);
        assert_eq!(reader.next_frame().unwrap().unwrap(), b"hello");
        assert_eq!(reader.next_frame().unwrap().unwrap(), b"world!");
        assert_eq!(reader.next_frame().unwrap(), None);
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn an_oversized_length_prefix_is_refused_before_buffering() {
        let mut reader = FrameReader::new(10);
        reader.feed(&[0, 0, 11]);
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::Oversized { len: 11, max: 10 })
        );
    }

    #[test]
    fn the_prologue_is_required_and_edge_routing_is_skipped() {
        assert_eq!(
            strip_prologue(b"XX\x06\x03abc"),
            Err(FrameError::BadPrologue)
        );
        assert_eq!(strip_prologue(b"WA\x06\x03abc").unwrap(), b"abc");
        let with_edge = [b"ED\x00\x01\x00\x00\x02zz".as_slice(), b"WA\x06\x03abc"].concat();
        assert_eq!(strip_prologue(&with_edge).unwrap(), b"abc");
        assert_eq!(strip_prologue(b"ED\x00"), Err(FrameError::BadPrologue));
    }
}
