//! Draws a WhatsApp pairing string as a QR code, in SVG (for pages) and PNG (for everything
//! else). The PNG encoder is the few lines a one-channel image needs, rather than an image crate.

use qrcode::{Color, EcLevel, QrCode, render::svg};

#[derive(Debug, thiserror::Error)]
#[error("cannot draw this text as a QR code: {0}")]
pub struct QrError(String);

/// Pixels per QR module in the PNG, and the quiet zone around the code, in modules.
const SCALE: usize = 6;
const QUIET_ZONE: usize = 4;

fn encode(text: &str) -> Result<QrCode, QrError> {
    // WhatsApp's own QR codes use level L; it keeps the code small enough to scan from a screen.
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| QrError(e.to_string()))
}

pub fn svg(text: &str) -> Result<String, QrError> {
    Ok(encode(text)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = encode(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;

    // Scanlines: a filter byte (0 = none) and one grey byte per pixel.
    let mut raw = Vec::with_capacity(side * (side + 1));
    for y in 0..side {
        raw.push(0);
        let my = (y / SCALE).checked_sub(QUIET_ZONE).filter(|m| *m < modules);
        for x in 0..side {
            let mx = (x / SCALE).checked_sub(QUIET_ZONE).filter(|m| *m < modules);
            let dark = matches!((mx, my), (Some(mx), Some(my)) if colors[my * modules + mx] == Color::Dark);
            raw.push(if dark { 0 } else { 255 });
        }
    }

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&(side as u32).to_be_bytes());
    header.extend_from_slice(&(side as u32).to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, no interlace
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of uncompressed deflate blocks: a QR image is a few tens of kilobytes, so
/// compressing it buys nothing worth code.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRING: &str = "2@REFREFREF,UA3tAbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab=,4cnLAbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab=,xEj3AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab=,9";

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn png_is_a_well_formed_square_image() {
        let png = png(PAIRING).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!(width, height);
        assert_eq!(width as usize % SCALE, 0);
        assert!(
            png.ends_with(&[0xAE, 0x42, 0x60, 0x82]),
            "IEND chunk with its CRC"
        );
    }

    #[test]
    fn svg_draws_the_code() {
        let svg = svg(PAIRING).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"));
    }
}
