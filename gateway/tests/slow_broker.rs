//! A second broker in-process: the memory broker behind reads that take
//! time (as a remote or on-disk log's would). The gateway is served
//! in-process on a loopback socket and real WebSocket, SSE and long-poll
//! subscribers join while publications keep coming: each must see every
//! offset after its start exactly once, in order, live or replayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use livegate::broker::{
    BoxFuture, Broker, BrokerError, MemoryBroker, Page, PublishRequest, Published, ReadError,
};
use livegate::config::Config;
use livegate::service::{Identity, Role};
use livegate::App;
use livegate_core::protocol::Position;
use livegate_core::Payload;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Reads (and positions) wait, read the inner log, and wait again: what
/// was published during the first wait is in both the read and the hub's
/// buffer (duplicates to drop), what is published during the second only
/// in the buffer (a gap to fill).
struct SlowReads {
    inner: MemoryBroker,
    delay: Duration,
}

impl Broker for SlowReads {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        self.inner.publish(request)
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        since: Option<&'a Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, ReadError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let page = self.inner.read_at(topic, since, limit, livegate::now_ms());
            tokio::time::sleep(self.delay).await;
            page
        })
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position, BrokerError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let position = self.inner.position_now(topic);
            tokio::time::sleep(self.delay).await;
            Ok(position)
        })
    }

    fn name(&self) -> &'static str {
        "slow-reads"
    }
}

const LAST: u64 = 150;
const LIMIT: Duration = Duration::from_secs(20);

struct Served {
    app: Arc<App>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start() -> Self {
        let mut config = Config::default();
        config.defaults.history_size = 1000;
        let app = App::with_broker(config, |parts, cfg| {
            Arc::new(SlowReads {
                inner: parts.memory(cfg),
                delay: Duration::from_millis(15),
            })
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(livegate::server::serve(app.clone(), listener, async {
            let _ = stopped.await;
        }));
        Self {
            app,
            addr,
            stop: Some(stop),
            server,
        }
    }

    async fn publish(&self, topic: &str, n: u64) -> Published {
        let backend = Identity::anonymous(Role::Backend);
        let permit = self
            .app
            .service
            .check_publish(&backend, topic, None, None)
            .expect("valid publish");
        let data = Payload::from_json(n.to_string()).expect("json");
        self.app
            .service
            .publish(permit, data)
            .await
            .expect("published")
    }

    /// Publishes `from..=LAST`, a few at a time, so subscribers join
    /// between them.
    fn publish_in_background(
        self: &Arc<Self>,
        topic: &'static str,
        from: u64,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            for n in from..=LAST {
                me.publish(topic, n).await;
                if n % 3 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.server).await;
    }
}

/// Whether a subscriber has seen everything up to `LAST`: its last
/// publication, or (when it started without a replay) its start.
fn done(subscribed: &Value, offsets: &[u64]) -> bool {
    let start = match subscribed["recovered"].as_bool() {
        Some(false) => subscribed["offset"].as_u64(),
        _ => None,
    };
    offsets.last().copied().max(start) == Some(LAST)
}

/// A WebSocket subscriber: its `subscribed` frame, then the offsets it
/// received (replayed, then live) until `LAST`.
async fn ws_offsets(addr: SocketAddr, topic: &str, since: Option<Value>) -> (Value, Vec<u64>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws connect");
    let mut frame = json!({"type": "subscribe", "id": 1, "topic": topic});
    if let Some(since) = since {
        frame["since"] = since;
    }
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
    let mut subscribed = Value::Null;
    let mut offsets = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while !done(&subscribed, &offsets) {
            let Some(Ok(Message::Text(text))) = ws.next().await else {
                panic!("the stream ended early");
            };
            let f: Value = serde_json::from_str(&text).expect("json");
            match f["type"].as_str() {
                Some("subscribed") => {
                    offsets.extend(
                        f["publications"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p["offset"].as_u64()),
                    );
                    subscribed = f;
                }
                Some("publication") => offsets.extend(f["offset"].as_u64()),
                _ => {}
            }
        }
    })
    .await
    .expect("every publication within the limit");
    (subscribed, offsets)
}

async fn get(addr: SocketAddr, path: &str) -> hyper::Response<hyper::body::Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    sender.send_request(req).await.expect("response")
}

