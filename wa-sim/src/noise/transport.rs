//! The transport after a completed handshake: AES-256-GCM per direction, each with
//! its own frame counter starting at 0.

use wacore_noise::NoiseCipher;

use super::NoiseFailure;

pub struct TransportCipher {
    send: NoiseCipher,
    receive: NoiseCipher,
    send_counter: u32,
    receive_counter: u32,
}

impl TransportCipher {
    /// Takes the keys as `NoiseHandshake::finish` returns them, which names them from
    /// the initiator's side: the client's write key is the server's read key.
    pub fn from_initiator_keys(client_write: NoiseCipher, client_read: NoiseCipher) -> Self {
        Self {
            send: client_read,
            receive: client_write,
            send_counter: 0,
            receive_counter: 0,
        }
    }

    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseFailure> {
        let sealed = self
            .send
            .encrypt_with_counter(self.send_counter, plaintext)?;
        self.send_counter = self.send_counter.wrapping_add(1);
        Ok(sealed)
    }

    /// Decrypts the next inbound frame. A failure leaves the stream unusable (the
    /// counters are out of step), so the caller closes the connection.
    pub fn open(&mut self, mut frame: Vec<u8>) -> Result<Vec<u8>, NoiseFailure> {
        let counter = self.receive_counter;
        self.receive_counter = self.receive_counter.wrapping_add(1);
        self.receive
            .decrypt_in_place_with_counter(counter, &mut frame)?;
        Ok(frame)
    }
}
