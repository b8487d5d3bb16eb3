//! Decoding: bytes to a flat set of fields, then fields to a typed frame.
//!
//! Both encodings fill the same [`Fields`]; the checks that make a frame
//! (required fields, known `type`) are written once, in [`Fields::into_client`]
//! and [`Fields::into_server`].

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::Encoding;
use crate::error::DecodeError;
use crate::payload::Payload;
use crate::protocol::{ClientFrame, Position, Publication, ServerFrame};
use crate::time::parse_rfc3339_millis;

/// A client frame that could not be decoded, with its request id when that
/// much could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Undecodable {
    /// The frame's `id`, if it could be read.
    pub id: Option<u64>,
    /// What was wrong.
    pub error: DecodeError,
}

impl From<DecodeError> for Undecodable {
    fn from(error: DecodeError) -> Self {
        Self { id: None, error }
    }
}

#[derive(Default)]
pub(super) struct Fields {
    ty: Option<String>,
    id: Option<u64>,
    topic: Option<String>,
    since: Option<Position>,
    event: Option<String>,
    data: Option<Payload>,
    limit: Option<u64>,
    token: Option<String>,
    msg_id: Option<String>,
    client_id: Option<String>,
    heartbeat_ms: Option<u64>,
    epoch: Option<String>,
    offset: Option<u64>,
    recovered: Option<bool>,
    more: Option<bool>,
    publications: Option<Vec<Fields>>,
    code: Option<String>,
    message: Option<String>,
    reason: Option<String>,
    reconnect: Option<bool>,
    time: Option<String>,
}

pub(super) fn fields(encoding: Encoding, bytes: &[u8]) -> Result<Fields, Undecodable> {
    match encoding {
        Encoding::Json => json_fields(bytes),
        Encoding::Msgpack => msgpack_fields(bytes),
    }
}

fn req<T>(v: Option<T>, name: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField(name))
}

impl Fields {
    pub(super) fn into_client(self) -> Result<ClientFrame, Undecodable> {
        let id = self.id;
        self.client_inner()
            .map_err(|error| Undecodable { id, error })
    }

    fn client_inner(self) -> Result<ClientFrame, DecodeError> {
        let ty = req(self.ty, "type")?;
        let id = self.id;
        Ok(match ty.as_str() {
            "subscribe" => ClientFrame::Subscribe {
                id,
                topic: req(self.topic, "topic")?,
                since: self.since,
            },
            "unsubscribe" => ClientFrame::Unsubscribe {
                id,
                topic: req(self.topic, "topic")?,
            },
            "publish" => ClientFrame::Publish {
                id,
                topic: req(self.topic, "topic")?,
                event: self.event,
                data: req(self.data, "data")?,
                msg_id: self.msg_id,
            },
            "history" => ClientFrame::History {
                id,
                topic: req(self.topic, "topic")?,
                since: self.since,
                limit: self.limit,
            },
            "ping" => ClientFrame::Ping { id },
            "refresh" => ClientFrame::Refresh {
                token: req(self.token, "token")?,
            },
            _ => return Err(DecodeError::UnknownType(ty)),
        })
    }

    pub(super) fn into_server(mut self) -> Result<ServerFrame, DecodeError> {
        let ty = req(self.ty.take(), "type")?;
        let id = self.id;
        let publications = |list: Option<Vec<Fields>>| -> Result<Vec<Publication>, DecodeError> {
            req(list, "publications")?
                .into_iter()
                .map(Fields::into_publication)
                .collect()
        };
        Ok(match ty.as_str() {
            "connected" => ServerFrame::Connected {
                client_id: req(self.client_id, "client_id")?,
                heartbeat_ms: req(self.heartbeat_ms, "heartbeat_ms")?,
            },
            "subscribed" => ServerFrame::Subscribed {
                id,
                topic: req(self.topic, "topic")?,
                epoch: req(self.epoch, "epoch")?,
                offset: req(self.offset, "offset")?,
                recovered: req(self.recovered, "recovered")?,
                publications: publications(self.publications)?,
            },
            "unsubscribed" => ServerFrame::Unsubscribed {
                id,
                topic: req(self.topic, "topic")?,
            },
            "publication" => ServerFrame::Publication(self.into_publication()?),
            "ack" => ServerFrame::Ack {
                id,
                topic: req(self.topic, "topic")?,
                epoch: req(self.epoch, "epoch")?,
                offset: req(self.offset, "offset")?,
            },
            "history" => ServerFrame::History {
                id,
                topic: req(self.topic, "topic")?,
                epoch: req(self.epoch, "epoch")?,
                offset: req(self.offset, "offset")?,
                more: req(self.more, "more")?,
                publications: publications(self.publications)?,
            },
            "pong" => ServerFrame::Pong { id },
            "error" => ServerFrame::Error {
                id,
                code: req(self.code, "code")?,
                message: req(self.message, "message")?,
            },
            "disconnect" => ServerFrame::Disconnect {
                code: req(self.code, "code")?,
                reason: req(self.reason, "reason")?,
                reconnect: req(self.reconnect, "reconnect")?,
            },
            _ => return Err(DecodeError::UnknownType(ty)),
        })
    }

