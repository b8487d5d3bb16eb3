//! What goes on the wire: a publication's bytes per variant (encoding,
//! framing, compression), built on first use and shared by every
//! subscriber, and the answers that carry publications (`subscribed`,
//! `history`).
//!
//! Compression is done here once per publication ([`crate::deflate`]): the
//! raw-deflate bytes are what permessage-deflate sends with RSV1, what the
//! WebTransport framing sends with its compressed flag, and the middle of
//! each gzip segment of SSE.
//!
//! This is the only place that turns a publication into bytes: the broker
//! sequences [`SharedPublication`]s, the hub hands out `Arc`s of them, and a
//! transport asks for the variant it writes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use livegate_core::protocol::{Position, Publication, ServerFrame};
use livegate_core::Encoding;

use crate::deflate::{deflate_once, DeflateSettings};

/// How a frame is delimited on its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The frame alone: the transport delimits messages (WebSocket, SSE,
    /// long-poll, datagrams).
    Message,
    /// With the 4-byte length prefix of stream transports
    /// (`livegate_core::framing`, WebTransport streams).
    LengthPrefixed,
}

/// Whether the bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As encoded.
    None,
    /// Raw deflate, a fresh context, the sync flush's `00 00 ff ff` stripped
    /// (RFC 7692 §7.2.1); frames under the threshold, or that would not
    /// shrink, stay as encoded.
    Deflate,
}

/// One way of putting a publication on the wire: the key of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// JSON or MessagePack.
    pub encoding: Encoding,
    /// Delimited by the transport or length-prefixed.
    pub framing: Framing,
    /// Compressed or not.
    pub compression: Compression,
}

impl Variant {
    /// How many variants there are (the cache's size).
    const COUNT: usize = 8;

    fn index(self) -> usize {
        let framing = match self.framing {
            Framing::Message => 0,
            Framing::LengthPrefixed => 1,
        };
        let compression = match self.compression {
            Compression::None => 0,
            Compression::Deflate => 1,
        };
        self.encoding.index() * 4 + framing * 2 + compression
    }
}

/// Bytes of a compressed variant, with whether compression applied.
#[derive(Debug, Clone, Copy)]
pub struct Compressed<'a> {
    /// The bytes to send.
    pub bytes: &'a Bytes,
    /// Whether they are deflated (RSV1 on WebSocket); `false` when the
    /// frame was under the threshold or would not shrink.
    pub deflated: bool,
}

/// A sequenced publication with its bytes, made once per variant on first
/// use.
#[derive(Debug)]
pub struct SharedPublication {
    /// The publication.
    pub publication: Publication,
    /// `None` in a compressed slot: sent as encoded (the uncompressed
    /// slot's bytes).
    bytes: [OnceLock<Option<Bytes>>; Variant::COUNT],
}

/// A shared publication: what the log keeps and every queue holds.
pub type SharedPub = Arc<SharedPublication>;

impl SharedPublication {
    /// A publication whose bytes are not made yet.
    pub fn new(publication: Publication) -> Self {
        Self {
            publication,
            bytes: Default::default(),
        }
    }

