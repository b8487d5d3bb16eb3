//! Publication payloads, carried verbatim.
//!
//! A payload keeps the bytes it was published with. A JSON payload reaches JSON
//! subscribers byte for byte; a MessagePack payload reaches MessagePack
//! subscribers byte for byte. Only when the encodings differ is it converted,
//! and the gateway does that once per publication, never per subscriber.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use bytes::Bytes;

/// Why bytes are not a valid payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not exactly one JSON value.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// Not exactly one MessagePack value.
    #[error("payload is not valid MessagePack: {0}")]
    InvalidMsgpack(String),
}

#[derive(Clone)]
enum Repr {
    Json(Bytes),
    Msgpack(Bytes),
    Binary(Bytes),
}

/// The `data` of a publication.
///
/// Two payloads are equal when they hold the same bytes in the same form, or,
/// across forms, the same value once decoded.
#[derive(Clone)]
pub struct Payload(Repr);

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        if self.kind() == other.kind() {
            self.as_bytes() == other.as_bytes()
        } else if self.kind() == PayloadKind::Binary || other.kind() == PayloadKind::Binary {
            false
        } else {
            self.to_json_value() == other.to_json_value()
        }
    }
}

impl Eq for Payload {}

/// Which form a payload was published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A JSON value.
    Json,
    /// A MessagePack value.
    Msgpack,
    /// Raw bytes.
    Binary,
}

impl Payload {
    /// A JSON payload from its text; fails unless it is exactly one JSON value.
    /// Surrounding whitespace is dropped, everything else is kept as sent.
    pub fn from_json(text: impl Into<Bytes>) -> Result<Self, PayloadError> {
        let text: Bytes = text.into();
        let raw: &serde_json::value::RawValue =
            serde_json::from_slice(&text).map_err(|e| PayloadError::InvalidJson(e.to_string()))?;
        // RawValue skips nesting without a depth limit; serde_json's Value
        // stops at 128 levels, so deeper payloads could not be converted.
        if json_depth(raw.get().as_bytes()) > MAX_DEPTH {
            return Err(PayloadError::InvalidJson(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let trimmed = raw.get().as_bytes();
        if trimmed.len() == text.len() {
            return Ok(Self(Repr::Json(text)));
        }
        let start = trimmed.as_ptr() as usize - text.as_ptr() as usize;
        Ok(Self(Repr::Json(text.slice(start..start + trimmed.len()))))
    }

    /// A JSON payload from a value a JSON parser has just accepted (the
    /// `RawValue` of a decoded frame): not parsed again, only its depth is
    /// checked.
    pub(crate) fn from_parsed_json(
        raw: &serde_json::value::RawValue,
    ) -> Result<Self, PayloadError> {
        let text = raw.get().as_bytes();
        if json_depth(text) > MAX_DEPTH {
            return Err(PayloadError::InvalidJson(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Self(Repr::Json(Bytes::copy_from_slice(text))))
    }

    /// A JSON payload from a value the caller already holds.
    pub fn from_json_value(value: &serde_json::Value) -> Self {
        // Serializing a `serde_json::Value` cannot fail.
        Self(Repr::Json(Bytes::from(value.to_string())))
    }

    /// A MessagePack payload; fails unless it is exactly one MessagePack value.
    /// A top-level `bin` becomes a [`PayloadKind::Binary`] payload.
    pub fn from_msgpack(bytes: impl Into<Bytes>) -> Result<Self, PayloadError> {
        let bytes: Bytes = bytes.into();
        let value = read_one_msgpack(&bytes).map_err(PayloadError::InvalidMsgpack)?;
        Ok(Self::from_msgpack_value_bytes(value, bytes))
    }

    /// A MessagePack payload from bytes already checked to be one
    /// non-binary value.
    pub(crate) fn msgpack_checked(bytes: Bytes) -> Self {
        Self(Repr::Msgpack(bytes))
    }

    pub(crate) fn from_msgpack_value_bytes(value: rmpv::Value, bytes: Bytes) -> Self {
        match value {
            rmpv::Value::Binary(b) => Self(Repr::Binary(Bytes::from(b))),
            _ => Self(Repr::Msgpack(bytes)),
        }
    }

    /// A payload of `kind` from bytes a checking constructor of this type
    /// accepted before (`as_bytes` of an earlier payload, kept somewhere
    /// that guards them, such as a checksummed log): not checked again.
    /// Bytes that were never checked would reach clients as they are.
    pub fn from_trusted(kind: PayloadKind, bytes: Bytes) -> Self {
        Self(match kind {
            PayloadKind::Json => Repr::Json(bytes),
            PayloadKind::Msgpack => Repr::Msgpack(bytes),
            PayloadKind::Binary => Repr::Binary(bytes),
        })
    }

    /// A binary payload.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self(Repr::Binary(bytes.into()))
    }

    /// The form it was published in.
    pub fn kind(&self) -> PayloadKind {
        match self.0 {
            Repr::Json(_) => PayloadKind::Json,
            Repr::Msgpack(_) => PayloadKind::Msgpack,
            Repr::Binary(_) => PayloadKind::Binary,
        }
    }

    /// The bytes as published (JSON text, MessagePack, or raw bytes).
    pub fn as_bytes(&self) -> &Bytes {
        match &self.0 {
            Repr::Json(b) | Repr::Msgpack(b) | Repr::Binary(b) => b,
        }
    }

    /// The payload as JSON text: verbatim for JSON payloads, converted for
    /// MessagePack, a base64 string for binary.
    pub fn to_json(&self) -> Cow<'_, [u8]> {
        match &self.0 {
            Repr::Json(b) => Cow::Borrowed(b),
            Repr::Msgpack(b) => {
                let mut rest = &b[..];
                let mut out = Vec::with_capacity(b.len() * 2);
                match rmpv::decode::read_value(&mut rest) {
                    Ok(v) => write_msgpack_as_json(&v, &mut out),
                    // Constructors validate; unreachable in practice, but never panic.
                    Err(_) => out.extend_from_slice(b"null"),
                }
                Cow::Owned(out)
            }
            Repr::Binary(b) => {
                let mut out = Vec::with_capacity(b.len() * 4 / 3 + 4);
                out.push(b'"');
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(b)
                        .as_bytes(),
                );
                out.push(b'"');
                Cow::Owned(out)
            }
        }
    }

    /// The payload as one MessagePack value: verbatim for MessagePack payloads,
    /// converted for JSON, a `bin` for binary.
    pub fn to_msgpack(&self) -> Cow<'_, [u8]> {
        match &self.0 {
            Repr::Msgpack(b) => Cow::Borrowed(b),
            Repr::Json(b) => {
                let value: serde_json::Value =
                    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null);
                let mut out = Vec::with_capacity(b.len());
                write_json_as_msgpack(&value, &mut out);
                Cow::Owned(out)
            }
            Repr::Binary(b) => {
                let mut out = Vec::with_capacity(b.len() + 5);
                // Writing to a Vec cannot fail.
                let _ = rmp::encode::write_bin(&mut out, b);
                Cow::Owned(out)
            }
        }
    }

