//! Rust errors as the `Error` subclasses of `errors.js`.
//!
//! The classes live in JavaScript so they can extend the built-in ones a
//! caller already checks (`TypeError`, ...). A native error's message carries
//! the class and the code as `livegate:<kind>:<code>:<message>`; the JS layer
//! turns it into the right class with `code` set.

use livegate_client::ClientError;
use livegate_core::ErrorCode;

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
pub fn error(kind: Kind, code: ErrorCode, message: impl AsRef<str>) -> napi::Error {
    napi::Error::from_reason(format!(
        "livegate:{}:{}:{}",
        kind.as_str(),
        code.as_str(),
        message.as_ref()
    ))
}

/// The error for a client error.
pub fn from_client(e: ClientError) -> napi::Error {
    let code = e.code();
    match e {
        ClientError::BadUrl(why) => error(Kind::Argument, code, format!("bad gateway URL {why}")),
        ClientError::Io(why) => error(Kind::Connection, code, why),
        ClientError::Closed => error(
            Kind::Closed,
            code,
            "the client is closed; create a new one to connect again",
        ),
        ClientError::Refused { message, .. } => error(Kind::Protocol, code, message),
        ClientError::Invalid(why) => error(Kind::Argument, code, why),
        ClientError::Tls(why) => error(Kind::Argument, code, format!("TLS: {why}")),
        other => error(Kind::Protocol, code, other.to_string()),
    }
}

/// A bad argument.
pub fn invalid(message: impl AsRef<str>) -> napi::Error {
    error(Kind::Argument, ErrorCode::Invalid, message)
}
