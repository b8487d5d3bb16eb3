//! WebTransport `/wt` end to end, bad input first: the real `livegate`
//! binary and a `wtransport` client speaking the framing of
//! `docs/protocol.md` §4.5 (one bidirectional control stream, a
//! unidirectional stream per topic, 4-byte big-endian length prefixes).

mod support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use livegate::deflate::{deflate_once, inflate_all, DeflateSettings};
use livegate_core::framing::{self, FlaggedItem, FrameReader};
use livegate_core::protocol::{ClientFrame, Position, ServerFrame};
use livegate_core::Encoding;
use support::Gateway;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::error::{ConnectingError, ConnectionError};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(10);
/// Largest frame this test client accepts.
const MAX_FRAME: usize = 16 << 20;

/// A blocking HTTP request, off the runtime's worker threads.
async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (addr, method, path, body) = (
        addr.to_owned(),
        method.to_owned(),
        path.to_owned(),
        body.to_owned(),
    );
    tokio::task::spawn_blocking(move || support::http_request(&addr, &method, &path, &body))
        .await
        .expect("http task")
}

async fn publish(gw: &Gateway, topic: &str, n: u64) {
    let (status, body) = http(
        &gw.addr,
        "POST",
        &format!("/api/publish/{topic}"),
        &format!("{{\"n\":{n}}}"),
    )
    .await;
    assert_eq!(status, 200, "publish on {topic}: {body}");
}

fn parse_hash(hex: &str) -> [u8; 32] {
    assert_eq!(hex.len(), 64, "sha-256 hex {hex:?}");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    out
}

/// `GET /wt/cert-hash` (retried briefly: WebTransport may start a moment
/// after HTTP); returns the URL and a client endpoint trusting the hash.
async fn client(gw: &Gateway) -> (String, Endpoint<Client>) {
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (status, body) = http(&gw.addr, "GET", "/wt/cert-hash", "").await;
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "GET /wt/cert-hash answered {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let info: serde_json::Value = serde_json::from_str(&body).expect("cert-hash JSON");
    assert_eq!(info["algorithm"], "sha-256", "{info}");
    let url = info["url"].as_str().expect("url").to_owned();
    let hash = parse_hash(info["hash"].as_str().expect("hash"));
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(hash)])
        .build();
    (url, Endpoint::client(config).expect("client endpoint"))
}

/// Length-prefixed frames read from one stream.
struct Frames {
    stream: RecvStream,
    reader: FrameReader,
    ready: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    /// On a compressing session: read the flag and inflate.
    compressed: bool,
    /// Whether each frame read so far came compressed.
    flags: Vec<bool>,
}

impl Frames {
    fn new(stream: RecvStream) -> Self {
        Self {
            stream,
            reader: FrameReader::new(MAX_FRAME),
            ready: VecDeque::new(),
            buf: vec![0; 16 * 1024],
            compressed: false,
            flags: Vec::new(),
        }
    }

    fn compressed(stream: RecvStream) -> Self {
        Self {
            compressed: true,
            ..Self::new(stream)
        }
    }

    /// The next frame's bytes (heartbeats skipped); `Err` when the stream
    /// ended or broke first.
    async fn next_bytes(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Ok(f);
            }
            match self.stream.read(&mut self.buf).await {
                Ok(Some(n)) => {
                    let items = if self.compressed {
                        self.reader.push_flagged(&self.buf[..n])
                    } else {
                        self.reader
                            .push(&self.buf[..n])
                            .map(|i| i.into_iter().map(FlaggedItem::from).collect())
                    }
                    .map_err(|e| e.to_string())?;
                    for item in items {
                        if let FlaggedItem::Frame { bytes, compressed } = item {
                            self.flags.push(compressed);
                            let f = if compressed {
                                inflate_all(&bytes, MAX_FRAME).map_err(|e| e.to_string())?
                            } else {
                                bytes
                            };
                            self.ready.push_back(f);
                        }
                    }
                }
                Ok(None) => return Err("stream finished".into()),
                Err(e) => return Err(format!("stream error: {e}")),
            }
        }
    }

    /// The next frame, within [`WAIT`].
    async fn next(&mut self) -> ServerFrame {
        let bytes = tokio::time::timeout(WAIT, self.next_bytes())
            .await
            .expect("a frame within 10 s")
            .expect("a frame before the stream ended");
        Encoding::Json
            .decode_server(&bytes)
            .unwrap_or_else(|e| panic!("bad frame {:?}: {e}", String::from_utf8_lossy(&bytes)))
    }
}

