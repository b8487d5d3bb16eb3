//! Raw deflate as the wire uses it (RFC 7692 §7.2): made once per
//! publication with a fresh context and shared, and inflated with a cap.
//!
//! A "fresh context" is a compressor with no history: [`deflate_once`]
//! keeps one compressor per thread and level and resets it before each
//! message, which gives the same bytes as a new one without allocating and
//! clearing its ~270 KiB of tables for every publication.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with. permessage-deflate strips
/// it from every message and the receiver appends it again; the gzip
/// segments of SSE keep it (it is what ends them on a byte boundary).
pub use livegate_core::deflate::SYNC_TAIL;

/// Settings of the shared deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateSettings {
    /// zlib level, 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// Frames shorter than this are sent as they are.
    pub threshold: usize,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        Self {
            level: 6,
            threshold: 256,
        }
    }
}

thread_local! {
    /// One compressor per level used on this thread (at most 9).
    static COMPRESSORS: RefCell<Vec<(u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// `data` deflated on its own: a fresh raw-deflate context, a sync flush,
/// the trailing [`SYNC_TAIL`] removed. `None` when `data` is under the
/// threshold or does not get smaller.
pub fn deflate_once(data: &[u8], settings: DeflateSettings) -> Option<Bytes> {
    if data.len() < settings.threshold.max(1) {
        return None;
    }
    let level = settings.level.clamp(1, 9);
    let out = COMPRESSORS.with(|cell| {
        let mut all = cell.borrow_mut();
        let at = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, Compress::new(Compression::new(level), false)));
                all.len() - 1
            }
        };
        let c = &mut all[at].1;
        c.reset();
        sync_deflate(c, data)
    })?;
    let body = out.strip_suffix(&SYNC_TAIL)?;
    // Only worth it if the receiver gets fewer bytes (the tail it adds back
    // is not sent).
    (body.len() < data.len()).then(|| Bytes::copy_from_slice(body))
}

/// Runs `c` over all of `data` with a sync flush. zlib's rule: the flush
/// is complete once a call returns with output room to spare.
fn sync_deflate(c: &mut Compress, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let start = c.total_in();
    loop {
        let used = usize::try_from(c.total_in() - start).ok()?;
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .ok()?;
        if out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(out.capacity());
    }
}

/// Why compressed input cannot be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// Not a valid deflate stream.
    #[error("the compressed data is not valid deflate")]
    Corrupt,
    /// It inflates to more than the limit (a decompression bomb, or just too big).
    #[error("the message inflates to more than the limit")]
    TooLarge,
}

/// Inflates one message's raw-deflate data (fed frame by frame) into at
/// most `cap` bytes in total.
pub struct Inflater {
    inner: Decompress,
    cap: usize,
    produced: usize,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("cap", &self.cap)
            .field("produced", &self.produced)
            .finish()
    }
}

impl Inflater {
    /// A fresh context for one message.
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Decompress::new(false),
            cap,
            produced: 0,
        }
    }

    /// Inflates `input`, appending to `out`; stops with an error as soon as
    /// the message would pass the cap, whatever the input still holds.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), InflateError> {
        let mut chunk = [0u8; 8192];
        let mut rest = input;
        loop {
            // Never more room than the cap allows, plus one byte to notice
            // passing it.
            let room = (self.cap + 1 - self.produced).min(chunk.len());
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .decompress(rest, &mut chunk[..room], FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let used = usize::try_from(self.inner.total_in() - in_before)
                .map_err(|_| InflateError::Corrupt)?;
            let made = usize::try_from(self.inner.total_out() - out_before)
                .map_err(|_| InflateError::Corrupt)?;
            rest = &rest[used..];
            self.produced += made;
            if self.produced > self.cap {
                return Err(InflateError::TooLarge);
            }
            out.extend_from_slice(&chunk[..made]);
            match status {
                // A final block ends the data: what follows is ignored.
                Status::StreamEnd => return Ok(()),
                // Room to spare: everything given was inflated.
                _ if made < room => return Ok(()),
                _ => {}
            }
        }
    }

    /// Inflates the end of a message: the [`SYNC_TAIL`] its sender stripped.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        self.inflate(&SYNC_TAIL, out)
    }
}

/// The whole of `data` inflated (tests and the SSE/WT checks).
pub fn inflate_all(data: &[u8], cap: usize) -> Result<Vec<u8>, InflateError> {
    let mut inf = Inflater::new(cap);
    let mut out = Vec::new();
    inf.inflate(data, &mut out)?;
    inf.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::from("{\"values\":[");
        for i in 0..n {
            s.push_str(&format!("{{\"name\":\"cpu{i}\",\"value\":{}}},", i % 7));
        }
        s.push_str("0]}");
        s.into_bytes()
    }

    #[test]
    fn round_trips_and_is_smaller() {
        let data = json(100);
        let d = deflate_once(&data, DeflateSettings::default()).unwrap();
        assert!(d.len() * 3 < data.len(), "{} of {}", d.len(), data.len());
        assert!(!d.ends_with(&SYNC_TAIL));
        assert_eq!(inflate_all(&d, data.len()).unwrap(), data);
    }

    #[test]
    fn a_fresh_context_per_message_gives_the_same_bytes() {
        let a = json(50);
        let b = json(60);
        let s = DeflateSettings::default();
        let first = deflate_once(&a, s).unwrap();
        let _ = deflate_once(&b, s).unwrap();
        assert_eq!(deflate_once(&a, s).unwrap(), first);
        let mut fresh = Compress::new(Compression::new(6), false);
        let out = sync_deflate(&mut fresh, &a).unwrap();
        assert_eq!(&out[..out.len() - 4], &first[..]);
    }

    #[test]
    fn small_or_incompressible_data_stays_raw() {
        let s = DeflateSettings::default();
        assert!(deflate_once(b"{\"a\":1}", s).is_none());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(deflate_once(&noise, s).is_none());
    }

    #[test]
    fn large_inputs_need_several_rounds() {
        let data = json(20_000);
        let d = deflate_once(&data, DeflateSettings::default()).unwrap();
        assert_eq!(inflate_all(&d, data.len()).unwrap(), data);
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let zeros = vec![0u8; 1 << 20];
        let d = deflate_once(&zeros, DeflateSettings::default()).unwrap();
        assert!(d.len() < 2048);
        assert_eq!(inflate_all(&d, 1000), Err(InflateError::TooLarge));
        assert_eq!(inflate_all(&d, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(
            inflate_all(&[0xff, 0xff, 0xff, 0x00], 1000),
            Err(InflateError::Corrupt)
        );
    }
}