    fn into_publication(self) -> Result<Publication, DecodeError> {
        let time = req(self.time, "time")?;
        let time_ms = parse_rfc3339_millis(&time).ok_or(DecodeError::WrongType {
            field: "time",
            expected: "an RFC 3339 UTC timestamp",
        })?;
        Ok(Publication {
            topic: req(self.topic, "topic")?,
            epoch: req(self.epoch, "epoch")?,
            offset: req(self.offset, "offset")?,
            event: self.event,
            data: req(self.data, "data")?,
            time_ms,
        })
    }
}

// ---- JSON ----

#[derive(Deserialize)]
struct JsonPosition {
    epoch: String,
    offset: u64,
}

#[derive(Deserialize)]
struct JsonFields<'a> {
    #[serde(rename = "type")]
    ty: Option<String>,
    id: Option<u64>,
    topic: Option<String>,
    since: Option<JsonPosition>,
    event: Option<String>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    data: Option<&'a RawValue>,
    binary: Option<bool>,
    limit: Option<u64>,
    token: Option<String>,
    msg_id: Option<String>,
    client_id: Option<String>,
    heartbeat_ms: Option<u64>,
    epoch: Option<String>,
    offset: Option<u64>,
    recovered: Option<bool>,
    more: Option<bool>,
    #[serde(borrow)]
    publications: Option<Vec<JsonFields<'a>>>,
    code: Option<String>,
    message: Option<String>,
    reason: Option<String>,
    reconnect: Option<bool>,
    time: Option<String>,
}

/// `data: null` is a payload, not an absent field: read it raw whenever present.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn json_fields(bytes: &[u8]) -> Result<Fields, Undecodable> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        // Still well-formedness first: garbage is "malformed", `[1]` is "not an object".
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(json_error)?;
        return Err(DecodeError::NotAnObject.into());
    }
    let raw: JsonFields<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // A field of the wrong type still lets us read the id for the answer.
        let id = serde_json::from_slice::<IdOnly>(bytes)
            .ok()
            .and_then(|i| i.id);
        Undecodable {
            id,
            error: json_error(e),
        }
    })?;
    let id = raw.id;
    json_into_fields(raw).map_err(|error| Undecodable { id, error })
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

fn json_error(e: serde_json::Error) -> DecodeError {
    DecodeError::Malformed {
        encoding: "JSON",
        detail: e.to_string(),
    }
}

fn json_into_fields(raw: JsonFields<'_>) -> Result<Fields, DecodeError> {
    let data = match raw.data {
        None => None,
        Some(text) if raw.binary == Some(true) => {
            let s: String =
                serde_json::from_str(text.get()).map_err(|_| DecodeError::WrongType {
                    field: "data",
                    expected: "a base64 string when \"binary\" is true",
                })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| DecodeError::WrongType {
                    field: "data",
                    expected: "a base64 string when \"binary\" is true",
                })?;
            Some(Payload::binary(bytes))
        }
        Some(text) => {
            Some(
                Payload::from_parsed_json(text).map_err(|e| DecodeError::Malformed {
                    encoding: "JSON",
                    detail: e.to_string(),
                })?,
            )
        }
    };
    let publications = match raw.publications {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .map(json_into_fields)
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Fields {
        ty: raw.ty,
        id: raw.id,
        topic: raw.topic,
        since: raw.since.map(|p| Position {
            epoch: p.epoch,
            offset: p.offset,
        }),
        event: raw.event,
        data,
        limit: raw.limit,
        token: raw.token,
        msg_id: raw.msg_id,
        client_id: raw.client_id,
        heartbeat_ms: raw.heartbeat_ms,
        epoch: raw.epoch,
        offset: raw.offset,
        recovered: raw.recovered,
        more: raw.more,
        publications,
        code: raw.code,
        message: raw.message,
        reason: raw.reason,
        reconnect: raw.reconnect,
        time: raw.time,
    })
}

// ---- MessagePack ----

