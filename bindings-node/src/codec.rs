//! The core's frame codecs, exposed so the Node tests can check this
//! package against the shared vectors (`tests/vectors/frames.json`).

use livegate_core::protocol::ServerFrame;
use livegate_core::ErrorCode;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::batch::BatchWriter;
use crate::client::parse_encoding;
use crate::errors::{error, invalid, Kind};
use crate::Batch;

/// Decodes a frame in `source` encoding and encodes it again in `target`;
/// a frame the decoder refuses throws with the protocol's code.
#[napi(catch_unwind)]
pub fn transcode_frame(
    direction: String,
    source: String,
    target: String,
    data: Buffer,
) -> napi::Result<Buffer> {
    let (source, target) = (parse_encoding(&source)?, parse_encoding(&target)?);
    let out = match direction.as_str() {
        "client" => {
            let frame = source
                .decode_client(&data)
                .map_err(|e| error(Kind::Protocol, e.error.code(), e.error.to_string()))?;
            target.encode_client(&frame)
        }
        "server" => {
            let frame = source
                .decode_server(&data)
                .map_err(|e| error(Kind::Protocol, ErrorCode::BadFrame, e.to_string()))?;
            target.encode_server(&frame)
        }
        other => {
            return Err(invalid(format!(
                "direction must be \"client\" or \"server\", not {other:?}"
            )))
        }
    };
    Ok(Buffer::from(out.to_vec()))
}

/// The publications a server frame carries (a `publication`, or the replay
/// in `subscribed`), as a batch the way subscriptions hand them over.
#[napi(catch_unwind)]
pub fn decode_publications(encoding: String, data: Buffer) -> napi::Result<Batch> {
    let frame = parse_encoding(&encoding)?
        .decode_server(&data)
        .map_err(|e| error(Kind::Protocol, ErrorCode::BadFrame, e.to_string()))?;
    let mut out = BatchWriter::new();
    match frame {
        ServerFrame::Publication(p) => out.publication(&p),
        ServerFrame::Subscribed { publications, .. } => {
            for p in &publications {
                out.publication(p);
            }
        }
        _ => {}
    }
    Ok(out.finish())
}
