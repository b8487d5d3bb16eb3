//! Length-prefixed framing for stream transports (WebTransport): each frame
//! is a 4-byte big-endian length, then that many bytes of one encoded frame.
//! A length of 0 is a heartbeat: it carries no frame.
//!
//! On a session that negotiated compression (`compress=deflate`,
//! `docs/protocol.md` §4.5) the top bit of the prefix is the compressed
//! flag: the rest of the prefix is the length of raw-deflate bytes (a
//! fresh context, the sync flush's trailing `00 00 ff ff` stripped, as in
//! RFC 7692) that inflate to one encoded frame. Lengths never reach 2^31,
//! so on other sessions the bit is always clear.

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// Why a stream of frames cannot be read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A length over the limit.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Appends one frame (length prefix and bytes) to `out`.
pub fn write_frame(out: &mut Vec<u8>, frame: &[u8]) {
    // Frames are bounded far below 4 GiB by every limit in the protocol.
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
}

/// The compressed flag in a length prefix.
pub const COMPRESSED: u32 = 0x8000_0000;

/// Appends one compressed frame: `deflated` is raw deflate as described in
/// the module comment.
pub fn write_frame_compressed(out: &mut Vec<u8>, deflated: &[u8]) {
    let len = u32::try_from(deflated.len()).unwrap_or(u32::MAX) & !COMPRESSED;
    out.extend_from_slice(&(len | COMPRESSED).to_be_bytes());
    out.extend_from_slice(deflated);
}

/// One compressed frame with its prefix.
pub fn frame_compressed(deflated: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + deflated.len());
    write_frame_compressed(&mut out, deflated);
    out
}

/// One frame with its prefix.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + bytes.len());
    write_frame(&mut out, bytes);
    out
}

/// The heartbeat: an empty frame.
pub const HEARTBEAT: [u8; PREFIX] = [0; PREFIX];

/// What a reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One frame's bytes.
    Frame(Vec<u8>),
    /// An empty frame.
    Heartbeat,
}

/// What a reader of a compressing session yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlaggedItem {
    /// One frame's bytes, as sent.
    Frame {
        /// The bytes after the prefix.
        bytes: Vec<u8>,
        /// Whether they are raw deflate to inflate into the frame.
        compressed: bool,
    },
    /// An empty frame.
    Heartbeat,
}

impl From<Item> for FlaggedItem {
    fn from(item: Item) -> Self {
        match item {
            Item::Frame(bytes) => Self::Frame {
                bytes,
                compressed: false,
            },
            Item::Heartbeat => Self::Heartbeat,
        }
    }
}

/// Splits a byte stream into frames, fed in chunks of any size.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    max: usize,
}

impl FrameReader {
    /// A reader refusing frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Bytes held for an incomplete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes; returns every complete item, or an error once a length
    /// is over the limit (the stream cannot be read further). The top bit
    /// of a prefix is part of the length here (sessions without compression).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Item>, FramingError> {
        Ok(self
            .split(chunk, false)?
            .into_iter()
            .map(|i| match i {
                FlaggedItem::Frame { bytes, .. } => Item::Frame(bytes),
                FlaggedItem::Heartbeat => Item::Heartbeat,
            })
            .collect())
    }

    /// [`FrameReader::push`] on a compressing session: the top bit of a
    /// prefix is the compressed flag ([`COMPRESSED`]).
    pub fn push_flagged(&mut self, chunk: &[u8]) -> Result<Vec<FlaggedItem>, FramingError> {
        self.split(chunk, true)
    }

    fn split(&mut self, chunk: &[u8], flagged: bool) -> Result<Vec<FlaggedItem>, FramingError> {
        self.buf.extend_from_slice(chunk);
        let mut items = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= PREFIX {
            let mut len_bytes = [0u8; PREFIX];
            len_bytes.copy_from_slice(&self.buf[at..at + PREFIX]);
            let mut prefix = u32::from_be_bytes(len_bytes);
            let compressed = flagged && prefix & COMPRESSED != 0;
            if compressed {
                prefix &= !COMPRESSED;
            }
            let len = prefix as usize;
            if len > self.max {
                return Err(FramingError::TooLarge { len, max: self.max });
            }
            if self.buf.len() - at - PREFIX < len {
                break;
            }
            let start = at + PREFIX;
            items.push(if len == 0 && !compressed {
                FlaggedItem::Heartbeat
            } else {
                FlaggedItem::Frame {
                    bytes: self.buf[start..start + len].to_vec(),
                    compressed,
                }
            });
            at = start + len;
        }
        self.buf.drain(..at);
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_any_chunking() {
        let mut stream = Vec::new();
        write_frame(&mut stream, b"hello");
        stream.extend_from_slice(&HEARTBEAT);
        write_frame(&mut stream, &[7u8; 300]);
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let mut r = FrameReader::new(1024);
            let mut items = Vec::new();
            for c in stream.chunks(chunk) {
                items.extend(r.push(c).unwrap());
            }
            assert_eq!(
                items,
                vec![
                    Item::Frame(b"hello".to_vec()),
                    Item::Heartbeat,
                    Item::Frame(vec![7; 300])
                ],
                "chunk {chunk}"
            );
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn refuses_oversized_lengths_before_buffering_them() {
        let mut r = FrameReader::new(16);
        assert_eq!(
            r.push(&[0xff, 0xff, 0xff, 0xff, 1, 2]),
            Err(FramingError::TooLarge {
                len: u32::MAX as usize,
                max: 16
            })
        );
        let mut r = FrameReader::new(16);
        assert_eq!(r.push(&frame(&[1; 16])).unwrap().len(), 1);
        assert!(r.push(&frame(&[1; 17])).is_err());
    }

    #[test]
    fn the_compressed_flag_is_read_only_where_negotiated() {
        let mut stream = frame_compressed(b"zz");
        write_frame(&mut stream, b"plain");
        stream.extend_from_slice(&HEARTBEAT);
        let mut r = FrameReader::new(1024);
        assert_eq!(
            r.push_flagged(&stream).unwrap(),
            vec![
                FlaggedItem::Frame {
                    bytes: b"zz".to_vec(),
                    compressed: true
                },
                FlaggedItem::Frame {
                    bytes: b"plain".to_vec(),
                    compressed: false
                },
                FlaggedItem::Heartbeat
            ]
        );
        // Without compression the flag is a length far over any limit.
        assert!(FrameReader::new(1024).push(&stream).is_err());
    }
}
