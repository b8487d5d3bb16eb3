//! Topic and event names, and the namespace options that apply to topics by prefix.

use serde::Deserialize;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 200;
/// Longest event name, in bytes.
pub const MAX_EVENT_LEN: usize = 64;
/// Longest publish `msg_id`, in bytes.
pub const MAX_MSG_ID_LEN: usize = 64;
/// Topics that start with this are reserved for the gateway.
pub const RESERVED_PREFIX: char = '$';

/// Why a topic or event name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty name.
    #[error("{0} name is empty")]
    Empty(&'static str),
    /// Name too long.
    #[error("{what} name is {len} bytes, the limit is {max}")]
    TooLong {
        /// `topic` or `event`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character that is not allowed.
    #[error("{what} name contains {ch:?}; allowed are {allowed}")]
    BadChar {
        /// `topic` or `event`.
        what: &'static str,
        /// The first bad character.
        ch: char,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// Checks a topic name: 1 to [`MAX_TOPIC_LEN`] bytes of ASCII letters, digits,
/// `.`, `_`, `-`, `/`, optionally after one leading `$` (reserved topics).
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    let body = name.strip_prefix(RESERVED_PREFIX).unwrap_or(name);
    if body.is_empty() {
        return Err(NameError::Empty("topic"));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(NameError::TooLong {
            what: "topic",
            len: name.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    if let Some(ch) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(NameError::BadChar {
            what: "topic",
            ch,
            allowed: "ASCII letters, digits and . _ - / (and a leading $ for reserved topics)",
        });
    }
    Ok(())
}

/// Whether only the gateway may publish on this topic.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with(RESERVED_PREFIX)
}

/// Checks an event name: 1 to [`MAX_EVENT_LEN`] bytes, no control characters.
pub fn validate_event(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty("event"));
    }
    if name.len() > MAX_EVENT_LEN {
        return Err(NameError::TooLong {
            what: "event",
            len: name.len(),
            max: MAX_EVENT_LEN,
        });
    }
    if let Some(ch) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::BadChar {
            what: "event",
            ch,
            allowed: "any character but control characters",
        });
    }
    Ok(())
}

/// Why a publish `msg_id` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgIdError {
    /// Empty id.
    #[error("msg_id is empty; it must be 1 to {MAX_MSG_ID_LEN} bytes")]
    Empty,
    /// Id too long.
    #[error("msg_id is {0} bytes, the limit is {MAX_MSG_ID_LEN}")]
    TooLong(usize),
    /// A control character.
    #[error("msg_id contains the control character {0:?}; control characters are not allowed")]
    ControlChar(char),
}

/// Checks a publish `msg_id`: 1 to [`MAX_MSG_ID_LEN`] bytes, no control
/// characters.
pub fn validate_msg_id(id: &str) -> Result<(), MsgIdError> {
    if id.is_empty() {
        return Err(MsgIdError::Empty);
    }
    if id.len() > MAX_MSG_ID_LEN {
        return Err(MsgIdError::TooLong(id.len()));
    }
    if let Some(ch) = id.chars().find(|c| c.is_control()) {
        return Err(MsgIdError::ControlChar(ch));
    }
    Ok(())
}

/// Options of the topics in one namespace (`docs/protocol.md` §6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceOptions {
    /// Publications kept per topic.
    pub history_size: usize,
    /// Publications older than this many seconds are dropped.
    pub history_ttl_secs: u64,
    /// At most this many payload bytes are kept per topic (0: no byte
    /// bound, only `history_size` and `history_ttl_secs`).
    pub history_max_bytes: u64,
    /// Whether connected clients may publish.
    pub client_publish: bool,
    /// Whether a lossy transport path may drop publications.
    pub lossy: bool,
}

impl Default for NamespaceOptions {
    fn default() -> Self {
        Self {
            history_size: 1000,
            history_ttl_secs: 3600,
            history_max_bytes: 0,
            client_publish: false,
            lossy: false,
        }
    }
}

/// A namespace: its prefix and options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Namespace {
    /// Topics whose names start with this belong to it.
    pub prefix: String,
    /// Its options.
    #[serde(flatten)]
    pub options: NamespaceOptions,
}

/// All namespaces; options are found by the longest matching prefix.
#[derive(Debug, Clone)]
pub struct Namespaces {
    // Sorted by prefix length, longest first, so the first match is the best.
    list: Vec<Namespace>,
    default: NamespaceOptions,
}

