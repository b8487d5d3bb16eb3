//! Runs the language-neutral client scenarios of `tests/conformance/` against
//! the native Rust client, through the fault proxy, on the real gateway.
//!
//! `LIVEGATE_CONFORMANCE=name` runs only the scenarios whose name contains it.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use livegate_client::{Ack, Client, ClientBuilder, ClientError};
use livegate_core::client::{Event, Reason, State, TransportKind};
use livegate_core::{Encoding, Payload};
use serde_json::{json, Value};
use support::{FaultProxy, Gateway};
use tokio::task::JoinHandle;
use tokio::time::Instant;

type Outcome = Result<(), String>;

#[derive(Default)]
struct Recorder {
    /// (state, reason code, transport when opened)
    states: Vec<(State, String, Option<TransportKind>)>,
    received: HashMap<String, Vec<u64>>,
    subscribed: HashMap<String, bool>,
    recovered: Vec<(String, bool)>,
}

struct Run {
    gateway: Gateway,
    gateway_args: Vec<String>,
    proxy: FaultProxy,
    client: Client,
    recorder: Arc<Mutex<Recorder>>,
    published: HashMap<String, u64>,
    background: Vec<JoinHandle<Outcome>>,
    acks: Vec<JoinHandle<Result<Ack, ClientError>>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn transport(name: &str) -> TransportKind {
    TransportKind::parse(name)
        .unwrap_or_else(|| panic!("unknown transport {name} in scenarios.json"))
}

/// The strings of a JSON array (none when it is absent).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn ms(v: &Value, key: &str, default: u64) -> Duration {
    Duration::from_millis(v[key].as_u64().unwrap_or(default))
}

async fn publish_http(
    url: String,
    topic: String,
    from: u64,
    count: u64,
    pad: usize,
    interval: Duration,
) -> Outcome {
    let endpoint = livegate_client::http::Endpoint::parse(&url).map_err(|e| e.to_string())?;
    let pad = "x".repeat(pad);
    for n in from..from + count {
        let body = json!({"n": n, "pad": pad}).to_string();
        let req = hyper::Request::post(endpoint.path(&format!("/api/publish/{topic}")))
            .header("host", endpoint.authority())
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = livegate_client::http::send(&endpoint, req)
            .await
            .map_err(|e| e.to_string())?;
        if res.status() != 200 {
            return Err(format!("publish {n} answered {}", res.status()));
        }
        if !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
    }
    Ok(())
}

