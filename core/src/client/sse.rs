//! An incremental `text/event-stream` parser: feed it the body in chunks of
//! any size, get whole events back (the WHATWG rules: `data:` lines joined
//! by `\n`, `id:` remembered across events, comments, LF/CR/CRLF endings).

use bytes::{Buf, BytesMut};

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (livegate puts the frame's type there); `None` means `message`.
    pub event: Option<String>,
    /// Its `data:` lines joined by `\n` (livegate: one JSON frame).
    pub data: Vec<u8>,
    /// The last `id:` seen so far (livegate: the cursor of every topic).
    pub id: Option<String>,
}

/// What a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A whole event.
    Event(SseEvent),
    /// A comment line (`: ping`): the gateway's heartbeat.
    Comment,
    /// `retry:` with a number of milliseconds.
    Retry(u64),
}

/// Why a stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event (or a line) grew past the parser's limit.
    #[error("an SSE event exceeded {0} bytes")]
    TooLarge(usize),
}

/// The parser. See the module docs.
#[derive(Debug, Clone)]
pub struct SseParser {
    max: usize,
    buf: BytesMut,
    /// Where in `buf` the search for a line end resumes.
    scanned: usize,
    started: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// A parser that refuses events (and lines) over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: BytesMut::new(),
            scanned: 0,
            started: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            id: None,
        }
    }

    /// Bytes held for an incomplete line or event.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.data.len()
    }

    /// The last event id seen (what a browser sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Feeds bytes; returns the complete items, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, SseError> {
        self.buf.extend_from_slice(chunk);
        if !self.started {
            // A UTF-8 byte order mark may open the stream; wait for 3 bytes.
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Ok(Vec::new());
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.advance(3);
            }
            self.started = true;
        }
        let mut out = Vec::new();
        loop {
            let found = self.buf[self.scanned..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r');
            let Some(rel) = found else {
                self.scanned = self.buf.len();
                break;
            };
            let end = self.scanned + rel;
            // A CR that ends the buffer may be the first half of CRLF: wait.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                self.scanned = end;
                break;
            }
            let line = self.buf.split_to(end);
            let skip = if self.buf.starts_with(b"\r\n") { 2 } else { 1 };
            self.buf.advance(skip);
            self.scanned = 0;
            self.line(&line, &mut out);
            if self.data.len() > self.max {
                return Err(self.too_large());
            }
        }
        if self.pending() > self.max {
            return Err(self.too_large());
        }
        Ok(out)
    }

    fn too_large(&mut self) -> SseError {
        // Nothing sensible can follow: drop what was held.
        self.buf.clear();
        self.data.clear();
        self.scanned = 0;
        SseError::TooLarge(self.max)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            let event = self.event.take();
            if self.has_data {
                self.has_data = false;
                out.push(SseItem::Event(SseEvent {
                    event,
                    data: std::mem::take(&mut self.data),
                    id: self.id.clone(),
                }));
            }
            return;
        }
        if line[0] == b':' {
            out.push(SseItem::Comment);
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // An id with NUL is ignored (WHATWG); an empty one resets it.
            b"id" if !value.contains(&0) => {
                self.id = (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Option<&str>, data: &str, id: Option<&str>) -> SseItem {
        SseItem::Event(SseEvent {
            event: kind.map(str::to_owned),
            data: data.as_bytes().to_vec(),
            id: id.map(str::to_owned),
        })
    }

    const STREAM: &[u8] = b"retry: 1000\n\n: ping\n\nevent: connected\ndata: {\"a\":1}\r\n\r\nid: t:e:1\nevent: publication\ndata: x\ndata:y\ndata\n\n: ping\ndata: z\r\r\n";

    fn expected() -> Vec<SseItem> {
        vec![
            SseItem::Retry(1000),
            SseItem::Comment,
            event(Some("connected"), "{\"a\":1}", None),
            event(Some("publication"), "x\ny\n", Some("t:e:1")),
            SseItem::Comment,
            event(None, "z", Some("t:e:1")),
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        let mut p = SseParser::new(1 << 20);
        assert_eq!(p.push(STREAM).unwrap(), expected());
        assert_eq!(p.pending(), 0);
        assert_eq!(p.last_event_id(), Some("t:e:1"));
    }

    #[test]
    fn any_split_gives_the_same_events() {
        // Every split point, and byte by byte: CRLF torn in half included.
        for cut in 0..STREAM.len() {
            let mut p = SseParser::new(1 << 20);
            let mut items = p.push(&STREAM[..cut]).unwrap();
            items.extend(p.push(&STREAM[cut..]).unwrap());
            assert_eq!(items, expected(), "cut at {cut}");
        }
        let mut p = SseParser::new(1 << 20);
        let mut items = Vec::new();
        for b in STREAM {
            items.extend(p.push(&[*b]).unwrap());
        }
        assert_eq!(items, expected());
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_empty_ids_reset() {
        let mut p = SseParser::new(1 << 20);
        let mut items = p.push(b"\xEF\xBB").unwrap();
        items.extend(
            p.push(b"\xBFid: 1\ndata: a\n\nid\ndata: b\n\nid: x\0y\ndata: c\n\n")
                .unwrap(),
        );
        assert_eq!(
            items,
            vec![
                event(None, "a", Some("1")),
                event(None, "b", None),
                event(None, "c", None)
            ]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let mut p = SseParser::new(1 << 20);
        assert_eq!(p.push(b"event: x\n\nretry: soon\n\n").unwrap(), vec![]);
        assert_eq!(
            p.push(b"data: a\n\n").unwrap(),
            vec![event(None, "a", None)]
        );
    }

    #[test]
    fn oversized_events_and_lines_are_refused() {
        let mut p = SseParser::new(16);
        assert_eq!(
            p.push(b"data: 0123456789\ndata: 0123456789\n"),
            Err(SseError::TooLarge(16))
        );
        let mut p = SseParser::new(16);
        assert_eq!(p.push(&[b'a'; 17]), Err(SseError::TooLarge(16)));
        assert_eq!(p.pending(), 0);
    }
}