fn msgpack_fields(bytes: &[u8]) -> Result<Fields, Undecodable> {
    let value =
        crate::payload::read_one_msgpack(bytes).map_err(|detail| DecodeError::Malformed {
            encoding: "MessagePack",
            detail,
        })?;
    let rmpv::Value::Map(entries) = value else {
        return Err(DecodeError::NotAnObject.into());
    };
    let id = entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
        (Some("id"), rmpv::Value::Integer(i)) => i.as_u64(),
        _ => None,
    });
    let mut fields = msgpack_into_fields(entries).map_err(|error| Undecodable { id, error })?;
    // Carry the payload verbatim: its bytes as sent, not as re-encoded.
    if let (Some(data), Some(raw)) = (
        &fields.data,
        crate::payload::msgpack_map_value(bytes, "data"),
    ) {
        if data.kind() == crate::payload::PayloadKind::Msgpack {
            fields.data = Some(Payload::msgpack_checked(Bytes::copy_from_slice(raw)));
        }
    }
    Ok(fields)
}

fn mp_str(field: &'static str, v: rmpv::Value) -> Result<String, DecodeError> {
    match v {
        rmpv::Value::String(s) => s.into_str().ok_or(DecodeError::WrongType {
            field,
            expected: "a UTF-8 string",
        }),
        _ => Err(DecodeError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn mp_u64(field: &'static str, v: rmpv::Value) -> Result<u64, DecodeError> {
    v.as_u64().ok_or(DecodeError::WrongType {
        field,
        expected: "an unsigned integer",
    })
}

fn mp_bool(field: &'static str, v: rmpv::Value) -> Result<bool, DecodeError> {
    v.as_bool().ok_or(DecodeError::WrongType {
        field,
        expected: "a boolean",
    })
}

fn msgpack_into_fields(entries: Vec<(rmpv::Value, rmpv::Value)>) -> Result<Fields, DecodeError> {
    let mut f = Fields::default();
    for (k, v) in entries {
        let Some(key) = k.as_str() else { continue };
        // Absent and nil are the same for optional fields.
        if v.is_nil() && key != "data" {
            continue;
        }
        match key {
            "type" => f.ty = Some(mp_str("type", v)?),
            "id" => f.id = Some(mp_u64("id", v)?),
            "topic" => f.topic = Some(mp_str("topic", v)?),
            "since" => f.since = Some(mp_position(v)?),
            "event" => f.event = Some(mp_str("event", v)?),
            "data" => {
                let mut buf = Vec::new();
                // Writing to a Vec cannot fail.
                let _ = rmpv::encode::write_value(&mut buf, &v);
                f.data = Some(Payload::from_msgpack_value_bytes(v, Bytes::from(buf)));
            }
            "limit" => f.limit = Some(mp_u64("limit", v)?),
            "token" => f.token = Some(mp_str("token", v)?),
            "msg_id" => f.msg_id = Some(mp_str("msg_id", v)?),
            "client_id" => f.client_id = Some(mp_str("client_id", v)?),
            "heartbeat_ms" => f.heartbeat_ms = Some(mp_u64("heartbeat_ms", v)?),
            "epoch" => f.epoch = Some(mp_str("epoch", v)?),
            "offset" => f.offset = Some(mp_u64("offset", v)?),
            "recovered" => f.recovered = Some(mp_bool("recovered", v)?),
            "more" => f.more = Some(mp_bool("more", v)?),
            "reconnect" => f.reconnect = Some(mp_bool("reconnect", v)?),
            "code" => f.code = Some(mp_str("code", v)?),
            "message" => f.message = Some(mp_str("message", v)?),
            "reason" => f.reason = Some(mp_str("reason", v)?),
            "time" => f.time = Some(mp_str("time", v)?),
            "publications" => {
                let rmpv::Value::Array(items) = v else {
                    return Err(DecodeError::WrongType {
                        field: "publications",
                        expected: "an array",
                    });
                };
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    let rmpv::Value::Map(entries) = item else {
                        return Err(DecodeError::WrongType {
                            field: "publications",
                            expected: "an array of maps",
                        });
                    };
                    list.push(msgpack_into_fields(entries)?);
                }
                f.publications = Some(list);
            }
            _ => {}
        }
    }
    Ok(f)
}

fn mp_position(v: rmpv::Value) -> Result<Position, DecodeError> {
    let wrong = DecodeError::WrongType {
        field: "since",
        expected: "a map with \"epoch\" and \"offset\"",
    };
    let rmpv::Value::Map(entries) = v else {
        return Err(wrong);
    };
    let (mut epoch, mut offset) = (None, None);
    for (k, v) in entries {
        match k.as_str() {
            Some("epoch") => epoch = Some(mp_str("since", v)?),
            Some("offset") => offset = Some(mp_u64("since", v)?),
            _ => {}
        }
    }
    match (epoch, offset) {
        (Some(epoch), Some(offset)) => Ok(Position { epoch, offset }),
        _ => Err(wrong),
    }
}
