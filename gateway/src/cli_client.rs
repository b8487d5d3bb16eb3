//! `livegate sub` and `livegate pub`: the native client on the command line,
//! like `nats sub` / `nats pub`. One JSON object per line on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use livegate_client::ClientBuilder;
use livegate_core::client::{Event, State, TransportKind};
use livegate_core::time::format_rfc3339_millis;
use livegate_core::{Encoding, Payload};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TransportArg {
    /// WebTransport, then WebSocket, SSE, long-poll.
    Auto,
    /// WebSocket only.
    Ws,
    /// Server-Sent Events only.
    Sse,
    /// Long-poll only.
    Poll,
    /// WebTransport only.
    Wt,
    /// `pub` only: publish through the HTTP API (needs the API key if one is set).
    Http,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EncodingArg {
    /// JSON frames.
    Json,
    /// MessagePack frames.
    Msgpack,
}

/// Connection options shared by `sub` and `pub`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The gateway's URL: http://HOST:PORT, or https://HOST[:PORT] behind a TLS proxy.
    #[arg(long, env = "LIVEGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Transport, or `auto` for the fallback order.
    #[arg(long, value_enum, default_value = "auto")]
    transport: TransportArg,
    /// Frame encoding on WebSocket.
    #[arg(long, value_enum, default_value = "json")]
    encoding: EncodingArg,
    /// Token sent as `Authorization: Bearer`.
    #[arg(long, env = "LIVEGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// API key, for publishes that go over HTTP (SSE, long-poll).
    #[arg(long, env = "LIVEGATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Shortest reconnect delay in milliseconds.
    #[arg(long, default_value_t = 500)]
    backoff_min_ms: u64,
    /// Longest reconnect delay in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    backoff_max_ms: u64,
    /// Accept any WebTransport certificate (development only; by default it
    /// must match the hash the gateway serves at /wt/cert-hash).
    #[arg(long)]
    insecure: bool,
    /// Pin this WebTransport certificate SHA-256 (hex) instead of the one
    /// the gateway serves.
    #[arg(long)]
    cert_hash: Option<String>,
    /// For an https:// URL: trust the CAs of this PEM file too, besides the system's roots.
    #[arg(long, env = "LIVEGATE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// For an https:// URL: accept exactly the certificate with this SHA-256 (hex), whoever issued it.
    #[arg(long)]
    pin_sha256: Option<String>,
}

impl ConnectArgs {
    fn builder(&self) -> anyhow::Result<ClientBuilder> {
        let transports = match self.transport {
            TransportArg::Auto => vec![
                TransportKind::WebTransport,
                TransportKind::WebSocket,
                TransportKind::Sse,
                TransportKind::LongPoll,
            ],
            TransportArg::Ws => vec![TransportKind::WebSocket],
            TransportArg::Sse => vec![TransportKind::Sse],
            TransportArg::Poll => vec![TransportKind::LongPoll],
            TransportArg::Wt => vec![TransportKind::WebTransport],
            // A one-way transport with no topic never opens a stream: publishes go over HTTP.
            TransportArg::Http => vec![TransportKind::Sse],
        };
        if self.backoff_min_ms == 0 || self.backoff_max_ms < self.backoff_min_ms {
            bail!("--backoff-min-ms must be at least 1 and at most --backoff-max-ms");
        }
        let mut b = ClientBuilder::new(&self.url)
            .transports(transports)
            .encoding(match self.encoding {
                EncodingArg::Json => Encoding::Json,
                EncodingArg::Msgpack => Encoding::Msgpack,
            })
            .backoff(
                Duration::from_millis(self.backoff_min_ms),
                Duration::from_millis(self.backoff_max_ms),
            );
        if let Some(t) = &self.token {
            b = b.token(t);
        }
        if let Some(k) = &self.api_key {
            b = b.api_key(k);
        }
        if let Some(h) = &self.cert_hash {
            b = b.webtransport_cert_hash(h);
        }
        if let Some(path) = &self.ca_file {
            b = b.tls_ca_file(path);
        }
        if let Some(pin) = &self.pin_sha256 {
            b = b.tls_pin_sha256(pin)?;
        }
        Ok(b.webtransport_insecure(self.insecure))
    }
}

/// `livegate sub`.
#[derive(Args, Debug)]
pub struct SubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topics to subscribe to.
    #[arg(required = true)]
    topics: Vec<String>,
}

