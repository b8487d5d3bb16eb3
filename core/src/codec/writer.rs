//! Field-by-field frame writers for JSON and MessagePack.

use crate::payload::{write_json_str, Payload, PayloadKind};
use crate::protocol::{ClientFrame, Position, Publication, ServerFrame};
use crate::time::format_rfc3339_millis;

/// The calls a frame is written with; each encoding implements them.
pub(super) trait Writer {
    const JSON: bool;
    /// An empty writer of the same encoding, for nested frames.
    fn fresh() -> Self;
    fn begin_map(&mut self, len: usize);
    fn end_map(&mut self);
    fn key(&mut self, key: &str);
    fn str(&mut self, value: &str);
    fn u64(&mut self, value: u64);
    fn bool(&mut self, value: bool);
    fn payload(&mut self, payload: &Payload);
    fn begin_array(&mut self, len: usize);
    fn end_array(&mut self);
    /// An element already encoded in this writer's encoding.
    fn raw(&mut self, encoded: &[u8]);
    fn finish(self) -> Vec<u8>;
}

#[derive(Default)]
pub(super) struct JsonWriter {
    out: Vec<u8>,
    need_comma: bool,
}

impl JsonWriter {
    fn sep(&mut self) {
        if self.need_comma {
            self.out.push(b',');
        }
    }
}

impl Writer for JsonWriter {
    const JSON: bool = true;
    fn fresh() -> Self {
        Self::default()
    }
    fn begin_map(&mut self, _len: usize) {
        self.sep();
        self.out.push(b'{');
        self.need_comma = false;
    }
    fn end_map(&mut self) {
        self.out.push(b'}');
        self.need_comma = true;
    }
    fn key(&mut self, key: &str) {
        self.sep();
        write_json_str(key, &mut self.out);
        self.out.push(b':');
        self.need_comma = false;
    }
    fn str(&mut self, value: &str) {
        self.sep();
        write_json_str(value, &mut self.out);
        self.need_comma = true;
    }
    fn u64(&mut self, value: u64) {
        self.sep();
        self.out
            .extend_from_slice(itoa_u64(value, &mut [0u8; 20]).as_bytes());
        self.need_comma = true;
    }
    fn bool(&mut self, value: bool) {
        self.sep();
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self.need_comma = true;
    }
    fn payload(&mut self, payload: &Payload) {
        self.sep();
        self.out.extend_from_slice(&payload.to_json());
        self.need_comma = true;
    }
    fn begin_array(&mut self, _len: usize) {
        self.sep();
        self.out.push(b'[');
        self.need_comma = false;
    }
    fn end_array(&mut self) {
        self.out.push(b']');
        self.need_comma = true;
    }
    fn raw(&mut self, encoded: &[u8]) {
        self.sep();
        self.out.extend_from_slice(encoded);
        self.need_comma = true;
    }
    fn finish(self) -> Vec<u8> {
        self.out
    }
}

fn itoa_u64(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[derive(Default)]
pub(super) struct MsgpackWriter {
    out: Vec<u8>,
}

// Writing MessagePack into a Vec cannot fail: the results below are ignored
// for that reason.
impl Writer for MsgpackWriter {
    const JSON: bool = false;
    fn fresh() -> Self {
        Self::default()
    }
    fn begin_map(&mut self, len: usize) {
        let _ = rmp::encode::write_map_len(&mut self.out, len as u32);
    }
    fn end_map(&mut self) {}
    fn key(&mut self, key: &str) {
        let _ = rmp::encode::write_str(&mut self.out, key);
    }
    fn str(&mut self, value: &str) {
        let _ = rmp::encode::write_str(&mut self.out, value);
    }
    fn u64(&mut self, value: u64) {
        let _ = rmp::encode::write_uint(&mut self.out, value);
    }
    fn bool(&mut self, value: bool) {
        let _ = rmp::encode::write_bool(&mut self.out, value);
    }
    fn payload(&mut self, payload: &Payload) {
        self.out.extend_from_slice(&payload.to_msgpack());
    }
    fn begin_array(&mut self, len: usize) {
        let _ = rmp::encode::write_array_len(&mut self.out, len as u32);
    }
    fn end_array(&mut self) {}
    fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }
    fn finish(self) -> Vec<u8> {
        self.out
    }
}

fn opt_u64<W: Writer>(w: &mut W, key: &str, value: Option<u64>) {
    if let Some(v) = value {
        w.key(key);
        w.u64(v);
    }
}

fn opt_str<W: Writer>(w: &mut W, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.key(key);
        w.str(v);
    }
}

fn position<W: Writer>(w: &mut W, key: &str, pos: &Option<Position>) {
    if let Some(p) = pos {
        w.key(key);
        w.begin_map(2);
        w.key("epoch");
        w.str(&p.epoch);
        w.key("offset");
        w.u64(p.offset);
        w.end_map();
    }
}

fn ty<W: Writer>(w: &mut W, len: usize, name: &str) {
    w.begin_map(len);
    w.key("type");
    w.str(name);
}

pub(super) fn publication<W: Writer>(w: &mut W, p: &Publication) {
    let binary = W::JSON && p.data.kind() == PayloadKind::Binary;
    ty(
        w,
        6 + usize::from(p.event.is_some()) + usize::from(binary),
        "publication",
    );
    w.key("topic");
    w.str(&p.topic);
    w.key("epoch");
    w.str(&p.epoch);
    w.key("offset");
    w.u64(p.offset);
    opt_str(w, "event", p.event.as_deref());
    w.key("data");
    w.payload(&p.data);
    w.key("time");
    w.str(&format_rfc3339_millis(p.time_ms));
    if binary {
        w.key("binary");
        w.bool(true);
    }
    w.end_map();
}