impl Run {
    async fn start(scenario: &Value, transports: Option<&Value>) -> Self {
        let dir = TempDir(std::env::temp_dir().join(format!(
            "livegate-conformance-{}-{}",
            std::process::id(),
            livegate::hub::random_token(6)
        )));
        std::fs::create_dir_all(&dir.0).expect("temp dir");
        let mut gateway_args = strings(&scenario["gateway"]["args"]);
        if let Some(cfg) = scenario["gateway"]["config"].as_str() {
            let path = dir.0.join("livegate.toml");
            std::fs::write(&path, cfg).expect("write config");
            gateway_args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        let gateway = Gateway::start(&gateway_args);
        let proxy = FaultProxy::start(&gateway.addr);
        let c = &scenario["client"];
        let transports: Vec<TransportKind> = transports
            .or(c.get("transports"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(transport).collect())
            .unwrap_or_else(|| {
                vec![
                    TransportKind::WebSocket,
                    TransportKind::Sse,
                    TransportKind::LongPoll,
                ]
            });
        let topics = strings(&c["topics"]);
        let (backoff_min, backoff_max) = (
            ms(c, "backoff_min_ms", 500),
            ms(c, "backoff_max_ms", 20_000),
        );
        let (margin, probe) = (
            ms(c, "heartbeat_margin_ms", 10_000),
            ms(c, "upgrade_probe_ms", 60_000),
        );
        let connect_timeout = ms(c, "connect_timeout_ms", 10_000);
        let (client, mut events) = ClientBuilder::new(format!("http://{}", proxy.addr))
            .transports(transports)
            .encoding(Encoding::Msgpack)
            .backoff(backoff_min, backoff_max)
            .topics(topics)
            .configure(|cfg| {
                cfg.heartbeat_margin_ms = margin.as_millis() as u64;
                cfg.upgrade_probe_ms = probe.as_millis() as u64;
                cfg.connect_timeout_ms = connect_timeout.as_millis() as u64;
            })
            .connect_with_events()
            .expect("client starts");
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let rec = recorder.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                let mut r = rec.lock().expect("recorder");
                match e {
                    Event::State { to, reason, .. } => {
                        let t = match &reason {
                            Reason::Opened(t) => Some(*t),
                            _ => None,
                        };
                        r.states.push((to, reason.code().to_owned(), t));
                    }
                    Event::Publication(p) => {
                        let n = p.data.to_json_value()["n"].as_u64().unwrap_or(0);
                        r.received.entry(p.topic).or_default().push(n);
                    }
                    Event::Subscribed { topic, .. } => {
                        r.subscribed.insert(topic, true);
                    }
                    Event::Recovered {
                        topic, recovered, ..
                    } => r.recovered.push((topic, recovered)),
                    _ => {}
                }
            }
        });
        Self {
            gateway,
            gateway_args,
            proxy,
            client,
            recorder,
            published: HashMap::new(),
            background: Vec::new(),
            acks: Vec::new(),
            _dir: dir,
        }
    }

    async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        mut ok: impl FnMut(&Recorder) -> bool,
    ) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            if ok(&self.recorder.lock().expect("recorder")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let r = self.recorder.lock().expect("recorder");
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; states: {:?}",
                    r.states.iter().rev().take(6).collect::<Vec<_>>()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn step(&mut self, s: &Value) -> Outcome {
        let op = s["op"].as_str().ok_or("step without op")?;
        let timeout = ms(s, "timeout_ms", 10_000);
        let topic = s["topic"].as_str().unwrap_or_default().to_owned();
        match op {
            "wait_state" => {
                let want = s["state"]
                    .as_str()
                    .ok_or("wait_state needs state")?
                    .to_owned();
                let tr = s["transport"].as_str().map(transport);
                let reason = s["reason"].as_str().map(str::to_owned);
                self.wait(timeout, &format!("state {want} {tr:?} {reason:?}"), |r| {
                    // The latest change must match (a state already reached counts).
                    let last = r.states.last();
                    let matches = |(st, code, t): &(State, String, Option<TransportKind>)| {
                        st.as_str() == want
                            && tr.is_none_or(|tr| *t == Some(tr))
                            && reason.as_ref().is_none_or(|rs| rs == code)
                    };
                    last.is_some_and(matches)
                })
                .await
            }
            "wait_subscribed" => {
                self.wait(timeout, &format!("subscribed to {topic}"), |r| {
                    r.subscribed.contains_key(&topic)
                })
                .await
            }
            "publish" => {
                let count = s["count"].as_u64().ok_or("publish needs count")?;
                let from = *self.published.entry(topic.clone()).or_insert(0) + 1;
                *self.published.entry(topic.clone()).or_default() += count;
                let pad = s["pad_bytes"].as_u64().unwrap_or(0) as usize;
                let fut = publish_http(
                    self.gateway.url(),
                    topic,
                    from,
                    count,
                    pad,
                    ms(s, "interval_ms", 0),
                );
                if s["background"].as_bool().unwrap_or(false) {
                    self.background.push(tokio::spawn(fut));
                    Ok(())
                } else {
                    fut.await
                }
            }
            "wait_publisher" => {
                for h in self.background.drain(..) {
                    h.await.map_err(|e| e.to_string())??;
                }
                Ok(())
            }
            "expect_received" => {
                let count = s["count"].as_u64().ok_or("expect_received needs count")? as usize;
                self.wait(timeout, &format!("{count} publications on {topic}"), |r| {
                    r.received.get(&topic).map_or(0, Vec::len) >= count
                })
                .await?;
                // Anything doubled would show up right behind.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let r = self.recorder.lock().expect("recorder");
                let got = r.received.get(&topic).cloned().unwrap_or_default();
                let want: Vec<u64> = (1..=count as u64).collect();
                if got != want {
                    let first_bad = got.iter().zip(&want).position(|(a, b)| a != b);
                    return Err(format!(
                        "received {} publications on {topic}, expected exactly 1..={count} in order; first difference at index {first_bad:?}",
                        got.len()
                    ));
                }
                Ok(())
            }
            "expect_recovered" => {
                let want = s["recovered"]
                    .as_bool()
                    .ok_or("expect_recovered needs recovered")?;
                self.wait(timeout, &format!("recovered={want} on {topic}"), |r| {
                    r.recovered.iter().any(|(t, v)| *t == topic && *v == want)
                })
                .await
            }
            "expect_reconnects" => {
                let at_least = s["at_least"].as_u64().unwrap_or(1) as usize;
                let n = self
                    .recorder
                    .lock()
                    .expect("recorder")
                    .states
                    .iter()
                    .filter(|(st, ..)| *st == State::Reconnecting)
                    .count();
                if n < at_least {
                    return Err(format!("{n} reconnects, expected at least {at_least}"));
                }
                Ok(())
            }
            "fault" => {
                let cmd = s["command"].as_str().ok_or("fault needs command")?;
                let answer = tokio::task::block_in_place(|| self.proxy.command(cmd));
                if answer != "ok" {
                    return Err(format!("proxy answered {answer:?} to {cmd:?}"));
                }
                Ok(())
            }
            "restart_gateway" => {
                let status = tokio::task::block_in_place(|| self.gateway.terminate());
                if !status.success() {
                    return Err(format!("gateway exited with {status}"));
                }
                self.gateway = Gateway::start(&self.gateway_args);
                let cmd = format!("upstream {}", self.gateway.addr);
                let answer = tokio::task::block_in_place(|| self.proxy.command(&cmd));
                if answer != "ok" {
                    return Err(format!("proxy answered {answer:?} to {cmd:?}"));
                }
                Ok(())
            }
            "client_publish" => {
                let count = s["count"].as_u64().ok_or("client_publish needs count")?;
                let pad = "x".repeat(s["pad_bytes"].as_u64().unwrap_or(0) as usize);
                for i in 1..=count {
                    let data = Payload::from_json_value(&json!({"n": i, "pad": pad}));
                    // Queued now, in call order; the ack is awaited later.
                    self.acks
                        .push(tokio::spawn(self.client.publish(&topic, data)));
                }
                Ok(())
            }
            "expect_acks" => {
                let count = s["count"].as_u64().unwrap_or(0) as usize;
                let mut offsets = Vec::new();
                for h in self.acks.drain(..) {
                    let ack = tokio::time::timeout(timeout, h)
                        .await
                        .map_err(|_| "an ack did not come in time".to_owned())?
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("publish failed: {e}"))?;
                    offsets.push(ack.position.offset);
                }
                offsets.sort_unstable();
                offsets.dedup();
                if offsets.len() != count {
                    return Err(format!(
                        "{} distinct acked offsets, expected {count}",
                        offsets.len()
                    ));
                }
                Ok(())
            }
            "expect_history" => {
                let count = s["count"].as_u64().unwrap_or(0);
                let (status, body) = self.gateway.request(
                    "GET",
                    &format!("/api/topics/{topic}/history?limit=1000"),
                    "",
                );
                let v: Value =
                    serde_json::from_str(&body).map_err(|e| format!("history: {e}: {body}"))?;
                let n = v["publications"].as_array().map_or(0, Vec::len) as u64;
                if status != 200 || n != count || v["offset"].as_u64() != Some(count) {
                    return Err(format!(
                        "history of {topic} holds {n} (latest offset {}), expected exactly {count}",
                        v["offset"]
                    ));
                }
                Ok(())
            }
            "expect_gateway_stat" => {
                let stat = s["stat"].as_str().ok_or("expect_gateway_stat needs stat")?;
                let at_least = s["at_least"].as_u64().unwrap_or(1);
                let deadline = Instant::now() + timeout;
                loop {
                    let (_, body) = self.gateway.request("GET", "/api/stats", "");
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    if v[stat].as_u64().unwrap_or(0) >= at_least {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "gateway stat {stat} stayed below {at_least}: {body}"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            "expect_no_reconnect" => {
                let before = self.proxy_accepted();
                tokio::time::sleep(ms(s, "ms", 1000)).await;
                let after = self.proxy_accepted();
                if self.client.state() != State::Closed || after != before {
                    return Err(format!(
                        "client state {:?}, proxy connections {before} -> {after}",
                        self.client.state()
                    ));
                }
                Ok(())
            }
            "sleep" => {
                tokio::time::sleep(ms(s, "ms", 0)).await;
                Ok(())
            }
            other => Err(format!("unknown op {other}")),
        }
    }

    fn proxy_accepted(&mut self) -> u64 {
        let line = tokio::task::block_in_place(|| self.proxy.command("stats"));
        serde_json::from_str::<Value>(&line).map_or(0, |v| v["accepted"].as_u64().unwrap_or(0))
    }
}

async fn run_one(scenario: &Value, transports: Option<&Value>) -> Outcome {
    let mut run = Run::start(scenario, transports).await;
    for (i, step) in scenario["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .enumerate()
    {
        run.step(step).await.map_err(|e| {
            format!(
                "step {} ({}): {e}",
                i + 1,
                step["op"].as_str().unwrap_or("?")
            )
        })?;
    }
    run.client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_scenarios() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/conformance/scenarios.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read scenarios.json"))
            .expect("scenarios.json is JSON");
    let only = std::env::var("LIVEGATE_CONFORMANCE").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for scenario in doc["scenarios"].as_array().expect("scenarios") {
        let name = scenario["name"].as_str().expect("name");
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let variants: Vec<Option<&Value>> = match scenario["matrix"].as_array() {
            Some(m) => m.iter().map(Some).collect(),
            None => vec![None],
        };
        for v in variants {
            let label = match v {
                Some(t) => format!("{name}{t}"),
                None => name.to_owned(),
            };
            let started = std::time::Instant::now();
            let outcome = tokio::time::timeout(Duration::from_secs(120), run_one(scenario, v))
                .await
                .unwrap_or_else(|_| Err("scenario took longer than 120 s".into()));
            ran += 1;
            match outcome {
                Ok(()) => eprintln!(
                    "conformance: ok   {label} ({:.1}s)",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => {
                    eprintln!("conformance: FAIL {label}: {e}");
                    failures.push(format!("{label}: {e}"));
                }
            }
        }
    }
    assert!(ran > 0, "no scenario ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} scenario runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
