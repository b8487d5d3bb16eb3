//! gzip for SSE and long-poll (`Content-Encoding: gzip`), made of
//! independent deflate segments so a publication's shared deflate bytes
//! ([`crate::wire`]) are reused on every stream.
//!
//! Why segments concatenate: a raw deflate made by a fresh context and
//! ended with a sync flush consists of non-final blocks and ends with an
//! empty stored block (`00 00 ff ff`), on a byte boundary. Another such
//! segment, or a stored block, may follow directly: the next block header
//! starts on that byte, and no back-reference reaches before its own
//! segment. So a stream is the gzip header, segments in any number, a final
//! empty block, then CRC32 and length of everything uncompressed. Each
//! segment is complete in itself, so an event reaches the client (and its
//! inflater) without waiting for the next; the trailer comes only at the
//! end of the stream.

use axum::http::{header, HeaderMap};
use bytes::{BufMut, Bytes, BytesMut};

use crate::deflate::{deflate_once, DeflateSettings, SYNC_TAIL};

/// gzip member header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final block holding nothing (fixed Huffman, BFINAL set, end of block).
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];
/// Largest stored block.
const MAX_STORED: usize = 0xffff;

/// Whether `Accept-Encoding` takes gzip (`gzip` or `*` without `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(!q_zero),
            "*" => any = Some(!q_zero),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// One gzip member written piece by piece.
#[derive(Debug)]
pub struct GzipWriter {
    settings: DeflateSettings,
    crc: crc32fast::Hasher,
    /// Uncompressed length mod 2^32 (what gzip's ISIZE holds).
    len: u32,
    out: BytesMut,
}

impl GzipWriter {
    /// A member whose header is the first output.
    pub fn new(settings: DeflateSettings) -> Self {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(&HEADER);
        Self {
            settings,
            crc: crc32fast::Hasher::new(),
            len: 0,
            out,
        }
    }

    /// The deflate settings it was made with.
    pub fn settings(&self) -> DeflateSettings {
        self.settings
    }

    fn count(&mut self, plain: &[u8]) {
        self.crc.update(plain);
        self.len = self.len.wrapping_add(plain.len() as u32);
    }

    /// `plain` as stored blocks (for the few bytes around a shared segment).
    pub fn stored(&mut self, plain: &[u8]) {
        self.count(plain);
        for part in plain.chunks(MAX_STORED) {
            let n = part.len() as u16;
            // BFINAL 0, BTYPE 00, padding: one zero byte (we are on a byte boundary).
            self.out.put_u8(0);
            self.out.put_u16_le(n);
            self.out.put_u16_le(!n);
            self.out.put_slice(part);
        }
    }

    /// A segment deflated elsewhere (`deflated` as [`deflate_once`] makes
    /// it, tail stripped) standing for `plain`.
    pub fn shared(&mut self, deflated: &[u8], plain: &[u8]) {
        self.count(plain);
        self.out.put_slice(deflated);
        self.out.put_slice(&SYNC_TAIL);
    }

    /// `plain` deflated for this stream alone (or stored when small).
    pub fn segment(&mut self, plain: &[u8]) {
        if plain.is_empty() {
            return;
        }
        match deflate_once(plain, self.settings) {
            Some(z) => self.shared(&z, plain),
            None => self.stored(plain),
        }
    }

    /// The output so far.
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Ends the member: the final block and the trailer.
    pub fn finish(&mut self) -> Bytes {
        self.out.put_slice(&FINAL_BLOCK);
        let crc = std::mem::take(&mut self.crc).finalize();
        self.out.put_u32_le(crc);
        self.out.put_u32_le(self.len);
        self.take()
    }
}

/// A whole body as one gzip member (long-poll answers).
pub fn gzip_body(body: &[u8], settings: DeflateSettings) -> Bytes {
    let mut w = GzipWriter::new(settings);
    w.segment(body);
    let mut out = BytesMut::from(&w.take()[..]);
    out.put_slice(&w.finish());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn stored_shared_and_own_segments_make_one_valid_member() {
        let settings = DeflateSettings::default();
        let big = "{\"k\":\"value value value value\"}".repeat(40);
        let shared = deflate_once(big.as_bytes(), settings).unwrap();
        let mut w = GzipWriter::new(settings);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for i in 0..3 {
            let prefix = format!("id: t:e:{i}\nevent: publication\ndata: ");
            w.stored(prefix.as_bytes());
            w.shared(&shared, big.as_bytes());
            w.segment(b"\n\n");
            w.segment("x".repeat(1000).as_bytes());
            want.extend_from_slice(prefix.as_bytes());
            want.extend_from_slice(big.as_bytes());
            want.extend_from_slice(b"\n\n");
            want.extend_from_slice("x".repeat(1000).as_bytes());
            let chunk = w.take();
            stream.extend_from_slice(&chunk);
            // Everything so far inflates now, before the trailer.
            let mut d = flate2::Decompress::new(false);
            let mut out = vec![0u8; want.len() + 16];
            d.decompress(&stream[10..], &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(&out[..d.total_out() as usize], &want[..], "segment {i}");
        }
        stream.extend_from_slice(&w.finish());
        assert_eq!(gunzip(&stream), want);
        assert_eq!(gunzip(&gzip_body(&want, settings)), want);
    }

    #[test]
    fn long_stored_blocks_are_split() {
        let plain = vec![7u8; 200_000];
        let mut w = GzipWriter::new(DeflateSettings::default());
        w.stored(&plain);
        let mut s = w.take().to_vec();
        s.extend_from_slice(&w.finish());
        assert_eq!(gunzip(&s), plain);
    }

    #[test]
    fn accept_encoding() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("gzip, deflate, br"));
        assert!(h("br;q=1.0, gzip;q=0.8"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("identity"));
        assert!(!h("*, gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