pub(super) fn client_frame<W: Writer>(w: &mut W, frame: &ClientFrame) {
    let n = |id: &Option<u64>| usize::from(id.is_some());
    match frame {
        ClientFrame::Subscribe { id, topic, since } => {
            ty(w, 2 + n(id) + usize::from(since.is_some()), "subscribe");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            position(w, "since", since);
        }
        ClientFrame::Unsubscribe { id, topic } => {
            ty(w, 2 + n(id), "unsubscribe");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
        }
        ClientFrame::Publish {
            id,
            topic,
            event,
            data,
            msg_id,
        } => {
            let binary = W::JSON && data.kind() == PayloadKind::Binary;
            let len = 3
                + n(id)
                + usize::from(event.is_some())
                + usize::from(binary)
                + usize::from(msg_id.is_some());
            ty(w, len, "publish");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            opt_str(w, "event", event.as_deref());
            opt_str(w, "msg_id", msg_id.as_deref());
            w.key("data");
            w.payload(data);
            if binary {
                w.key("binary");
                w.bool(true);
            }
        }
        ClientFrame::History {
            id,
            topic,
            since,
            limit,
        } => {
            let len = 2 + n(id) + usize::from(since.is_some()) + n(limit);
            ty(w, len, "history");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            position(w, "since", since);
            opt_u64(w, "limit", *limit);
        }
        ClientFrame::Ping { id } => {
            ty(w, 1 + n(id), "ping");
            opt_u64(w, "id", *id);
        }
        ClientFrame::Refresh { token } => {
            ty(w, 2, "refresh");
            w.key("token");
            w.str(token);
        }
    }
    w.end_map();
}

pub(super) fn server_frame<W: Writer>(w: &mut W, frame: &ServerFrame) {
    match frame {
        ServerFrame::Publication(p) => publication(w, p),
        ServerFrame::Subscribed { publications, .. }
        | ServerFrame::History { publications, .. } => {
            let encoded: Vec<Vec<u8>> = publications
                .iter()
                .map(|p| {
                    let mut inner = W::fresh();
                    publication(&mut inner, p);
                    inner.finish()
                })
                .collect();
            list_frame(w, frame, &encoded);
        }
        other => simple_frame(w, other),
    }
}

pub(super) fn list_frame<W: Writer, B: AsRef<[u8]>>(w: &mut W, frame: &ServerFrame, encoded: &[B]) {
    let n = |id: &Option<u64>| usize::from(id.is_some());
    match frame {
        ServerFrame::Subscribed {
            id,
            topic,
            epoch,
            offset,
            recovered,
            ..
        } => {
            ty(w, 6 + n(id), "subscribed");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            w.key("epoch");
            w.str(epoch);
            w.key("offset");
            w.u64(*offset);
            w.key("recovered");
            w.bool(*recovered);
        }
        ServerFrame::History {
            id,
            topic,
            epoch,
            offset,
            more,
            ..
        } => {
            ty(w, 6 + n(id), "history");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            w.key("epoch");
            w.str(epoch);
            w.key("offset");
            w.u64(*offset);
            w.key("more");
            w.bool(*more);
        }
        other => return simple_frame(w, other),
    }
    w.key("publications");
    w.begin_array(encoded.len());
    for e in encoded {
        w.raw(e.as_ref());
    }
    w.end_array();
    w.end_map();
}

fn simple_frame<W: Writer>(w: &mut W, frame: &ServerFrame) {
    let n = |id: &Option<u64>| usize::from(id.is_some());
    match frame {
        ServerFrame::Connected {
            client_id,
            heartbeat_ms,
        } => {
            ty(w, 3, "connected");
            w.key("client_id");
            w.str(client_id);
            w.key("heartbeat_ms");
            w.u64(*heartbeat_ms);
        }
        ServerFrame::Unsubscribed { id, topic } => {
            ty(w, 2 + n(id), "unsubscribed");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
        }
        ServerFrame::Ack {
            id,
            topic,
            epoch,
            offset,
        } => {
            ty(w, 4 + n(id), "ack");
            opt_u64(w, "id", *id);
            w.key("topic");
            w.str(topic);
            w.key("epoch");
            w.str(epoch);
            w.key("offset");
            w.u64(*offset);
        }
        ServerFrame::Pong { id } => {
            ty(w, 1 + n(id), "pong");
            opt_u64(w, "id", *id);
        }
        ServerFrame::Error { id, code, message } => {
            ty(w, 3 + n(id), "error");
            opt_u64(w, "id", *id);
            w.key("code");
            w.str(code);
            w.key("message");
            w.str(message);
        }
        ServerFrame::Disconnect {
            code,
            reason,
            reconnect,
        } => {
            ty(w, 4, "disconnect");
            w.key("code");
            w.str(code);
            w.key("reason");
            w.str(reason);
            w.key("reconnect");
            w.bool(*reconnect);
        }
        // Publication, Subscribed and History have their own writers.
        ServerFrame::Publication(p) => return publication(w, p),
        ServerFrame::Subscribed { .. } | ServerFrame::History { .. } => {
            return list_frame::<W, &[u8]>(w, frame, &[])
        }
    }
    w.end_map();
}
