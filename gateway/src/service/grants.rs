//! Topic patterns a token grants (`metrics.*`, `rooms.{sub}.*`), per
//! operation.
//!
//! A pattern is dot-separated. `*` as a segment matches exactly one topic
//! segment, except as the last segment, where it matches one or more (so
//! `metrics.*` covers `metrics.cpu` and `metrics.cpu.0`). Every other
//! segment matches itself only. `{sub}` is replaced by the token's subject
//! before the pattern is split, and what it brings is literal: a subject
//! holding `*` grants nothing wider. A `*` never matches a reserved
//! (`$`-prefixed) first segment: `$sys.*` must be granted by name.

use livegate_core::topic::RESERVED_PREFIX;

use super::Operation;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    /// Compiles `pattern` for `subject` (which replaces `{sub}`).
    pub fn new(pattern: &str, subject: Option<&str>) -> Self {
        let mut segments = Vec::new();
        for part in pattern.split('.') {
            if part == "*" {
                segments.push(Segment::Any);
            } else if part.contains("{sub}") {
                let replaced = part.replace("{sub}", subject.unwrap_or(""));
                segments.extend(replaced.split('.').map(|s| Segment::Literal(s.to_owned())));
            } else {
                segments.push(Segment::Literal(part.to_owned()));
            }
        }
        Self { segments }
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Literal(l) if l != part => return false,
                Segment::Literal(_) => {}
                Segment::Any if i == 0 && part.starts_with(RESERVED_PREFIX) => return false,
                Segment::Any if i == last => return true,
                Segment::Any => {}
            }
        }
        parts.next().is_none()
    }
}

/// What a token grants: patterns per operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Topics it may subscribe to.
    pub subscribe: Vec<Pattern>,
    /// Topics it may publish on.
    pub publish: Vec<Pattern>,
    /// Topics whose history it may read.
    pub history: Vec<Pattern>,
}

impl Grants {
    /// Compiles the claims' patterns for `subject`.
    pub fn new(
        subscribe: &[String],
        publish: &[String],
        history: &[String],
        subject: Option<&str>,
    ) -> Self {
        let compile = |ps: &[String]| ps.iter().map(|p| Pattern::new(p, subject)).collect();
        Self {
            subscribe: compile(subscribe),
            publish: compile(publish),
            history: compile(history),
        }
    }

    /// Whether `operation` on `topic` is granted.
    pub fn allows(&self, operation: Operation, topic: &str) -> bool {
        let patterns = match operation {
            Operation::Subscribe => &self.subscribe,
            Operation::Publish => &self.publish,
            Operation::History => &self.history,
        };
        patterns.iter().any(|p| p.matches(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_one_segment_inside_and_the_rest_at_the_end() {
        let p = Pattern::new("metrics.*", None);
        assert!(p.matches("metrics.cpu"));
        assert!(p.matches("metrics.cpu.0"));
        assert!(!p.matches("metrics"));
        assert!(!p.matches("metricsx.cpu"));
        let mid = Pattern::new("a.*.c", None);
        assert!(mid.matches("a.b.c"));
        assert!(!mid.matches("a.b.x.c"));
        assert!(!mid.matches("a.b.c.d"));
        let exact = Pattern::new("news", None);
        assert!(exact.matches("news") && !exact.matches("news.x"));
    }

    #[test]
    fn subject_is_literal_and_reserved_topics_need_their_name() {
        let p = Pattern::new("rooms.{sub}.*", Some("alice"));
        assert!(p.matches("rooms.alice.chat"));
        assert!(!p.matches("rooms.bob.chat"));
        let sneaky = Pattern::new("rooms.{sub}.*", Some("*"));
        assert!(!sneaky.matches("rooms.bob.chat"));
        assert!(sneaky.matches("rooms.*.chat"));
        assert!(!Pattern::new("*", None).matches("$sys.cpu"));
        assert!(Pattern::new("*", None).matches("anything.at.all"));
        assert!(Pattern::new("$sys.*", None).matches("$sys.cpu"));
    }
}
