//! permessage-deflate (RFC 7692) on `/ws`: the negotiation, and the layer
//! under tungstenite that inflates what clients compress.
//!
//! The gateway sends each publication deflated once ([`crate::wire`]) with
//! RSV1 set by [`super::ws_io::WsIo`]; it answers every accepted offer with
//! [`RESPONSE`], so neither side keeps a context between messages: no
//! per-connection compressor, and the receiver's inflater lives for one
//! message only.
//!
//! tungstenite knows no extension and refuses any frame with RSV1. So
//! [`Inbound`] reads the client's frames before it does: a data frame with
//! RSV1 starts a compressed message, whose frames (continuations too) are
//! inflated and handed on as ordinary masked frames with RSV1 clear and an
//! all-zero mask key (XOR with zero leaves the payload as it is). Every
//! other frame passes through untouched, so tungstenite still checks every
//! rule: RSV1 on a control or continuation frame, a missing mask, bad
//! UTF-8, interleaving.

use axum::http::{header, HeaderMap};
use bytes::{Buf, Bytes, BytesMut};

use livegate_core::deflate::{parameter, window_bits};

use crate::deflate::{InflateError, Inflater};

/// The answer to an accepted offer.
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The window the shared deflate uses: an offer asking the server for a
/// smaller one cannot be honoured (the bytes are made once for everyone).
const SERVER_WINDOW_BITS: u8 = 15;

/// Whether the client's `Sec-WebSocket-Extensions` holds a permessage-deflate
/// offer the gateway can honour.
pub fn accepts_offer(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(offer_ok)
}

/// One offer: `permessage-deflate` and parameters this side can honour,
/// each at most once (RFC 7692 §7.1).
fn offer_ok(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
    {
        return false;
    }
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        let (name, value) = parameter(param);
        if seen.contains(&name) {
            return false;
        }
        let ok = match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
            ("server_max_window_bits", Some(v)) => window_bits(v) == Some(SERVER_WINDOW_BITS),
            // The client may compress with any window: we inflate with the largest.
            ("client_max_window_bits", None) => true,
            ("client_max_window_bits", Some(v)) => window_bits(v).is_some(),
            _ => false,
        };
        if !ok {
            return false;
        }
        seen.push(name);
    }
    true
}

/// Where [`Inbound`] is in the client's byte stream.
#[derive(Debug)]
enum State {
    /// Reading a frame header into `head`.
    Header,
    /// Passing this many payload bytes through.
    Pass(u64),
    /// Collecting a compressed frame's payload.
    Collect {
        left: usize,
        /// The first header byte to send on: FIN and opcode, RSV1 clear.
        first: u8,
        fin: bool,
        mask: Option<[u8; 4]>,
    },
}

/// The inflating layer; see the module comment.
#[derive(Debug)]
pub struct Inbound {
    /// Largest message after inflation (`max_frame_bytes`).
    cap: usize,
    head: [u8; 14],
    head_len: usize,
    state: State,
    /// The inflater of the compressed message in progress.
    message: Option<Inflater>,
    payload: Vec<u8>,
}