    /// Decodes the payload into a JSON value (binary becomes a base64 string).
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.to_json()).unwrap_or(serde_json::Value::Null)
    }

    /// Size of the payload as published.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the published bytes are empty (only possible for binary payloads).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Json(b) => write!(f, "Json({})", String::from_utf8_lossy(b)),
            Repr::Msgpack(b) => write!(f, "Msgpack({b:02x?})"),
            Repr::Binary(b) => write!(f, "Binary({b:02x?})"),
        }
    }
}

/// Deepest nesting accepted in a MessagePack value (serde_json's limit for JSON).
pub const MAX_DEPTH: usize = 128;

/// Reads exactly one well-formed MessagePack value. The bytes are checked
/// first without recursion (structure, lengths, nesting depth, the never-valid
/// marker 0xc1, which rmpv would read as nil), so the recursive reader after
/// it cannot be driven into a stack overflow.
pub(crate) fn read_one_msgpack(bytes: &[u8]) -> Result<rmpv::Value, String> {
    let end = check_msgpack(bytes)?;
    if end != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - end
        ));
    }
    let value = rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| e.to_string())?;
    if !keys_are_scalar(&value) {
        // JSON keys are strings: a map or array as a key would have to be
        // escaped into a string once per level, growing exponentially.
        return Err(
            "map keys must be strings, numbers, booleans, nil or bytes, not maps or arrays".into(),
        );
    }
    Ok(value)
}

