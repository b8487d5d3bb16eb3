//! Rust errors as the `Error` subclasses of `errors.js`.
//!
//! The classes live in JavaScript so they can extend the built-in ones a
//! caller already checks (`TypeError`, ...). A native error's message carries
//! the class and the code as `livegate:<kind>:<code>:<message>`; the JS layer
//! turns it into the right class with `code` set.

use livegate_client::ClientError;

/// Which class of `errors.js`.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The network failed or the gateway could not be reached.
    Connection,
    /// The client was closed.
    Closed,
    /// The gateway refused something, or sent something wrong.
    Protocol,
    /// A bad argument (URL, option, topic name).
    Argument,
    /// A value that cannot be encoded as a payload.
    Payload,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::Argument => "argument",
            Self::Payload => "payload",
        }
    }
}

/// An error for JavaScript with a machine-readable `code`.
pub fn error(kind: Kind, code: &str, message: impl AsRef<str>) -> napi::Error {
    napi::Error::from_reason(format!(
        "livegate:{}:{code}:{}",
        kind.as_str(),
        message.as_ref()
    ))
}

/// The error for a client error.
pub fn from_client(e: ClientError) -> napi::Error {
    match e {
        ClientError::BadUrl(why) => {
            error(Kind::Argument, "bad_url", format!("bad gateway URL {why}"))
        }
        ClientError::Io(why) => error(Kind::Connection, "io", why),
        ClientError::Closed => error(
            Kind::Closed,
            "closed",
            "the client is closed; create a new one to connect again",
        ),
        ClientError::Refused { code, message } => error(Kind::Protocol, &code, message),
        ClientError::Invalid(why) => error(Kind::Argument, "invalid", why),
        ClientError::Tls(why) => error(Kind::Argument, "tls", format!("TLS: {why}")),
        other => error(Kind::Protocol, "internal", other.to_string()),
    }
}

/// A bad argument.
pub fn invalid(message: impl AsRef<str>) -> napi::Error {
    error(Kind::Argument, "invalid", message)
}
