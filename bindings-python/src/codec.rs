//! The core's frame codecs, exposed so the Python tests can check this
//! package against the shared vectors (`tests/vectors/frames.json`).

use livegate_core::protocol::ServerFrame;
use livegate_core::ErrorCode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::client::parse_encoding;
use crate::errors::{error, Kind};
use crate::types::Publication;

/// Decodes a frame in `source` encoding and encodes it again in `target`;
/// a frame the decoder refuses raises ProtocolError with the protocol's code.
#[pyfunction]
pub fn transcode_frame<'py>(
    py: Python<'py>,
    direction: &str,
    source: &str,
    target: &str,
    data: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let (source, target) = (parse_encoding(source)?, parse_encoding(target)?);
    let out = match direction {
        "client" => {
            let frame = source
                .decode_client(data)
                .map_err(|e| error(Kind::Protocol, e.error.code(), e.error.to_string()))?;
            target.encode_client(&frame)
        }
        "server" => {
            let frame = source
                .decode_server(data)
                .map_err(|e| error(Kind::Protocol, ErrorCode::BadFrame, e.to_string()))?;
            target.encode_server(&frame)
        }
        other => {
            return Err(error(
                Kind::Argument,
                ErrorCode::Invalid,
                format!("direction must be \"client\" or \"server\", not {other:?}"),
            ))
        }
    };
    Ok(PyBytes::new(py, &out))
}

/// The publications a server frame carries (a `publication`, or the replay
/// in `subscribed`), as the client hands them to Python.
#[pyfunction]
pub fn decode_publications<'py>(
    py: Python<'py>,
    encoding: &str,
    data: &[u8],
) -> PyResult<Bound<'py, PyList>> {
    let frame = parse_encoding(encoding)?
        .decode_server(data)
        .map_err(|e| error(Kind::Protocol, ErrorCode::BadFrame, e.to_string()))?;
    let out = PyList::empty(py);
    match frame {
        ServerFrame::Publication(p) => out.append(Publication::new(py, &p)?)?,
        ServerFrame::Subscribed { publications, .. } => {
            for p in &publications {
                out.append(Publication::new(py, p)?)?;
            }
        }
        _ => {}
    }
    Ok(out)
}

/// A Python value encoded as a payload, as `publish` would send it.
#[pyfunction]
pub fn encode_payload<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    encoding: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let payload = crate::convert::to_payload(data, parse_encoding(encoding)?)?;
    Ok(PyBytes::new(py, payload.as_bytes()))
}
