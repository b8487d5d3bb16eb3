//! Rust errors as the Python exceptions of `livegate.errors`.
//!
//! The exception classes live in Python so they can inherit from the built-in
//! ones a caller already catches (`ConnectionError`, `ValueError`, ...).

use livegate_client::ClientError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Which exception of `livegate.errors`.
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
    /// A wait ran out of time.
    Timeout,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Self::Connection => "ConnectionError",
            Self::Closed => "ClosedError",
            Self::Protocol => "ProtocolError",
            Self::Argument => "ArgumentError",
            Self::Payload => "PayloadError",
            Self::Timeout => "TimeoutError",
        }
    }

    fn cell(self) -> &'static PyOnceLock<Py<PyType>> {
        static CELLS: [PyOnceLock<Py<PyType>>; 6] = [
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
        ];
        &CELLS[self as usize]
    }
}

/// A `livegate.errors` exception with `message` and a machine-readable `code`.
pub fn error(kind: Kind, code: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        match kind
            .cell()
            .import(py, "livegate.errors", kind.class_name())
            .and_then(|ty| ty.call1((message.clone(), code)))
        {
            Ok(instance) => PyErr::from_value(instance),
            // Only if the package's Python half is missing or broken.
            Err(import_error) => import_error,
        }
    })
}

/// The exception for a client error.
pub fn from_client(e: ClientError) -> PyErr {
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