/// Whether no map in `v` has an array or a map as a key (depth is bounded
/// by [`check_msgpack`], so the recursion is too).
fn keys_are_scalar(v: &rmpv::Value) -> bool {
    match v {
        rmpv::Value::Array(items) => items.iter().all(keys_are_scalar),
        rmpv::Value::Map(entries) => entries.iter().all(|(k, v)| {
            !matches!(k, rmpv::Value::Array(_) | rmpv::Value::Map(_)) && keys_are_scalar(v)
        }),
        _ => true,
    }
}

/// The deepest nesting of arrays and objects in valid JSON text.
fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The bytes of the value under string key `key` in the map that `bytes`
/// (already checked to be one well-formed value) holds, as sent.
pub(crate) fn msgpack_map_value<'a>(bytes: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut rest = bytes;
    let len = rmp::decode::read_map_len(&mut rest).ok()?;
    for _ in 0..len {
        let key_end = check_msgpack(rest).ok()?;
        let (k, after) = rest.split_at(key_end);
        let value_end = check_msgpack(after).ok()?;
        let mut kr = k;
        let is_key = rmp::decode::read_str_len(&mut kr)
            .ok()
            .is_some_and(|n| n as usize == kr.len() && kr == key.as_bytes());
        if is_key {
            return Some(&after[..value_end]);
        }
        rest = &after[value_end..];
    }
    None
}

/// Walks one MessagePack value iteratively; returns where it ends.
fn check_msgpack(bytes: &[u8]) -> Result<usize, String> {
    let be = |pos: usize, n: usize| -> Result<u64, String> {
        let raw = bytes.get(pos..pos + n).ok_or("truncated value")?;
        Ok(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let mut pos = 0usize;
    // Items still to read at each open level.
    let mut pending: Vec<u64> = vec![1];
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let marker = *bytes.get(pos).ok_or("truncated value")?;
        pos += 1;
        // (bytes to skip, child items)
        let (skip, children): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc1 => return Err("reserved marker 0xc1".into()),
            0xc4 | 0xd9 => (be(pos, 1)? + 1, 0),
            0xc5 | 0xda => (be(pos, 2)? + 2, 0),
            0xc6 | 0xdb => (be(pos, 4)? + 4, 0),
            0xc7 => (be(pos, 1)? + 2, 0),
            0xc8 => (be(pos, 2)? + 3, 0),
            0xc9 => (be(pos, 4)? + 5, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(pos, 2)?),
            0xdd => (4, be(pos, 4)?),
            0xde => (2, 2 * be(pos, 2)?),
            0xdf => (4, 2 * be(pos, 4)?),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|p| *p <= bytes.len())
            .ok_or("truncated value")?;
        if children > 0 {
            if pending.len() > MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} levels"));
            }
            pending.push(children);
        }
    }
    Ok(pos)
}

fn write_json_as_msgpack(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    // Writing to a Vec cannot fail; the results are ignored for that reason.
    match value {
        Value::Null => {
            let _ = rmp::encode::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = rmp::encode::write_uint(out, u);
            } else if let Some(i) = n.as_i64() {
                let _ = rmp::encode::write_sint(out, i);
            } else {
                let _ = rmp::encode::write_f64(out, n.as_f64().unwrap_or(0.0));
            }
        }
        Value::String(s) => {
            let _ = rmp::encode::write_str(out, s);
        }
        Value::Array(items) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                write_json_as_msgpack(item, out);
            }
        }
        Value::Object(map) => {
            let _ = rmp::encode::write_map_len(out, map.len() as u32);
            for (k, v) in map {
                let _ = rmp::encode::write_str(out, k);
                write_json_as_msgpack(v, out);
            }
        }
    }
}

