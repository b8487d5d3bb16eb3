//! Compression for clients, sans-IO: what a client offers and how it reads
//! the server's answer, for permessage-deflate on WebSocket (RFC 7692) and
//! the compressed flag of WebTransport (`docs/protocol.md` §4.6).
//!
//! The bytes themselves are raw deflate as the gateway makes them: a fresh
//! context per message, a sync flush, the trailing [`SYNC_TAIL`] removed. A
//! receiver appends [`SYNC_TAIL`] and inflates; with the gateway's answer
//! (`server_no_context_takeover`) a fresh inflater per message is right,
//! and a client that compresses what it sends must not keep a window either
//! (`client_no_context_takeover`). Inflating needs a deflate library, which
//! this crate does not carry: the client's driver does it (`flate2`).
//!
//! Where it plugs in (the native client's driver):
//! - WebSocket: add `Sec-WebSocket-Extensions: `[`CLIENT_OFFER`] to the
//!   upgrade request; read the answer with [`parse_answer`] (an `Err` fails
//!   the connection, RFC 7692 §7.1); when negotiated, run received frames
//!   through [`Rsv1`] and inflate the messages it marks compressed (with a
//!   cap of the largest message the client accepts). tungstenite refuses
//!   RSV1 frames, so this sits below it, as the gateway's
//!   `transport/ws_deflate.rs` does on the server side.
//! - WebTransport: add [`WT_COMPRESS_QUERY`] to the session URL's query and
//!   read streams with `framing::FrameReader::push_flagged`, inflating the
//!   frames flagged compressed.

/// The empty stored block a sync flush ends with, stripped by the sender.
pub const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What a client offers: the extension, any window for the server (the
/// gateway declines offers that limit its window), and leave to limit ours.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The query parameter asking a WebTransport session for the compressed flag.
pub const WT_COMPRESS_QUERY: &str = "compress=deflate";

/// One extension parameter, `name` or `name=value` (quotes dropped), the
/// name lower-cased; both sides of the negotiation read them so.
pub fn parameter(param: &str) -> (String, Option<&str>) {
    let (name, value) = match param.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
        None => (param.trim(), None),
    };
    (name.to_ascii_lowercase(), value)
}

/// A window size parameter's value, 8 to 15.
pub fn window_bits(value: &str) -> Option<u8> {
    value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// What the server's answer agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The server starts every message with a fresh context: inflate each
    /// message with a fresh inflater.
    pub server_no_context_takeover: bool,
    /// The client must compress every message with a fresh context.
    pub client_no_context_takeover: bool,
    /// Largest window the server uses (15 unless it said less).
    pub server_max_window_bits: u8,
    /// Largest window the client may use.
    pub client_max_window_bits: u8,
}

/// An answer the client must refuse (and fail the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// An extension the client did not offer.
    #[error("the server accepted an extension that was not offered: {0}")]
    NotOffered(String),
    /// More than one permessage-deflate in the answer.
    #[error("the server accepted permessage-deflate more than once")]
    Repeated,
    /// A parameter unknown, repeated, or with a bad value.
    #[error("bad permessage-deflate parameter in the answer: {0}")]
    BadParameter(String),
}

/// Reads `Sec-WebSocket-Extensions` of the server's 101 answer to
/// [`CLIENT_OFFER`]: `None` when the server accepted nothing (run
/// uncompressed).
pub fn parse_answer(value: Option<&str>) -> Result<Option<Negotiated>, ExtensionError> {
    let mut found = None;
    for ext in value.unwrap_or("").split(',').map(str::trim) {
        if ext.is_empty() {
            continue;
        }
        let mut parts = ext.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        if !name.eq_ignore_ascii_case("permessage-deflate") {
            return Err(ExtensionError::NotOffered(name.to_owned()));
        }
        if found.is_some() {
            return Err(ExtensionError::Repeated);
        }
        let mut n = Negotiated {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut seen: Vec<String> = Vec::new();
        for param in parts {
            let (key, value) = parameter(param);
            let bad = || ExtensionError::BadParameter(param.to_owned());
            if seen.contains(&key) {
                return Err(bad());
            }
            let bits = || value.and_then(window_bits).ok_or_else(bad);
            match (key.as_str(), value) {
                ("server_no_context_takeover", None) => n.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => n.client_no_context_takeover = true,
                ("server_max_window_bits", Some(_)) => n.server_max_window_bits = bits()?,
                // Offered without a value, so the server may set one.
                ("client_max_window_bits", Some(_)) => n.client_max_window_bits = bits()?,
                _ => return Err(bad()),
            }
            seen.push(key);
        }
        found = Some(n);
    }
    Ok(found)
}

/// Why a received frame breaks the extension's rules (close with 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rsv1Error {
    /// RSV1 on a control frame.
    #[error("RSV1 on a control frame")]
    Control,
    /// RSV1 on a continuation frame.
    #[error("RSV1 on a continuation frame")]
    Continuation,
    /// RSV1 without the extension negotiated.
    #[error("RSV1 without permessage-deflate")]
    NotNegotiated,
}

