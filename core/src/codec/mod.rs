//! JSON and MessagePack codecs for [`crate::protocol`] frames.
//!
//! Frames are written field by field in the order of `docs/protocol.md`, so
//! that every implementation produces the same bytes as the shared vectors in
//! `tests/vectors/frames.json`. Payloads are spliced in verbatim.

mod decode;
mod writer;

use crate::error::DecodeError;
use crate::protocol::{ClientFrame, Publication, ServerFrame};

pub use decode::Undecodable;
use writer::{JsonWriter, MsgpackWriter, Writer};

/// How frames are encoded on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// One JSON object per frame (WebSocket text messages, SSE, long-poll).
    Json,
    /// One MessagePack map per frame (WebSocket binary messages).
    Msgpack,
}

impl Encoding {
    /// Both encodings, in a fixed order usable as an index.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::Msgpack];

    /// The WebSocket subprotocol naming this encoding.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => "livegate.v1.json",
            Self::Msgpack => "livegate.v1.msgpack",
        }
    }

    /// The encoding a WebSocket subprotocol names, if any.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.subprotocol() == name)
    }

    /// A small index (0 for JSON, 1 for MessagePack), for per-encoding caches.
    pub fn index(self) -> usize {
        match self {
            Self::Json => 0,
            Self::Msgpack => 1,
        }
    }

    /// Encodes a frame sent by the gateway.
    pub fn encode_server(self, frame: &ServerFrame) -> Vec<u8> {
        match self {
            Self::Json => {
                let mut w = JsonWriter::default();
                writer::server_frame(&mut w, frame);
                w.finish()
            }
            Self::Msgpack => {
                let mut w = MsgpackWriter::default();
                writer::server_frame(&mut w, frame);
                w.finish()
            }
        }
    }

    /// Encodes a frame sent by a client.
    pub fn encode_client(self, frame: &ClientFrame) -> Vec<u8> {
        match self {
            Self::Json => {
                let mut w = JsonWriter::default();
                writer::client_frame(&mut w, frame);
                w.finish()
            }
            Self::Msgpack => {
                let mut w = MsgpackWriter::default();
                writer::client_frame(&mut w, frame);
                w.finish()
            }
        }
    }

    /// Encodes one `publication` frame.
    pub fn encode_publication(self, publication: &Publication) -> Vec<u8> {
        match self {
            Self::Json => {
                let mut w = JsonWriter::default();
                writer::publication(&mut w, publication);
                w.finish()
            }
            Self::Msgpack => {
                let mut w = MsgpackWriter::default();
                writer::publication(&mut w, publication);
                w.finish()
            }
        }
    }

    /// Encodes a `subscribed` or `history` frame whose publications are given
    /// already encoded (each one a whole `publication` frame in this encoding),
    /// so that a replay reuses the bytes every subscriber shares. The
    /// `publications` field of `head` is ignored. Other frames are encoded as
    /// they are.
    pub fn encode_with_publications<B: AsRef<[u8]>>(
        self,
        head: &ServerFrame,
        encoded: &[B],
    ) -> Vec<u8> {
        match self {
            Self::Json => {
                let mut w = JsonWriter::default();
                writer::list_frame(&mut w, head, encoded);
                w.finish()
            }
            Self::Msgpack => {
                let mut w = MsgpackWriter::default();
                writer::list_frame(&mut w, head, encoded);
                w.finish()
            }
        }
    }

    /// Decodes a frame sent by a client. On failure the request `id` is
    /// returned too when it could be read, so the answer can carry it.
    pub fn decode_client(self, bytes: &[u8]) -> Result<ClientFrame, Undecodable> {
        decode::fields(self, bytes)?.into_client()
    }

    /// Decodes a frame sent by the gateway.
    pub fn decode_server(self, bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
        decode::fields(self, bytes)
            .map_err(|u| u.error)?
            .into_server()
    }
}