/// `livegate pub`. `--transport http` (the HTTP API, as backends publish)
/// unless another is given; over `ws` the topic's namespace must allow
/// client publishes.
#[derive(Args, Debug)]
pub struct PubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Event name for the publications.
    #[arg(long)]
    event: Option<String>,
    /// Give up when the gateway has not acknowledged within this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// The topic.
    topic: String,
    /// The payload: JSON, or any other text (published as a JSON string).
    /// Without it, every line of stdin is one publication.
    data: Option<String>,
}

fn print(v: &Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn event_json(e: &Event) -> Option<Value> {
    Some(match e {
        Event::State { from, to, reason } => json!({
            "type": "state", "from": from.as_str(), "to": to.as_str(),
            "reason": reason.code(), "message": reason.to_string(),
        }),
        Event::Publication(p) => {
            let mut v = json!({
                "type": "publication", "topic": p.topic, "epoch": p.epoch, "offset": p.offset,
                "data": p.data.to_json_value(), "time": format_rfc3339_millis(p.time_ms),
            });
            if let Some(ev) = &p.event {
                v["event"] = json!(ev);
            }
            v
        }
        Event::Subscribed { topic, position } => json!({
            "type": "subscribed", "topic": topic, "epoch": position.epoch, "offset": position.offset,
        }),
        Event::Recovered {
            topic,
            recovered,
            position,
        } => json!({
            "type": "recovered", "topic": topic, "recovered": recovered,
            "epoch": position.epoch, "offset": position.offset,
        }),
        Event::SubscribeFailed {
            topic,
            code,
            message,
        } => json!({
            "type": "subscribe_failed", "topic": topic, "code": code, "message": message,
        }),
        Event::Error { code, message } => {
            json!({"type": "error", "code": code, "message": message})
        }
        _ => return None,
    })
}

pub async fn sub(args: SubArgs) -> anyhow::Result<()> {
    if matches!(args.connect.transport, TransportArg::Http) {
        bail!("--transport http only publishes; subscribe with auto, ws, sse or poll");
    }
    let (client, mut events) = args
        .connect
        .builder()?
        .topics(args.topics.iter().cloned())
        .connect_with_events()?;
    let mut interrupted = std::pin::pin!(crate::shutdown_signal());
    loop {
        tokio::select! {
            e = events.next() => {
                let Some(e) = e else { break };
                if let Some(v) = event_json(&e) {
                    if print(&v).is_err() {
                        // stdout closed (e.g. `| head`): stop quietly.
                        client.close().await;
                        return Ok(());
                    }
                }
                if let Event::State { to: State::Closed, reason, .. } = &e {
                    bail!("the gateway closed the connection for good: {reason}");
                }
            }
            _ = &mut interrupted => {
                client.close().await;
                return Ok(());
            }
        }
    }
    Ok(())
}

fn payload(text: &str) -> Payload {
    Payload::from_json(text.trim().to_owned())
        .unwrap_or_else(|_| Payload::from_json_value(&Value::String(text.to_owned())))
}

pub async fn publish(mut args: PubArgs) -> anyhow::Result<()> {
    if matches!(args.connect.transport, TransportArg::Auto) {
        args.connect.transport = TransportArg::Http;
    }
    let client = args.connect.builder()?.connect()?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let one = |data: Payload| {
        let client = client.clone();
        let (topic, event) = (args.topic.clone(), args.event.clone());
        async move {
            match tokio::time::timeout(timeout, client.publish_event(&topic, event, data)).await {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!(
                    "no acknowledgement within {}s: is the gateway at the URL up? (--timeout-secs to wait longer){}",
                    timeout.as_secs(),
                    client
                        .last_error()
                        .map(|(_, why)| format!("; last error: {why}"))
                        .unwrap_or_default()
                )),
            }
        }
    };
    let report = |ack: livegate_client::Ack| {
        print(&json!({
            "topic": ack.topic, "epoch": ack.position.epoch,
            "offset": ack.position.offset, "msg_id": ack.msg_id,
        }))
    };
    if let Some(data) = &args.data {
        let ack = one(payload(data)).await?;
        report(ack)?;
    } else {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut pending = FuturesOrdered::new();
        loop {
            tokio::select! {
                line = lines.next_line(), if pending.len() < 256 => {
                    match line.context("reading stdin")? {
                        Some(l) if l.trim().is_empty() => {}
                        Some(l) => pending.push_back(one(payload(&l))),
                        None => break,
                    }
                }
                Some(r) = pending.next(), if !pending.is_empty() => report(r?)?,
            }
        }
        while let Some(r) = pending.next().await {
            report(r?)?;
        }
    }
    client.close().await;
    Ok(())
}