/// Follows RSV1 over received frames: which data frames belong to a
/// compressed message (RSV1 is set on a message's first frame only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rsv1 {
    negotiated: bool,
    compressed: bool,
}

impl Rsv1 {
    /// A tracker for a connection that did (or did not) negotiate the extension.
    pub fn new(negotiated: bool) -> Self {
        Self {
            negotiated,
            compressed: false,
        }
    }

    /// One frame's header: its first byte. `Ok(true)` when its payload is
    /// part of a compressed message (inflate it; after its FIN frame, add
    /// [`SYNC_TAIL`]).
    pub fn frame(&mut self, first_byte: u8) -> Result<bool, Rsv1Error> {
        let rsv1 = first_byte & 0x40 != 0;
        let opcode = first_byte & 0x0f;
        let fin = first_byte & 0x80 != 0;
        if rsv1 && !self.negotiated {
            return Err(Rsv1Error::NotNegotiated);
        }
        if opcode >= 0x8 {
            return if rsv1 {
                Err(Rsv1Error::Control)
            } else {
                Ok(false)
            };
        }
        if opcode == 0 {
            if rsv1 {
                return Err(Rsv1Error::Continuation);
            }
        } else {
            self.compressed = rsv1;
        }
        let compressed = self.compressed;
        if fin {
            self.compressed = false;
        }
        Ok(compressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateway_answer_and_refuses_what_was_not_offered() {
        let n = parse_answer(Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ))
        .unwrap()
        .unwrap();
        assert!(n.server_no_context_takeover && n.client_no_context_takeover);
        assert_eq!(n.server_max_window_bits, 15);
        assert_eq!(parse_answer(None), Ok(None));
        assert_eq!(parse_answer(Some("")), Ok(None));
        let n = parse_answer(Some("permessage-deflate; client_max_window_bits=10"))
            .unwrap()
            .unwrap();
        assert_eq!(n.client_max_window_bits, 10);
        assert!(parse_answer(Some("x-other")).is_err());
        assert!(parse_answer(Some("permessage-deflate, permessage-deflate")).is_err());
        assert!(parse_answer(Some("permessage-deflate; client_max_window_bits")).is_err());
        assert!(parse_answer(Some("permessage-deflate; server_max_window_bits=7")).is_err());
        assert!(parse_answer(Some("permessage-deflate; bogus")).is_err());
        assert!(parse_answer(Some(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        ))
        .is_err());
    }

    #[test]
    fn rsv1_marks_whole_messages_and_rejects_misplaced_bits() {
        let mut r = Rsv1::new(true);
        assert_eq!(r.frame(0x41), Ok(true)); // compressed text, not FIN
        assert_eq!(r.frame(0x89), Ok(false)); // a ping between fragments
        assert_eq!(r.frame(0x80), Ok(true)); // its last continuation
        assert_eq!(r.frame(0x81), Ok(false)); // a plain message
        assert_eq!(r.frame(0xc9), Err(Rsv1Error::Control));
        assert_eq!(r.frame(0xc0), Err(Rsv1Error::Continuation));
        assert_eq!(Rsv1::new(false).frame(0xc1), Err(Rsv1Error::NotNegotiated));
    }
}
