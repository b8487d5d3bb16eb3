//! The shared codec vectors in `tests/vectors/frames.json`: every frame's
//! exact JSON and MessagePack bytes, and frames every decoder must refuse.
//!
//! Run with `LIVEGATE_BLESS=1` to rewrite the file after a deliberate change
//! of the protocol; otherwise the file is the reference and this test checks
//! the codecs against it.

use livegate_core::protocol::{ClientFrame, Position, Publication, ServerFrame};
use livegate_core::{Encoding, Payload};
use serde_json::{json, Value};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/frames.json")
}

fn publication(offset: u64, data: Payload, event: Option<&str>) -> Publication {
    Publication {
        topic: "metrics.cpu".into(),
        epoch: "k3f9x2aa".into(),
        offset,
        event: event.map(Into::into),
        data,
        time_ms: 1_795_343_400_123 + offset,
    }
}

fn json_payload(s: &str) -> Payload {
    Payload::from_json(s.to_owned()).expect("vector payload is valid JSON")
}

enum Frame {
    Client(ClientFrame),
    Server(ServerFrame),
}

fn frames() -> Vec<(&'static str, Frame)> {
    use Frame::{Client, Server};
    let since = Some(Position {
        epoch: "k3f9x2aa".into(),
        offset: 41,
    });
    vec![
        (
            "subscribe",
            Client(ClientFrame::Subscribe {
                id: Some(1),
                topic: "metrics.cpu".into(),
                since: None,
            }),
        ),
        (
            "subscribe_since",
            Client(ClientFrame::Subscribe {
                id: Some(1),
                topic: "metrics.cpu".into(),
                since: since.clone(),
            }),
        ),
        (
            "unsubscribe",
            Client(ClientFrame::Unsubscribe {
                id: Some(2),
                topic: "metrics.cpu".into(),
            }),
        ),
        (
            "publish",
            Client(ClientFrame::Publish {
                id: Some(3),
                topic: "alerts".into(),
                event: Some("threshold_exceeded".into()),
                data: json_payload(
                    r#"{"host":"db-1","cpu":97.5,"tags":["prod"],"ok":false,"note":null}"#,
                ),
                msg_id: Some("c7f3a-12".into()),
            }),
        ),
        (
            "publish_no_id_string",
            Client(ClientFrame::Publish {
                id: None,
                topic: "chat.room1".into(),
                event: None,
                data: json_payload(r#""héllo \"world\"""#),
                msg_id: None,
            }),
        ),
        (
            "publish_binary",
            Client(ClientFrame::Publish {
                id: Some(9),
                topic: "blobs".into(),
                event: None,
                data: Payload::binary(vec![0u8, 1, 2, 253, 254, 255]),
                msg_id: None,
            }),
        ),
        (
            "history",
            Client(ClientFrame::History {
                id: Some(4),
                topic: "alerts".into(),
                since: since.clone(),
                limit: Some(100),
            }),
        ),
        ("ping", Client(ClientFrame::Ping { id: Some(5) })),
        (
            "refresh",
            Client(ClientFrame::Refresh {
                token: "eyJhbGciOi.x.y".into(),
            }),
        ),
        (
            "connected",
            Server(ServerFrame::Connected {
                client_id: "c-7f3a".into(),
                heartbeat_ms: 25_000,
            }),
        ),
        (
            "subscribed_recovered",
            Server(ServerFrame::Subscribed {
                id: Some(1),
                topic: "metrics.cpu".into(),
                epoch: "k3f9x2aa".into(),
                offset: 43,
                recovered: true,
                publications: vec![
                    publication(42, json_payload(r#"{"v":1}"#), None),
                    publication(43, json_payload(r#"{"v":2}"#), Some("snapshot_update")),
                ],
            }),
        ),
        (
            "subscribed_not_recovered",
            Server(ServerFrame::Subscribed {
                id: None,
                topic: "metrics.cpu".into(),
                epoch: "p0q1r2s3".into(),
                offset: 0,
                recovered: false,
                publications: vec![],
            }),
        ),
        (
            "unsubscribed",
            Server(ServerFrame::Unsubscribed {
                id: Some(2),
                topic: "metrics.cpu".into(),
            }),
        ),
        (
            "publication",
            Server(ServerFrame::Publication(publication(
                58,
                json_payload(r#"{"usage":12.5,"cores":[10,15]}"#),
                Some("snapshot_update"),
            ))),
        ),
        (
            "publication_binary",
            Server(ServerFrame::Publication(publication(
                59,
                Payload::binary(vec![222u8, 173, 190, 239]),
                None,
            ))),
        ),
        (
            "publication_scalar",
            Server(ServerFrame::Publication(publication(
                60,
                json_payload("-12"),
                None,
            ))),
        ),
        (
            "ack",
            Server(ServerFrame::Ack {
                id: Some(3),
                topic: "alerts".into(),
                epoch: "k3f9x2aa".into(),
                offset: 12,
            }),
        ),
        (
            "history_result",
            Server(ServerFrame::History {
                id: Some(4),
                topic: "metrics.cpu".into(),
                epoch: "k3f9x2aa".into(),
                offset: 42,
                more: false,
                publications: vec![publication(42, json_payload("[1,2]"), None)],
            }),
        ),
        ("pong", Server(ServerFrame::Pong { id: Some(5) })),
        (
            "error",
            Server(ServerFrame::Error {
                id: Some(4),
                code: "history_unavailable".into(),
                message: "publications after offset 41 are no longer kept".into(),
            }),
        ),
        (
            "disconnect",
            Server(ServerFrame::Disconnect {
                code: "slow_consumer".into(),
                reason: "outbound queue overflowed".into(),
                reconnect: true,
            }),
        ),
    ]
}

/// Client frames every gateway must refuse, with the error code it answers.
fn invalid() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("json_garbage", "bad_frame", b"{\"type\":".to_vec()),
        ("json_array", "bad_frame", b"[1,2]".to_vec()),
        (
            "json_unknown_type",
            "unknown_type",
            br#"{"type":"teleport","id":1}"#.to_vec(),
        ),
        (
            "json_missing_topic",
            "bad_frame",
            br#"{"type":"subscribe","id":1}"#.to_vec(),
        ),
        (
            "json_missing_type",
            "bad_frame",
            br#"{"id":1,"topic":"a"}"#.to_vec(),
        ),
        (
            "json_wrong_id_type",
            "bad_frame",
            br#"{"type":"ping","id":"x"}"#.to_vec(),
        ),
        (
            "json_missing_data",
            "bad_frame",
            br#"{"type":"publish","topic":"a"}"#.to_vec(),
        ),
        (
            "msgpack_truncated",
            "bad_frame",
            vec![0x82, 0xa4, b't', b'y'],
        ),
        ("msgpack_not_map", "bad_frame", vec![0x92, 0x01, 0x02]),
        (
            "msgpack_unknown_type",
            "unknown_type",
            [vec![0x81, 0xa4], b"type".to_vec(), vec![0xa1, b'x']].concat(),
        ),
    ]
}

fn encode(f: &Frame, e: Encoding) -> Vec<u8> {
    match f {
        Frame::Client(c) => e.encode_client(c),
        Frame::Server(s) => e.encode_server(s),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn build() -> Value {
    let valid: Vec<Value> = frames()
        .iter()
        .map(|(name, f)| {
            let j = encode(f, Encoding::Json);
            let direction = match f {
                Frame::Client(_) => "client",
                Frame::Server(_) => "server",
            };
            json!({
                "name": name,
                "direction": direction,
                "frame": serde_json::from_slice::<Value>(&j).expect("encoder writes JSON"),
                "json": String::from_utf8(j).expect("utf-8"),
                "msgpack_hex": hex(&encode(f, Encoding::Msgpack)),
            })
        })
        .collect();
    let invalid: Vec<Value> = invalid()
        .iter()
        .map(|(name, code, bytes)| {
            let enc = if name.starts_with("json") {
                "json"
            } else {
                "msgpack"
            };
            json!({"name": name, "encoding": enc, "hex": hex(bytes), "error": code})
        })
        .collect();
    json!({
        "protocol": "livegate.v1",
        "about": "Shared codec vectors. `json` is the exact JSON encoding of `frame`, `msgpack_hex` its exact MessagePack encoding; `invalid` are client frames a gateway refuses with `error`. Regenerate with LIVEGATE_BLESS=1 cargo test -p livegate-core --test vectors.",
        "valid": valid,
        "invalid": invalid,
    })
}

#[test]
fn codecs_match_the_shared_vectors() {
    let built = build();
    if std::env::var_os("LIVEGATE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&built).expect("serialize") + "\n";
        std::fs::write(path(), text).expect("write vectors");
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(path()).expect("read tests/vectors/frames.json"),
    )
    .expect("vectors file is JSON");
    assert_eq!(
        stored, built,
        "encoders disagree with tests/vectors/frames.json"
    );

    // Decoding the stored bytes gives back the typed frame, in both encodings.
    for ((name, frame), v) in frames()
        .iter()
        .zip(stored["valid"].as_array().expect("valid"))
    {
        assert_eq!(v["name"], *name);
        let json_bytes = v["json"].as_str().expect("json").as_bytes().to_vec();
        let mp_bytes = unhex(v["msgpack_hex"].as_str().expect("hex"));
        for (enc, bytes) in [
            (Encoding::Json, &json_bytes),
            (Encoding::Msgpack, &mp_bytes),
        ] {
            match frame {
                Frame::Client(c) => {
                    let decoded = enc
                        .decode_client(bytes)
                        .unwrap_or_else(|e| panic!("{name} {enc:?}: {e}"));
                    assert_eq!(&decoded, c, "{name} {enc:?}");
                }
                Frame::Server(s) => {
                    let decoded = enc
                        .decode_server(bytes)
                        .unwrap_or_else(|e| panic!("{name} {enc:?}: {e}"));
                    assert_eq!(&decoded, s, "{name} {enc:?}");
                }
            }
        }
    }
    for v in stored["invalid"].as_array().expect("invalid") {
        let enc = if v["encoding"] == "json" {
            Encoding::Json
        } else {
            Encoding::Msgpack
        };
        let err = enc
            .decode_client(&unhex(v["hex"].as_str().expect("hex")))
            .expect_err(v["name"].as_str().unwrap_or("?"));
        assert_eq!(err.error.code().as_str(), v["error"], "{}", v["name"]);
    }
}

#[test]
fn json_payload_bytes_are_spliced_verbatim() {
    // Key order, spacing and number spelling of the payload survive.
    let data = json_payload(r#"{"z": 1.50, "a":[ 1e3 ]}"#);
    let frame = ServerFrame::Publication(publication(1, data, None));
    let bytes = Encoding::Json.encode_server(&frame);
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(
        text.contains(r#""data":{"z": 1.50, "a":[ 1e3 ]}"#),
        "{text}"
    );
}

#[test]
fn request_id_survives_a_bad_frame() {
    let err = Encoding::Json
        .decode_client(br#"{"type":"subscribe","id":7}"#)
        .expect_err("no topic");
    assert_eq!(err.id, Some(7));
    let err = Encoding::Json
        .decode_client(br#"{"type":"subscribe","id":8,"topic":5}"#)
        .expect_err("topic of the wrong type");
    assert_eq!(err.id, Some(8));
}

/// Random and mutated bytes never panic either decoder (a cheap, always-on
/// companion to the cargo-fuzz targets).
#[test]
fn decoders_survive_garbage() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let seeds: Vec<Vec<u8>> = frames()
        .iter()
        .flat_map(|(_, f)| [encode(f, Encoding::Json), encode(f, Encoding::Msgpack)])
        .collect();
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        let flips = 1 + (next() % 4) as usize;
        for _ in 0..flips {
            if bytes.is_empty() {
                break;
            }
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = next() as u8,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, next() as u8),
            }
        }
        for enc in Encoding::ALL {
            let _ = enc.decode_client(&bytes);
            let _ = enc.decode_server(&bytes);
        }
    }
}

#[test]
fn msgpack_payload_bytes_are_kept_as_sent() {
    // A publish whose data is [1, 2] written as array16 (not the shortest form).
    let mut frame = vec![0x83];
    for (k, v) in [("type", &b"\xa7publish"[..]), ("topic", &b"\xa1t"[..])] {
        frame.push(0xa0 | k.len() as u8);
        frame.extend_from_slice(k.as_bytes());
        frame.extend_from_slice(v);
    }
    frame.extend_from_slice(b"\xa4data");
    frame.extend_from_slice(&[0xdc, 0x00, 0x02, 0x01, 0x02]);
    let Ok(ClientFrame::Publish { data, .. }) = Encoding::Msgpack.decode_client(&frame) else {
        panic!("decodes");
    };
    assert_eq!(&data.as_bytes()[..], &[0xdc, 0x00, 0x02, 0x01, 0x02]);
    assert_eq!(data.to_json_value(), json!([1, 2]));
}