/// One session: its connection, control stream (both halves).
struct Session {
    conn: Connection,
    send: SendStream,
    control: Frames,
    compressed: bool,
}

impl Session {
    /// Connects with `?encoding=json`, opens the control stream and reads
    /// the `connected` frame.
    async fn open(gw: &Gateway) -> Self {
        Self::open_with(gw, "encoding=json").await
    }

    /// As [`Session::open`] with this query; `compress=deflate` in it makes
    /// every stream's reader read the compressed flag.
    async fn open_with(gw: &Gateway, query: &str) -> Self {
        let compressed = query.contains("compress=deflate");
        let (url, endpoint) = client(gw).await;
        let conn = tokio::time::timeout(WAIT, endpoint.connect(format!("{url}?{query}")))
            .await
            .expect("connect within 10 s")
            .expect("connect");
        let (send, recv) = tokio::time::timeout(WAIT, async {
            conn.open_bi()
                .await
                .expect("open_bi")
                .await
                .expect("bi stream")
        })
        .await
        .expect("control stream within 10 s");
        let control = if compressed {
            Frames::compressed(recv)
        } else {
            Frames::new(recv)
        };
        let mut s = Self {
            conn,
            send,
            control,
            compressed,
        };
        let first = s.control.next().await;
        assert!(
            matches!(first, ServerFrame::Connected { .. }),
            "first frame {first:?}"
        );
        s
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.send.write_all(bytes))
            .await
            .expect("write within 10 s")
            .expect("write");
    }

    async fn send(&mut self, frame: &ClientFrame) {
        let bytes = framing::frame(&Encoding::Json.encode_client(frame));
        self.write_raw(&bytes).await;
    }

    /// Subscribes; returns the topic's stream after checking that its first
    /// frame is `subscribed`.
    async fn subscribe(&mut self, topic: &str) -> Frames {
        self.subscribe_since(topic, None).await.0
    }

    /// Subscribes from `since`; returns the topic's stream and its first
    /// frame, `subscribed`.
    async fn subscribe_since(
        &mut self,
        topic: &str,
        since: Option<Position>,
    ) -> (Frames, ServerFrame) {
        self.send(&ClientFrame::Subscribe {
            id: Some(1),
            topic: topic.to_owned(),
            since,
        })
        .await;
        let stream = tokio::time::timeout(WAIT, self.conn.accept_uni())
            .await
            .expect("a topic stream within 10 s")
            .expect("accept_uni");
        let mut frames = if self.compressed {
            Frames::compressed(stream)
        } else {
            Frames::new(stream)
        };
        let first = frames.next().await;
        match &first {
            ServerFrame::Subscribed { topic: t, .. } => assert_eq!(t, topic),
            other => panic!("expected subscribed on the topic stream, got {other:?}"),
        }
        (frames, first)
    }

    /// A `ping` gets its `pong`.
    async fn ping(&mut self, id: u64) {
        self.send(&ClientFrame::Ping { id: Some(id) }).await;
        match self.control.next().await {
            ServerFrame::Pong { id: got } => assert_eq!(got, Some(id)),
            other => panic!("expected pong, got {other:?}"),
        }
    }

    /// Reads the control stream up to a `disconnect`; returns its code and
    /// `reconnect`.
    async fn disconnect(&mut self) -> (String, bool) {
        loop {
            match self.control.next().await {
                ServerFrame::Disconnect {
                    code, reconnect, ..
                } => return (code, reconnect),
                ServerFrame::Pong { .. } | ServerFrame::Error { .. } => {}
                other => panic!("expected disconnect, got {other:?}"),
            }
        }
    }

    /// Waits for the session's close; returns its application code and reason.
    async fn closed(&self) -> (u64, String) {
        let e = tokio::time::timeout(WAIT, self.conn.closed())
            .await
            .expect("session closed within 10 s");
        match e {
            ConnectionError::ApplicationClosed(c) => (
                c.code().into_inner(),
                String::from_utf8_lossy(c.reason()).into_owned(),
            ),
            other => panic!("expected an application close, got {other:?}"),
        }
    }
}

