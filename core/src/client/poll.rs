//! Long-poll (`docs/protocol.md` §4.3) without I/O: which request comes
//! next, and what an answer holds.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::request::{http_failure, Request};

/// The gateway answers within `timeout_ms` and never waits longer than this.
const MAX_WAIT_MS: u64 = 60_000;

/// Slack on top of the wait for a slow network before a poll counts as lost.
const NETWORK_SLACK_MS: u64 = 10_000;

/// One long-poll answer: `{"cursor": "...", "frames": [...]}`.
#[derive(Debug, Deserialize)]
pub struct PollAnswer<'a> {
    /// The cursor to send back with the next request.
    pub cursor: String,
    #[serde(borrow)]
    frames: Vec<&'a RawValue>,
}

impl<'a> PollAnswer<'a> {
    /// Reads an answer's body.
    pub fn parse(body: &'a [u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("bad poll answer: {e}"))
    }

    /// The frames, each one JSON frame for `handle_frame`, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.frames.iter().map(|f| f.get().as_bytes())
    }
}

/// The state of a long-poll loop: the cursor carried from answer to answer.
///
/// A driver loops: perform [`Poller::next_request`] (bounded by
/// [`Poller::request_timeout_ms`]), hand the status and body to
/// [`Poller::handle_answer`], feed the frames to the engine; stop on an
/// error or when the engine closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poller {
    request: Request,
    cursor: String,
    wait_ms: u64,
    answered: bool,
}

impl Poller {
    /// A loop starting with `request` (`/poll?topic=..[&cursor=..]`); the
    /// gateway is asked to wait up to `wait_ms` for publications.
    pub fn new(mut request: Request, wait_ms: u64) -> Self {
        let cursor = request.query_value("cursor").unwrap_or_default().to_owned();
        request.remove_query("cursor");
        Self {
            request,
            cursor,
            wait_ms: wait_ms.min(MAX_WAIT_MS),
            answered: false,
        }
    }

    /// Whether an answer came back already (then the transport is open).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// The cursor the next request carries (empty: none yet).
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The next request: the topics, the last cursor, and `timeout_ms`. The
    /// first asks for no wait, so the engine learns at once that the
    /// transport works (its connect timeout may be shorter than a poll).
    pub fn next_request(&self) -> Request {
        let mut r = self.request.clone();
        if !self.cursor.is_empty() {
            r = r.query("cursor", self.cursor.clone());
        }
        let wait = if self.answered { self.wait_ms } else { 0 };
        r.query("timeout_ms", wait.to_string())
    }

    /// How long the next request may take before it counts as lost.
    pub fn request_timeout_ms(&self) -> u64 {
        self.wait_ms + NETWORK_SLACK_MS
    }

    /// Reads an answer: its frames on success; on an error status or a body
    /// that is no answer, what to report as the connection's failure.
    pub fn handle_answer<'a>(
        &mut self,
        status: u16,
        body: &'a [u8],
    ) -> Result<PollAnswer<'a>, String> {
        if status != 200 {
            return Err(http_failure(status, body));
        }
        let answer = PollAnswer::parse(body)?;
        self.cursor.clone_from(&answer.cursor);
        self.answered = true;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_cursor_and_waits_after_the_first_answer() {
        let first = Request::get("/poll")
            .query("topic", "a")
            .query("cursor", "a:e:1");
        let mut p = Poller::new(first, 25_000);
        assert_eq!(
            p.next_request().path_and_query(),
            "/poll?topic=a&cursor=a%3Ae%3A1&timeout_ms=0"
        );
        let body = br#"{"cursor":"a:e:3","frames":[{"type":"publication","n":2},{"type":"x"}]}"#;
        let answer = p.handle_answer(200, body).unwrap();
        let frames: Vec<&[u8]> = answer.frames().collect();
        assert_eq!(
            frames,
            vec![&br#"{"type":"publication","n":2}"#[..], br#"{"type":"x"}"#]
        );
        assert!(p.answered());
        assert_eq!(
            p.next_request().path_and_query(),
            "/poll?topic=a&cursor=a%3Ae%3A3&timeout_ms=25000"
        );
        assert_eq!(p.request_timeout_ms(), 35_000);
    }

    #[test]
    fn bad_answers_are_errors_and_keep_the_cursor() {
        let mut p = Poller::new(Request::get("/poll").query("topic", "a"), 90_000);
        assert_eq!(p.request_timeout_ms(), 70_000, "the wait is capped at 60 s");
        assert_eq!(
            p.handle_answer(400, br#"{"code":"bad_cursor"}"#)
                .unwrap_err(),
            r#"HTTP 400: {"code":"bad_cursor"}"#
        );
        for body in [
            &b"[]"[..],
            b"{\"cursor\":1,\"frames\":[]}",
            b"{\"cursor\":\"c\"}",
            b"\xff",
        ] {
            let err = p.handle_answer(200, body).unwrap_err();
            assert!(err.starts_with("bad poll answer"), "{err}");
        }
        assert_eq!(p.cursor(), "");
        assert!(!p.answered());
    }
}
