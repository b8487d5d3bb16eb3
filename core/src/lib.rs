//! The livegate wire protocol and the pieces every livegate component shares.
//!
//! This crate holds no sockets and no runtime: frames ([`protocol`]), their
//! JSON and MessagePack codecs ([`codec`]), payloads carried verbatim
//! ([`payload`]), topic rules and namespace options ([`topic`]), the per-topic
//! history log ([`history`]) and resume cursors ([`cursor`]). Time comes in as
//! an argument, never from the OS, so the same code runs in the gateway, the
//! native client and the browser (wasm32).
//!
//! The normative description of the protocol is `docs/protocol.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod cursor;
pub mod deflate;
pub mod error;
pub mod framing;
pub mod history;
pub mod payload;
pub mod protocol;
pub mod time;
pub mod topic;

pub use codec::Encoding;
pub use error::{DecodeError, ErrorCode};
pub use payload::Payload;
pub use protocol::{ClientFrame, Position, Publication, ServerFrame};