/// The next publication on a topic stream: its `n`.
async fn publication_n(frames: &mut Frames, topic: &str) -> u64 {
    match frames.next().await {
        ServerFrame::Publication(p) => {
            assert_eq!(p.topic, topic);
            p.data.to_json_value()["n"].as_u64().expect("n")
        }
        other => panic!("expected a publication on {topic}, got {other:?}"),
    }
}

fn max_frame(bytes: usize) -> Vec<String> {
    vec!["--max-frame-bytes".into(), bytes.to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_subscribe_and_receive() {
    let gw = Gateway::start(&[]);
    let mut s = Session::open(&gw).await;
    let mut topic = s.subscribe("t.a").await;
    publish(&gw, "t.a", 1).await;
    publish(&gw, "t.a", 2).await;
    assert_eq!(publication_n(&mut topic, "t.a").await, 1);
    assert_eq!(publication_n(&mut topic, "t.a").await, 2);
    s.ping(9).await;
}

/// A JSON value of about 2 KiB.
fn snapshot(n: u64) -> String {
    let hosts: Vec<String> = (0..24)
        .map(|h| {
            format!(
                "{{\"name\":\"node-{h:02}\",\"cpu\":{},\"status\":\"ok\"}}",
                (h * 7 + n) % 100
            )
        })
        .collect();
    format!("{{\"n\":{n},\"hosts\":[{}]}}", hosts.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_sessions_get_the_same_frames_flagged_and_may_send_compressed() {
    let gw = Gateway::start(&[]);
    let mut plain = Session::open(&gw).await;
    let mut zipped = Session::open_with(&gw, "encoding=json&compress=deflate").await;
    let mut a = plain.subscribe("t.z").await;
    let mut b = zipped.subscribe("t.z").await;
    for (i, body) in [snapshot(1), "{\"n\":2}".to_owned()].iter().enumerate() {
        let (status, answer) = http(&gw.addr, "POST", "/api/publish/t.z", body).await;
        assert_eq!(status, 200, "publish {i}: {answer}");
    }
    for _ in 0..2 {
        let x = tokio::time::timeout(WAIT, a.next_bytes()).await.expect("a");
        let y = tokio::time::timeout(WAIT, b.next_bytes()).await.expect("b");
        assert_eq!(x, y);
    }
    // `subscribed` is small; the 2 KiB publication is compressed, the small one not.
    assert_eq!(b.flags, vec![false, true, false]);
    assert!(a.flags.iter().all(|f| !f));
    // A compressed frame from the client is inflated (trailing whitespace
    // is valid JSON and makes it worth compressing).
    let ping = format!("{{\"type\":\"ping\",\"id\":4}}{}", " ".repeat(2000));
    let z = deflate_once(ping.as_bytes(), DeflateSettings::default()).expect("deflates");
    zipped.write_raw(&framing::frame_compressed(&z)).await;
    match zipped.control.next().await {
        ServerFrame::Pong { id } => assert_eq!(id, Some(4)),
        other => panic!("expected pong, got {other:?}"),
    }
    // Corrupt compressed data closes with 1007; the other session lives on.
    zipped
        .write_raw(&framing::frame_compressed(b"\xff\xfe\xfd\xfc"))
        .await;
    assert_eq!(
        zipped.disconnect().await,
        ("invalid_payload".to_owned(), false)
    );
    assert_eq!(zipped.closed().await, (1007, "invalid_payload".to_owned()));
    plain.ping(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bomb_closes_with_1009() {
    let gw = Gateway::start(&max_frame(4096));
    let mut s = Session::open_with(&gw, "encoding=json&compress=deflate").await;
    let zeros = vec![b' '; 1 << 20];
    let z = deflate_once(&zeros, DeflateSettings::default()).expect("deflates");
    s.write_raw(&framing::frame_compressed(&z)).await;
    assert_eq!(s.disconnect().await, ("frame_too_large".to_owned(), false));
    assert_eq!(s.closed().await, (1009, "frame_too_large".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefix_over_the_limit_closes_with_1009() {
    let gw = Gateway::start(&max_frame(1024));
    let mut s = Session::open(&gw).await;
    // Announces 1 MiB; the body never follows.
    s.write_raw(&(1u32 << 20).to_be_bytes()).await;
    assert_eq!(s.disconnect().await, ("frame_too_large".to_owned(), false));
    assert_eq!(s.closed().await, (1009, "frame_too_large".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frame_within_the_limit_is_bad_frame_and_survived() {
    let gw = Gateway::start(&max_frame(1024));
    let mut s = Session::open(&gw).await;
    // Exactly at the limit is still within it.
    let at_limit = vec![b'x'; 1024];
    for garbage in [
        &b"\xc1\xff not json {{{"[..],
        b"[1,2,3]",
        b"{\"type\":\"subscribe\"}",
        &at_limit,
    ] {
        s.write_raw(&framing::frame(garbage)).await;
        match s.control.next().await {
            ServerFrame::Error { code, .. } => assert_eq!(
                code,
                "bad_frame",
                "answer to {:?}",
                String::from_utf8_lossy(garbage)
            ),
            other => panic!("expected error bad_frame, got {other:?}"),
        }
    }
    // A client heartbeat (an empty frame) is no frame at all.
    s.write_raw(&framing::HEARTBEAT).await;
    s.ping(3).await;
    let mut topic = s.subscribe("t.after").await;
    publish(&gw, "t.after", 1).await;
    assert_eq!(publication_n(&mut topic, "t.after").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_unidirectional_stream_closes_with_4003() {
    let gw = Gateway::start(&[]);
    let mut s = Session::open(&gw).await;
    let mut uni = tokio::time::timeout(WAIT, async {
        s.conn
            .open_uni()
            .await
            .expect("open_uni")
            .await
            .expect("uni stream")
    })
    .await
    .expect("uni stream within 10 s");
    // Best effort: the gateway may already have closed the session.
    let _ = uni.write_all(b"hello").await;
    assert_eq!(
        s.disconnect().await,
        ("stream_not_allowed".to_owned(), false)
    );
    assert_eq!(s.closed().await, (4003, "stream_not_allowed".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_bidirectional_stream_closes_with_4003() {
    let gw = Gateway::start(&[]);
    let mut s = Session::open(&gw).await;
    let (mut send, _recv) = tokio::time::timeout(WAIT, async {
        s.conn
            .open_bi()
            .await
            .expect("open_bi")
            .await
            .expect("bi stream")
    })
    .await
    .expect("second bi stream within 10 s");
    let _ = send.write_all(b"hello").await;
    assert_eq!(
        s.disconnect().await,
        ("stream_not_allowed".to_owned(), false)
    );
    assert_eq!(s.closed().await, (4003, "stream_not_allowed".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_encoding_is_refused() {
    let gw = Gateway::start(&[]);
    let (url, endpoint) = client(&gw).await;
    let refused = tokio::time::timeout(WAIT, endpoint.connect(format!("{url}?encoding=xml")))
        .await
        .expect("an answer within 10 s");
    match refused {
        Err(ConnectingError::SessionRejected) => {}
        Err(other) => panic!("expected the session request to be rejected, got {other}"),
        Ok(_) => panic!("a session with ?encoding=xml was accepted"),
    }
    // The gateway still serves a well-formed request.
    let mut s = Session::open(&gw).await;
    s.ping(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_flood_breaks_nothing() {
    let gw = Gateway::start(&[]);
    let mut other = Session::open(&gw).await;
    let mut other_topic = other.subscribe("t.flood").await;
    let mut s = Session::open(&gw).await;
    let size = s
        .conn
        .max_datagram_size()
        .expect("the gateway accepts datagrams")
        .min(1024);
    let payload = vec![0xa5u8; size];
    // Bursts of 125 KiB with a 1 ms pause, so that the QUIC driver gets to
    // put them on the wire (quinn drops the oldest queued datagram when its
    // 1 MiB send buffer is full); bounded in count and time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0u32;
    while sent < 20_000 && Instant::now() < deadline {
        for _ in 0..125 {
            s.conn.send_datagram(&payload).expect("send_datagram");
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(sent, 20_000, "datagrams sent within 10 s");
    s.ping(77).await;
    publish(&gw, "t.flood", 1).await;
    assert_eq!(publication_n(&mut other_topic, "t.flood").await, 1);
    let mut topic = s.subscribe("t.flood").await;
    publish(&gw, "t.flood", 2).await;
    assert_eq!(publication_n(&mut topic, "t.flood").await, 2);
    assert_eq!(publication_n(&mut other_topic, "t.flood").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sessions_leave_others_untouched() {
    let gw = Gateway::start(&max_frame(1024));
    let mut good = Session::open(&gw).await;
    let mut topic = good.subscribe("t.other").await;
    publish(&gw, "t.other", 1).await;
    assert_eq!(publication_n(&mut topic, "t.other").await, 1);

    let mut too_large = Session::open(&gw).await;
    too_large.write_raw(&(1u32 << 20).to_be_bytes()).await;
    assert_eq!(too_large.closed().await.0, 1009);

    let stray = Session::open(&gw).await;
    let opened = tokio::time::timeout(WAIT, async {
        let mut uni = stray.conn.open_uni().await.ok()?.await.ok()?;
        uni.write_all(b"x").await.ok()
    })
    .await
    .expect("uni stream within 10 s");
    assert!(opened.is_some(), "could not open the stray stream");
    assert_eq!(stray.closed().await.0, 4003);

    publish(&gw, "t.other", 2).await;
    publish(&gw, "t.other", 3).await;
    assert_eq!(publication_n(&mut topic, "t.other").await, 2);
    assert_eq!(publication_n(&mut topic, "t.other").await, 3);
    good.ping(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_announces_disconnect_and_exits_zero() {
    let gw = Gateway::start(&[]);
    let mut s = Session::open(&gw).await;
    let _topic = s.subscribe("t.bye").await;
    let stopping = tokio::task::spawn_blocking(move || {
        let mut gw = gw;
        let status = gw.terminate();
        (gw, status)
    });
    let announced = s.disconnect().await;
    let (_gw, status) = stopping.await.expect("terminate task");
    assert_eq!(announced, ("shutdown".to_owned(), true));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_on_its_data_dir_resumes_with_recovered_true() {
    let dir = std::env::temp_dir().join(format!("livegate-wt-restart-{}", std::process::id()));
    let args = vec![
        "--data-dir".to_owned(),
        dir.to_str().expect("utf-8 path").to_owned(),
    ];
    let mut gw = Gateway::start(&args);
    let mut s = Session::open(&gw).await;
    let (mut topic, first) = s.subscribe_since("t.kept", None).await;
    let ServerFrame::Subscribed { epoch, .. } = first else {
        unreachable!("subscribe_since checks the frame")
    };
    publish(&gw, "t.kept", 1).await;
    publish(&gw, "t.kept", 2).await;
    assert_eq!(publication_n(&mut topic, "t.kept").await, 1);
    assert_eq!(publication_n(&mut topic, "t.kept").await, 2);
    drop((topic, s));
    let stopped = tokio::task::spawn_blocking(move || gw.terminate())
        .await
        .expect("terminate task");
    assert!(stopped.success(), "exit status {stopped}");

    let gw = Gateway::start(&args);
    publish(&gw, "t.kept", 3).await;
    let mut s = Session::open(&gw).await;
    let since = Position {
        epoch: epoch.clone(),
        offset: 2,
    };
    let (_topic, first) = s.subscribe_since("t.kept", Some(since)).await;
    let ServerFrame::Subscribed {
        epoch: now,
        offset,
        recovered,
        publications,
        ..
    } = first
    else {
        unreachable!("subscribe_since checks the frame")
    };
    assert_eq!((now, offset, recovered), (epoch, 3, true));
    let replayed: Vec<u64> = publications.iter().map(|p| p.offset).collect();
    assert_eq!(replayed, vec![3], "exactly what was missed");
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}
