//! The records of a segment and their framing.
//!
//! Each record is `[body length: u32 LE][crc32 of the body: u32 LE][body]`.
//! A body starts with its kind:
//! - `1` publication: topic, epoch, offset, time, event, msg_id, payload
//!   kind and the payload's bytes as published;
//! - `2` checkpoint: topic, epoch and latest offset, written at the start
//!   of every segment so deleting older segments never loses a topic's
//!   epoch or offset.
//!
//! Strings are length-prefixed (u16 for topics, u8 for the rest, `0xff` for
//! an absent event or msg_id: both are at most 64 bytes).

use bytes::Bytes;
use livegate_core::payload::PayloadKind;
use livegate_core::protocol::Publication;
use livegate_core::Payload;

/// Bytes before a record's body.
pub const HEADER_LEN: usize = 8;
/// Largest body accepted when reading: a length beyond it is corruption.
pub const MAX_BODY_LEN: usize = 64 << 20;

const KIND_PUBLICATION: u8 = 1;
const KIND_CHECKPOINT: u8 = 2;
const ABSENT: u8 = 0xff;

/// A record as read back.
#[derive(Debug)]
pub enum Record {
    /// A publication and the `msg_id` it was published with.
    Publication(Publication, Option<String>),
    /// A topic's epoch and latest offset when the segment began.
    Checkpoint {
        /// The topic.
        topic: String,
        /// Its epoch.
        epoch: String,
        /// Its latest offset.
        latest: u64,
    },
}

/// Why the bytes at some point of a segment are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end inside the record: a torn write.
    #[error("truncated record")]
    Truncated,
    /// The checksum does not match the body.
    #[error("checksum mismatch")]
    Checksum,
    /// The body does not decode.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Appends a publication record to `out`.
pub fn put_publication(out: &mut Vec<u8>, p: &Publication, msg_id: Option<&str>) {
    frame(out, |b| {
        b.push(KIND_PUBLICATION);
        put_str16(b, &p.topic);
        put_str8(b, Some(&p.epoch));
        b.extend_from_slice(&p.offset.to_le_bytes());
        b.extend_from_slice(&p.time_ms.to_le_bytes());
        put_str8(b, p.event.as_deref());
        put_str8(b, msg_id);
        b.push(match p.data.kind() {
            PayloadKind::Json => 0,
            PayloadKind::Msgpack => 1,
            PayloadKind::Binary => 2,
        });
        b.extend_from_slice(p.data.as_bytes());
    });
}

/// Appends a checkpoint record to `out`.
pub fn put_checkpoint(out: &mut Vec<u8>, topic: &str, epoch: &str, latest: u64) {
    frame(out, |b| {
        b.push(KIND_CHECKPOINT);
        put_str16(b, topic);
        put_str8(b, Some(epoch));
        b.extend_from_slice(&latest.to_le_bytes());
    });
}

fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    body(out);
    let len = (out.len() - start - HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str16(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_str8(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        // Names and ids are validated to at most 64 bytes; epochs are short.
        Some(s) if s.len() < ABSENT as usize => {
            b.push(s.len() as u8);
            b.extend_from_slice(s.as_bytes());
        }
        _ => b.push(ABSENT),
    }
}

/// Reads the record at the start of `buf`: the record and its length in
/// bytes, framing included.
pub fn read(buf: &[u8]) -> Result<(Record, usize), RecordError> {
    if buf.len() < HEADER_LEN {
        return Err(RecordError::Truncated);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_BODY_LEN {
        return Err(RecordError::Malformed("length beyond the largest record"));
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Err(RecordError::Truncated);
    };
    if crc32fast::hash(body) != crc {
        return Err(RecordError::Checksum);
    }
    Ok((decode(body)?, HEADER_LEN + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Malformed("body ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, len: usize) -> Result<String, RecordError> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| RecordError::Malformed("not UTF-8"))
    }

    fn str16(&mut self) -> Result<String, RecordError> {
        let b = self.take(2)?;
        self.string(u16::from_le_bytes([b[0], b[1]]) as usize)
    }

    fn str8(&mut self) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            ABSENT => Ok(None),
            n => self.string(n as usize).map(Some),
        }
    }
}

fn decode(body: &[u8]) -> Result<Record, RecordError> {
    let mut r = Reader(body);
    let kind = r.u8()?;
    let topic = r.str16()?;
    let epoch = r.str8()?.ok_or(RecordError::Malformed("no epoch"))?;
    match kind {
        KIND_PUBLICATION => {
            let offset = r.u64()?;
            let time_ms = r.u64()?;
            let event = r.str8()?;
            let msg_id = r.str8()?;
            let payload_kind = r.u8()?;
            let kind = match payload_kind {
                0 => PayloadKind::Json,
                1 => PayloadKind::Msgpack,
                2 => PayloadKind::Binary,
                _ => return Err(RecordError::Malformed("unknown payload kind")),
            };
            // Checked when published; the checksum guards the bytes since.
            let data = Payload::from_trusted(kind, Bytes::copy_from_slice(r.0));
            let p = Publication {
                topic,
                epoch,
                offset,
                event,
                data,
                time_ms,
            };
            Ok(Record::Publication(p, msg_id))
        }
        KIND_CHECKPOINT => Ok(Record::Checkpoint {
            topic,
            epoch,
            latest: r.u64()?,
        }),
        _ => Err(RecordError::Malformed("unknown record kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(data: Payload) -> Publication {
        Publication {
            topic: "a/b.c".into(),
            epoch: "k3f9".into(),
            offset: 42,
            event: Some("ev".into()),
            data,
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let mut buf = Vec::new();
        let json = Payload::from_json(r#"{"a":[1,2]}"#).unwrap();
        put_publication(&mut buf, &publication(json.clone()), Some("m-1"));
        put_publication(
            &mut buf,
            &publication(Payload::binary(vec![0u8, 255])),
            None,
        );
        put_checkpoint(&mut buf, "t", "e9", 7);
        let (first, n1) = read(&buf).unwrap();
        let Record::Publication(p, id) = first else {
            panic!("not a publication")
        };
        assert_eq!((p, id.as_deref()), (publication(json), Some("m-1")));
        let (second, n2) = read(&buf[n1..]).unwrap();
        assert!(
            matches!(second, Record::Publication(ref p, None) if p.data.as_bytes()[..] == [0, 255])
        );
        let (third, n3) = read(&buf[n1 + n2..]).unwrap();
        assert!(
            matches!(third, Record::Checkpoint { ref topic, ref epoch, latest: 7 } if topic == "t" && epoch == "e9")
        );
        assert_eq!(n1 + n2 + n3, buf.len());
    }

    #[test]
    fn torn_and_corrupt_records_are_refused() {
        let mut buf = Vec::new();
        put_checkpoint(&mut buf, "t", "e9", 7);
        for cut in 0..buf.len() {
            assert_eq!(
                read(&buf[..cut]).err(),
                Some(RecordError::Truncated),
                "cut at {cut}"
            );
        }
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(read(&buf).err(), Some(RecordError::Checksum));
        let huge = [0xff; 16];
        assert!(matches!(read(&huge), Err(RecordError::Malformed(_))));
    }
}