fn write_msgpack_as_json(value: &rmpv::Value, out: &mut Vec<u8>) {
    use rmpv::Value;
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::F32(f) => write_float(f64::from(*f), out),
        Value::F64(f) => write_float(*f, out),
        Value::String(s) => write_json_str(&String::from_utf8_lossy(s.as_bytes()), out),
        Value::Binary(b) | Value::Ext(_, b) => {
            write_json_str(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_msgpack_as_json(item, out);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Value::String(s) => write_json_str(&String::from_utf8_lossy(s.as_bytes()), out),
                    // JSON keys are strings: other keys are written as their JSON text.
                    other => {
                        let mut key = Vec::new();
                        write_msgpack_as_json(other, &mut key);
                        write_json_str(&String::from_utf8_lossy(&key), out);
                    }
                }
                out.push(b':');
                write_msgpack_as_json(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        // serde_json prints the shortest representation that round-trips.
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        out.extend_from_slice(b"null");
    }
}

pub(crate) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    // serde_json escapes exactly as JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_kept_verbatim_and_trimmed() {
        let p = Payload::from_json(&b"  {\"b\":1, \"a\" :2.50}\n"[..]).unwrap();
        assert_eq!(&*p.to_json(), b"{\"b\":1, \"a\" :2.50}");
        assert!(Payload::from_json(&b"{\"a\":1} x"[..]).is_err());
        assert!(Payload::from_json(&b""[..]).is_err());
    }

    #[test]
    fn converts_between_encodings() {
        let p = Payload::from_json(&br#"{"a":[1,-2,2.5,"x",null,true]}"#[..]).unwrap();
        let mp = p.to_msgpack().into_owned();
        let back = Payload::from_msgpack(mp).unwrap();
        assert_eq!(&*back.to_json(), br#"{"a":[1,-2,2.5,"x",null,true]}"#);
        // Found by fuzzing: a long mantissa must survive JSON -> MessagePack -> JSON.
        let big = Payload::from_json(&b" 555555555455555555555555555555"[..]).unwrap();
        let again = Payload::from_msgpack(big.to_msgpack().into_owned()).unwrap();
        assert_eq!(again.to_json_value(), big.to_json_value());
    }

    #[test]
    fn binary_in_json_is_base64() {
        let p = Payload::binary(vec![0u8, 1, 2, 255]);
        assert_eq!(&*p.to_json(), b"\"AAEC/w==\"");
        assert_eq!(&*p.to_msgpack(), &[0xc4, 4, 0, 1, 2, 255]);
        let from_mp = Payload::from_msgpack(vec![0xc4, 1, 7]).unwrap();
        assert_eq!(from_mp.kind(), PayloadKind::Binary);
    }

    #[test]
    fn finds_a_map_value_as_sent() {
        // {"a": 1, "data": [1, 2]} with the array in a non-shortest form (array16).
        let frame = [
            0x82, 0xa1, b'a', 0x01, 0xa4, b'd', b'a', b't', b'a', 0xdc, 0x00, 0x02, 0x01, 0x02,
        ];
        assert_eq!(msgpack_map_value(&frame, "data"), Some(&frame[9..]));
        assert_eq!(msgpack_map_value(&frame, "a"), Some(&frame[3..4]));
        assert_eq!(msgpack_map_value(&frame, "nope"), None);
    }

    #[test]
    fn rejects_malformed_msgpack() {
        assert!(Payload::from_msgpack(vec![0xc0, 0xc0]).is_err());
        assert!(Payload::from_msgpack(vec![0x92, 0x01]).is_err());
        assert!(Payload::from_msgpack(vec![0xc1]).is_err());
        assert!(Payload::from_msgpack(vec![0x91, 0xc1]).is_err());
    }

    #[test]
    fn container_keys_are_refused_they_would_explode_as_json() {
        // Found by fuzzing: {{{...}: 1}: 1} nests keys; as JSON every level
        // escapes the one below, doubling its size.
        let mut nested = vec![0x81u8; 100];
        nested.push(0xc0);
        nested.extend(std::iter::repeat_n(0x01, 100));
        assert!(Payload::from_msgpack(nested).is_err());
        // Scalar keys are fine.
        let p = Payload::from_msgpack(vec![0x82, 0x01, 0xa1, b'a', 0xc3, 0x02]).unwrap();
        assert_eq!(&*p.to_json(), br#"{"1":"a","true":2}"#);
    }

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":["[[[", "\"[", {"b":1}]}"#), 3);
        assert_eq!(json_depth(b"1"), 0);
        let at_limit = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Payload::from_json(at_limit.clone()).is_ok());
        assert!(Payload::from_json(format!("[{at_limit}]")).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut deep = vec![0x91u8; 100_000];
        deep.push(0xc0);
        assert!(Payload::from_msgpack(deep).is_err());
        let deep_json = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(Payload::from_json(deep_json).is_err());
    }
}