impl Inbound {
    /// A layer inflating messages of at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            head: [0; 14],
            head_len: 0,
            state: State::Header,
            message: None,
            payload: Vec::new(),
        }
    }

    /// Takes bytes from `input` and returns what tungstenite reads next:
    /// empty once `input` is used up without completing anything.
    pub fn feed(&mut self, input: &mut Bytes) -> Result<Bytes, InflateError> {
        loop {
            match &mut self.state {
                State::Pass(0) => self.state = State::Header,
                State::Pass(left) => {
                    if input.is_empty() {
                        return Ok(Bytes::new());
                    }
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    *left -= n as u64;
                    return Ok(input.split_to(n));
                }
                State::Collect { left, .. } if *left > 0 => {
                    if input.is_empty() {
                        return Ok(Bytes::new());
                    }
                    let n = (*left).min(input.len());
                    self.payload.extend_from_slice(&input[..n]);
                    input.advance(n);
                    *left -= n;
                }
                State::Collect {
                    first, fin, mask, ..
                } => {
                    let (first, fin, mask) = (*first, *fin, *mask);
                    self.state = State::Header;
                    return self.inflate_frame(first, fin, mask);
                }
                State::Header => {
                    if input.is_empty() {
                        return Ok(Bytes::new());
                    }
                    let need = header_len(&self.head[..self.head_len]);
                    let n = (need - self.head_len).min(input.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
                    self.head_len += n;
                    input.advance(n);
                    // The length is known once two bytes are in.
                    if self.head_len == header_len(&self.head[..self.head_len]) {
                        if let Some(out) = self.start_frame()? {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// A whole header is in `head`: pass the frame through (returning its
    /// header) or start collecting a compressed one.
    fn start_frame(&mut self) -> Result<Option<Bytes>, InflateError> {
        let head = &self.head[..self.head_len];
        self.head_len = 0;
        let (b0, b1) = (head[0], head[1]);
        let rsv = b0 & 0x70;
        let opcode = b0 & 0x0f;
        let (len, at) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes([head[2], head[3]])), 4),
            127 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&head[2..10]);
                (u64::from_be_bytes(l), 10)
            }
            l => (u64::from(l), 2),
        };
        let starts = rsv == 0x40 && matches!(opcode, 1 | 2) && self.message.is_none();
        let continues = rsv == 0 && opcode == 0 && self.message.is_some();
        if !(starts || continues) {
            let out = Bytes::copy_from_slice(head);
            self.state = State::Pass(len);
            return Ok(Some(out));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= self.cap)
            .ok_or(InflateError::TooLarge)?;
        let mask = (b1 & 0x80 != 0).then(|| [head[at], head[at + 1], head[at + 2], head[at + 3]]);
        if starts {
            self.message = Some(Inflater::new(self.cap));
        }
        self.payload = Vec::with_capacity(len);
        self.state = State::Collect {
            left: len,
            first: b0 & !0x40,
            fin: b0 & 0x80 != 0,
            mask,
        };
        Ok(None)
    }

    /// The collected compressed frame, inflated, as a plain frame.
    fn inflate_frame(
        &mut self,
        first: u8,
        fin: bool,
        mask: Option<[u8; 4]>,
    ) -> Result<Bytes, InflateError> {
        let mut payload = std::mem::take(&mut self.payload);
        if let Some(key) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i & 3];
            }
        }
        let inflater = self.message.as_mut().ok_or(InflateError::Corrupt)?;
        let mut plain = Vec::with_capacity(payload.len().saturating_mul(3).min(self.cap));
        inflater.inflate(&payload, &mut plain)?;
        if fin {
            inflater.finish(&mut plain)?;
            self.message = None;
        }
        let mut out = BytesMut::with_capacity(plain.len() + 14);
        out.extend_from_slice(&[first]);
        let masked = if mask.is_some() { 0x80 } else { 0 };
        let len = plain.len();
        if len < 126 {
            out.extend_from_slice(&[masked | len as u8]);
        } else if let Ok(l) = u16::try_from(len) {
            out.extend_from_slice(&[masked | 126]);
            out.extend_from_slice(&l.to_be_bytes());
        } else {
            out.extend_from_slice(&[masked | 127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if mask.is_some() {
            // A zero key: the payload below is already plain.
            out.extend_from_slice(&[0; 4]);
        }
        out.extend_from_slice(&plain);
        Ok(out.freeze())
    }
}

/// Bytes of the header starting with `head` (2 until its length byte is in).
fn header_len(head: &[u8]) -> usize {
    if head.len() < 2 {
        return 2;
    }
    let ext = match head[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if head[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::{deflate_once, DeflateSettings};
    use axum::http::HeaderValue;

    fn offered(v: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(v).unwrap(),
        );
        accepts_offer(&h)
    }

    #[test]
    fn offers_we_can_honour() {
        assert!(offered("permessage-deflate"));
        // Chromium and Python websockets.
        assert!(offered("permessage-deflate; client_max_window_bits"));
        assert!(offered(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        ));
        assert!(offered("x-webkit-deflate-frame, permessage-deflate"));
        assert!(offered("permessage-deflate; server_max_window_bits=15"));
        assert!(!offered("permessage-deflate; server_max_window_bits=10"));
        assert!(!offered("permessage-deflate; server_max_window_bits"));
        assert!(!offered("permessage-deflate; unknown"));
        assert!(!offered("permessage-deflate; client_max_window_bits=16"));
        assert!(!offered(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        ));
        assert!(!offered("deflate-frame"));
        assert!(!accepts_offer(&HeaderMap::new()));
    }

    fn masked_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![b0];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        f
    }

    fn run(inbound: &mut Inbound, wire: &[u8], chunk: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        for c in wire.chunks(chunk) {
            let mut input = Bytes::copy_from_slice(c);
            loop {
                let got = inbound.feed(&mut input)?;
                if got.is_empty() && input.is_empty() {
                    break;
                }
                out.extend_from_slice(&got);
            }
        }
        Ok(out)
    }

    fn text(n: usize) -> Vec<u8> {
        format!(
            "{{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"{}\"}}",
            "ab".repeat(n)
        )
        .into_bytes()
    }

    #[test]
    fn compressed_fragments_become_plain_frames_and_the_rest_passes() {
        let msg = text(300);
        let z = deflate_once(&msg, DeflateSettings::default()).unwrap();
        let (a, b) = z.split_at(z.len() / 2);
        let key = [1, 2, 3, 4];
        let mut wire = masked_frame(0x41, a, key); // text, RSV1, not FIN
        wire.extend(masked_frame(0x89, b"hi", key)); // an interleaved ping
        wire.extend(masked_frame(0x80, b, key)); // the last continuation
        wire.extend(masked_frame(0x81, b"plain", key)); // uncompressed
        for chunk in [1, 3, 7, 1000] {
            let mut inbound = Inbound::new(1 << 20);
            let out = run(&mut inbound, &wire, chunk).unwrap();
            let mut a_plain = Vec::new();
            let mut inf = Inflater::new(1 << 20);
            inf.inflate(a, &mut a_plain).unwrap();
            let mut want = masked_frame(0x01, &a_plain, [0; 4]);
            want.extend(masked_frame(0x89, b"hi", key));
            let rest = &msg[a_plain.len()..];
            want.extend(masked_frame(0x80, rest, [0; 4]));
            want.extend(masked_frame(0x81, b"plain", key));
            assert_eq!(out, want, "chunk {chunk}");
        }
    }

    #[test]
    fn rsv1_where_it_may_not_be_passes_for_tungstenite_to_refuse() {
        let key = [9, 9, 9, 9];
        // A compressed ping and an RSV1 continuation stay as they are.
        for b0 in [0xc9u8, 0xc0] {
            let wire = masked_frame(b0, b"xx", key);
            let out = run(&mut Inbound::new(1024), &wire, 1000).unwrap();
            assert_eq!(out, wire);
        }
    }

    #[test]
    fn corrupt_data_and_bombs_fail() {
        let key = [5, 6, 7, 8];
        let wire = masked_frame(0xc1, &[0xff, 0xff, 0xff, 0xff, 0x00], key);
        assert_eq!(
            run(&mut Inbound::new(1024), &wire, 1000),
            Err(InflateError::Corrupt)
        );
        let zeros = vec![b'a'; 100_000];
        let z = deflate_once(&zeros, DeflateSettings::default()).unwrap();
        let wire = masked_frame(0xc1, &z, key);
        assert_eq!(
            run(&mut Inbound::new(10_000), &wire, 1000),
            Err(InflateError::TooLarge)
        );
        // A compressed frame longer than the cap is refused before it is read.
        let mut long = vec![0xc2, 0x80 | 127];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        long.extend_from_slice(&key);
        assert_eq!(
            run(&mut Inbound::new(10_000), &long, 1000),
            Err(InflateError::TooLarge)
        );
    }
}