    /// The publication in `variant`, made on first use and shared after.
    /// A compressed variant made with `settings` (the gateway has one set,
    /// so whoever makes it first makes it for all).
    pub fn bytes(&self, variant: Variant, settings: DeflateSettings) -> Compressed<'_> {
        let plain = Variant {
            compression: Compression::None,
            ..variant
        };
        let made = self.bytes[variant.index()].get_or_init(|| match variant {
            Variant {
                framing: Framing::Message,
                compression: Compression::None,
                encoding,
            } => Some(Bytes::from(encoding.encode_publication(&self.publication))),
            Variant {
                framing: Framing::LengthPrefixed,
                compression: Compression::None,
                encoding,
            } => Some(Bytes::from(livegate_core::framing::frame(
                self.frame(encoding),
            ))),
            Variant {
                framing: Framing::Message,
                compression: Compression::Deflate,
                encoding,
            } => deflate_once(self.frame(encoding), settings),
            Variant {
                framing: Framing::LengthPrefixed,
                compression: Compression::Deflate,
                encoding,
            } => {
                let deflated = self.deflated(encoding, settings);
                deflated
                    .deflated
                    .then(|| Bytes::from(livegate_core::framing::frame_compressed(deflated.bytes)))
            }
        });
        match made {
            Some(bytes) => Compressed {
                bytes,
                deflated: variant.compression == Compression::Deflate,
            },
            // Only compressed slots hold `None`; their plain twin never does.
            None => self.bytes(plain, settings),
        }
    }

    /// The `publication` frame in `encoding`, deflated when that applies.
    pub fn deflated(&self, encoding: Encoding, settings: DeflateSettings) -> Compressed<'_> {
        self.bytes(
            Variant {
                encoding,
                framing: Framing::Message,
                compression: Compression::Deflate,
            },
            settings,
        )
    }

    /// Its whole `publication` frame in `encoding`.
    pub fn frame(&self, encoding: Encoding) -> &Bytes {
        self.bytes(
            Variant {
                encoding,
                framing: Framing::Message,
                compression: Compression::None,
            },
            DeflateSettings::default(),
        )
        .bytes
    }

    /// The frame with the length prefix of stream transports.
    pub fn length_prefixed(&self, encoding: Encoding) -> &Bytes {
        self.bytes(
            Variant {
                encoding,
                framing: Framing::LengthPrefixed,
                compression: Compression::None,
            },
            DeflateSettings::default(),
        )
        .bytes
    }
}

/// Any server frame (answers, errors, `connected`, `disconnect`).
pub fn server_frame(encoding: Encoding, frame: &ServerFrame) -> Bytes {
    Bytes::from(encoding.encode_server(frame))
}

/// A `subscribed` frame holding `replay`'s shared frames.
pub fn subscribed_frame(
    encoding: Encoding,
    id: Option<u64>,
    topic: &str,
    position: &Position,
    recovered: bool,
    replay: &[SharedPub],
) -> Bytes {
    let head = ServerFrame::Subscribed {
        id,
        topic: topic.to_owned(),
        epoch: position.epoch.clone(),
        offset: position.offset,
        recovered,
        publications: Vec::new(),
    };
    with_publications(encoding, &head, replay)
}

/// A `history` frame holding `publications`' shared frames.
pub fn history_frame(
    encoding: Encoding,
    id: Option<u64>,
    topic: &str,
    position: &Position,
    publications: &[SharedPub],
    more: bool,
) -> Bytes {
    let head = ServerFrame::History {
        id,
        topic: topic.to_owned(),
        epoch: position.epoch.clone(),
        offset: position.offset,
        publications: Vec::new(),
        more,
    };
    with_publications(encoding, &head, publications)
}

fn with_publications(encoding: Encoding, head: &ServerFrame, pubs: &[SharedPub]) -> Bytes {
    let frames: Vec<&Bytes> = pubs.iter().map(|p| p.frame(encoding)).collect();
    Bytes::from(encoding.encode_with_publications(head, &frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use livegate_core::Payload;

    #[test]
    fn each_variant_is_made_once_and_shared() {
        let p = SharedPublication::new(Publication {
            topic: "t".into(),
            epoch: "e".into(),
            offset: 1,
            event: None,
            data: Payload::from_json("{\"x\":1}".to_owned()).unwrap(),
            time_ms: 0,
        });
        let a = p.frame(Encoding::Json).clone();
        let b = p.frame(Encoding::Json).clone();
        assert_eq!(a.as_ptr(), b.as_ptr());
        let framed = p.length_prefixed(Encoding::Json);
        assert_eq!(&framed[4..], &a[..]);
        assert_eq!(
            u32::from_be_bytes([framed[0], framed[1], framed[2], framed[3]]) as usize,
            a.len()
        );
        assert_ne!(p.frame(Encoding::Msgpack), &a);
    }
}
