//! Cursors: the positions of several topics in one string, for SSE event ids
//! and long-poll (`docs/protocol.md` §4.4).

use crate::protocol::Position;
use crate::topic::validate_topic;

/// Why a cursor string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad cursor entry {entry:?}: {why}; expected topic:epoch:offset entries joined by ','")]
pub struct CursorError {
    /// The entry that could not be read.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Reads `topic:epoch:offset,topic:epoch:offset`. An empty string has no entries.
pub fn parse_cursor(s: &str) -> Result<Vec<(String, Position)>, CursorError> {
    let mut out: Vec<(String, Position)> = Vec::new();
    for entry in s.split(',').filter(|e| !e.is_empty()) {
        let bad = |why| CursorError {
            entry: entry.chars().take(100).collect(),
            why,
        };
        let mut parts = entry.splitn(3, ':');
        let (Some(topic), Some(epoch), Some(offset)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it does not have three parts"));
        };
        validate_topic(topic).map_err(|_| bad("the topic name is not valid"))?;
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("the epoch is not alphanumeric"));
        }
        let offset = offset
            .parse()
            .map_err(|_| bad("the offset is not a number"))?;
        if out.iter().any(|(t, _)| t == topic) {
            return Err(bad("the topic appears twice"));
        }
        out.push((
            topic.to_owned(),
            Position {
                epoch: epoch.to_owned(),
                offset,
            },
        ));
    }
    Ok(out)
}

/// Writes positions as a cursor string.
pub fn format_cursor<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Position)>) -> String {
    let mut out = String::new();
    for (topic, pos) in entries {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(topic);
        out.push(':');
        out.push_str(&pos.epoch);
        out.push(':');
        out.push_str(&pos.offset.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = Position {
            epoch: "k3f9".into(),
            offset: 42,
        };
        let b = Position {
            epoch: "p0q1".into(),
            offset: 0,
        };
        let s = format_cursor([("metrics.cpu", &a), ("$sys.x/y", &b)]);
        assert_eq!(s, "metrics.cpu:k3f9:42,$sys.x/y:p0q1:0");
        assert_eq!(
            parse_cursor(&s).unwrap(),
            vec![("metrics.cpu".to_string(), a), ("$sys.x/y".to_string(), b)]
        );
        assert_eq!(parse_cursor("").unwrap(), vec![]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "a",
            "a:b",
            "a:b:c",
            "a b:e:1",
            "a:e-1:1",
            "a:e:1,a:e:2",
            "a::1",
            "a:e:-1",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