impl Namespaces {
    /// The namespaces given, with `default` for topics none matches. The
    /// reserved `$sys.` namespace is added unless one is given for it.
    pub fn new(mut list: Vec<Namespace>, default: NamespaceOptions) -> Self {
        if !list.iter().any(|n| n.prefix == "$sys.") {
            list.push(Namespace {
                prefix: "$sys.".into(),
                options: NamespaceOptions {
                    history_size: 300,
                    history_ttl_secs: 600,
                    history_max_bytes: 0,
                    client_publish: false,
                    lossy: false,
                },
            });
        }
        // An explicit empty prefix replaces the default.
        let default = match list.iter().position(|n| n.prefix.is_empty()) {
            Some(i) => list.remove(i).options,
            None => default,
        };
        list.sort_by_key(|n| std::cmp::Reverse(n.prefix.len()));
        Self { list, default }
    }

    /// The history bounds of a topic.
    pub fn bounds_for(&self, topic: &str) -> crate::history::Bounds {
        let opts = self.options_for(topic);
        crate::history::Bounds {
            max_len: opts.history_size,
            max_age_ms: opts.history_ttl_secs.saturating_mul(1000),
            max_bytes: opts.history_max_bytes,
        }
    }

    /// The options of a topic.
    pub fn options_for(&self, topic: &str) -> &NamespaceOptions {
        self.list
            .iter()
            .find(|n| topic.starts_with(&n.prefix))
            .map_or(&self.default, |n| &n.options)
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new(Vec::new(), NamespaceOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        for ok in ["a", "metrics.cpu", "nodes/42", "A-b_c.d/e", "$sys.cpu"] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok}");
        }
        assert!(matches!(validate_topic(""), Err(NameError::Empty(_))));
        assert!(matches!(validate_topic("$"), Err(NameError::Empty(_))));
        assert!(matches!(
            validate_topic("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            validate_topic("a$b"),
            Err(NameError::BadChar { ch: '$', .. })
        ));
        assert!(matches!(
            validate_topic("a:b"),
            Err(NameError::BadChar { ch: ':', .. })
        ));
        assert!(matches!(
            validate_topic("é"),
            Err(NameError::BadChar { .. })
        ));
        assert!(validate_topic(&"x".repeat(MAX_TOPIC_LEN)).is_ok());
        assert!(matches!(
            validate_topic(&"x".repeat(MAX_TOPIC_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
        assert!(is_reserved("$sys.cpu") && !is_reserved("sys.cpu"));
    }

    #[test]
    fn event_rules() {
        assert!(validate_event("health_change").is_ok());
        assert!(validate_event("").is_err());
        assert!(validate_event("a\nb").is_err());
        assert!(validate_event(&"e".repeat(65)).is_err());
    }

    #[test]
    fn msg_id_rules() {
        for ok in ["c7f3a-12", "x", "héllo wörld", &"m".repeat(MAX_MSG_ID_LEN)] {
            assert_eq!(validate_msg_id(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_msg_id(""), Err(MsgIdError::Empty));
        assert_eq!(
            validate_msg_id(&"m".repeat(65)),
            Err(MsgIdError::TooLong(65))
        );
        assert_eq!(validate_msg_id("a\tb"), Err(MsgIdError::ControlChar('\t')));
        assert_eq!(
            validate_msg_id("a\u{7f}"),
            Err(MsgIdError::ControlChar('\u{7f}'))
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let ns = |prefix: &str, size| Namespace {
            prefix: prefix.into(),
            options: NamespaceOptions {
                history_size: size,
                ..Default::default()
            },
        };
        let all = Namespaces::new(
            vec![ns("chat.", 10), ns("chat.vip.", 20)],
            NamespaceOptions::default(),
        );
        assert_eq!(all.options_for("chat.vip.1").history_size, 20);
        assert_eq!(all.options_for("chat.1").history_size, 10);
        assert_eq!(all.options_for("other").history_size, 1000);
        assert_eq!(all.options_for("$sys.cpu").history_size, 300);
        let with_default = Namespaces::new(vec![ns("", 7)], NamespaceOptions::default());
        assert_eq!(with_default.options_for("x").history_size, 7);
    }
}
