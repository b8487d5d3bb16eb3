//! What goes on the wire: a publication's bytes per variant (encoding,
//! framing; compression will be one more key), built on first use and
//! shared by every subscriber, and the answers that carry publications
//! (`subscribed`, `history`).
//!
//! This is the only place that turns a publication into bytes: the broker
//! sequences [`SharedPublication`]s, the hub hands out `Arc`s of them, and a
//! transport asks for the variant it writes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use livegate_core::protocol::{Position, Publication, ServerFrame};
use livegate_core::Encoding;

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

/// One way of putting a publication on the wire: the key of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// JSON or MessagePack.
    pub encoding: Encoding,
    /// Delimited by the transport or length-prefixed.
    pub framing: Framing,
}

impl Variant {
    /// How many variants there are (the cache's size).
    const COUNT: usize = 4;

    fn index(self) -> usize {
        let framing = match self.framing {
            Framing::Message => 0,
            Framing::LengthPrefixed => 1,
        };
        self.encoding.index() * 2 + framing
    }
}

/// A sequenced publication with its bytes, made once per variant on first
/// use.
#[derive(Debug)]
pub struct SharedPublication {
    /// The publication.
    pub publication: Publication,
    bytes: [OnceLock<Bytes>; Variant::COUNT],
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
    pub fn bytes(&self, variant: Variant) -> &Bytes {
        self.bytes[variant.index()].get_or_init(|| match variant.framing {
            Framing::Message => Bytes::from(variant.encoding.encode_publication(&self.publication)),
            Framing::LengthPrefixed => {
                Bytes::from(livegate_core::framing::frame(self.frame(variant.encoding)))
            }
        })
    }

    /// Its whole `publication` frame in `encoding`.
    pub fn frame(&self, encoding: Encoding) -> &Bytes {
        self.bytes(Variant {
            encoding,
            framing: Framing::Message,
        })
    }

    /// The frame with the length prefix of stream transports.
    pub fn length_prefixed(&self, encoding: Encoding) -> &Bytes {
        self.bytes(Variant {
            encoding,
            framing: Framing::LengthPrefixed,
        })
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