/// An SSE subscriber: `subscribed`, then publication offsets until `LAST`.
async fn sse_offsets(addr: SocketAddr, query: &str) -> (Value, Vec<u64>) {
    let mut body = get(addr, &format!("/sse?{query}")).await.into_body();
    let mut text = String::new();
    let mut subscribed = Value::Null;
    let mut offsets = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while !done(&subscribed, &offsets) {
            let frame = body.frame().await.expect("stream open").expect("chunk");
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).expect("utf-8"));
            }
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let data = event.lines().find_map(|l| l.strip_prefix("data: "));
                let Some(f) = data.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
                    continue;
                };
                match f["type"].as_str() {
                    Some("subscribed") => subscribed = f,
                    Some("publication") => offsets.extend(f["offset"].as_u64()),
                    _ => {}
                }
            }
        }
    })
    .await
    .expect("every publication within the limit");
    (subscribed, offsets)
}

/// A long-poll subscriber following its cursor: offsets until `LAST`.
async fn poll_offsets(addr: SocketAddr, topic: &str, cursor: &str) -> Vec<u64> {
    let mut cursor = cursor.to_owned();
    let mut offsets = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while offsets.last() != Some(&LAST) {
            let path = format!("/poll?topic={topic}&cursor={cursor}&timeout_ms=2000");
            let body = get(addr, &path)
                .await
                .into_body()
                .collect()
                .await
                .expect("body");
            let answer: Value = serde_json::from_slice(&body.to_bytes()).expect("json");
            for f in answer["frames"].as_array().into_iter().flatten() {
                if f["type"] == "publication" {
                    offsets.extend(f["offset"].as_u64());
                }
            }
            cursor = answer["cursor"].as_str().expect("cursor").to_owned();
        }
    })
    .await
    .expect("every publication within the limit");
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_joining_mid_stream_miss_nothing_and_get_nothing_twice() {
    let served = Arc::new(Served::start().await);
    served.publish("live", 1).await;
    let publisher = served.publish_in_background("live", 2);
    let mut subscribers = Vec::new();
    for i in 0..4u64 {
        let addr = served.addr;
        subscribers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            ws_offsets(addr, "live", None).await
        }));
        subscribers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i + 5)).await;
            sse_offsets(addr, "topic=live").await
        }));
    }
    for s in subscribers {
        let (subscribed, offsets) = s.await.expect("subscriber");
        let start = subscribed["offset"].as_u64().expect("subscribed offset");
        assert_eq!(subscribed["recovered"], false);
        assert_eq!(
            offsets,
            ((start + 1)..=LAST).collect::<Vec<_>>(),
            "from {start}"
        );
    }
    publisher.await.expect("publisher");
    Arc::try_unwrap(served)
        .ok()
        .expect("one owner")
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_subscribers_get_the_gap_then_live_exactly_once() {
    let served = Arc::new(Served::start().await);
    let mut epoch = String::new();
    for n in 1..=20 {
        epoch = served.publish("resume", n).await.position.epoch;
    }
    let publisher = served.publish_in_background("resume", 21);
    let want: Vec<u64> = (11..=LAST).collect();
    let since = json!({"epoch": epoch, "offset": 10});
    let cursor = format!("resume:{epoch}:10");
    let addr = served.addr;
    let ws = tokio::spawn(ws_offsets(addr, "resume", Some(since)));
    let sse = tokio::spawn({
        let query = format!("topic=resume&since={cursor}");
        async move { sse_offsets(addr, &query).await }
    });
    let poll = tokio::spawn({
        let cursor = cursor.clone();
        async move { poll_offsets(addr, "resume", &cursor).await }
    });
    let (subscribed, offsets) = ws.await.expect("ws");
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(offsets, want, "websocket");
    let (subscribed, offsets) = sse.await.expect("sse");
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(offsets, want, "sse");
    assert_eq!(poll.await.expect("poll"), want, "long-poll");
    publisher.await.expect("publisher");
    // A position the log does not hold starts over, announced.
    let (subscribed, offsets) =
        ws_offsets(addr, "resume", Some(json!({"epoch": "other", "offset": 3}))).await;
    assert_eq!(
        (
            subscribed["recovered"].as_bool(),
            subscribed["offset"].as_u64()
        ),
        (Some(false), Some(LAST))
    );
    assert_eq!(offsets, Vec::<u64>::new());
    Arc::try_unwrap(served)
        .ok()
        .expect("one owner")
        .stop()
        .await;
}
