//! `livegate bench`: flags, and where the report goes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use livegate::bench::{self, report, BenchCompression, BenchConfig, PayloadKind};
use livegate_core::client::TransportKind;
use livegate_core::Encoding;

/// Compare protocol variants on the same load.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Target a running gateway instead of starting one per variant (its
    /// CPU and memory are then not measured).
    #[arg(long)]
    url: Option<String>,
    /// Subscribers per variant.
    #[arg(long, short = 'n', default_value_t = 100)]
    subscribers: usize,
    /// Publications per second; 0 publishes as fast as the gateway acknowledges.
    #[arg(long, short = 'r', default_value_t = 0)]
    rate: u64,
    /// Payload size in bytes.
    #[arg(long, short = 's', default_value_t = 256)]
    size: usize,
    /// Seconds of publishing per variant.
    #[arg(long, short = 't', default_value_t = 5.0)]
    duration: f64,
    /// Transports, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "ws,sse,poll,wt")]
    transports: Vec<String>,
    /// Encodings, comma separated (SSE and long-poll are JSON only).
    #[arg(long, value_delimiter = ',', default_value = "json,msgpack")]
    encodings: Vec<String>,
    /// Idle WebSocket connections for the memory-per-connection figure (0 skips it).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Write the report as JSON to this file (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the report as a Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write an SVG chart comparing the variants to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Exit non-zero when any variant lost a publication.
    #[arg(long)]
    fail_on_loss: bool,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
    /// The compression axis, comma separated (off, deflate): WebSocket/JSON
    /// subscribers on a bare socket with and without the permessage-deflate
    /// offer, publishes over HTTP; replaces the transport matrix.
    #[arg(long, value_delimiter = ',')]
    compression: Vec<String>,
    /// Payloads: `padded` (a timestamp and padding) or `snapshot` (a
    /// dashboard's JSON changing a little per message) [default: padded,
    /// snapshot with --compression].
    #[arg(long)]
    payload: Option<String>,
    /// Drive another WebSocket broadcast server instead of the livegate
    /// matrix (repeatable), as JSON: {"name":"nchan","ws":"ws://…","publish":"http://…","pid":1234,"subscribe":"<text sent after connecting>"}.
    #[arg(long)]
    peer: Vec<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let transports = args
        .transports
        .iter()
        .map(|t| {
            TransportKind::parse(t.trim())
                .with_context(|| format!("unknown transport {t:?}: use ws, sse, poll or wt"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let encodings = args
        .encodings
        .iter()
        .map(|e| match e.trim() {
            "json" => Ok(Encoding::Json),
            "msgpack" => Ok(Encoding::Msgpack),
            other => bail!("unknown encoding {other:?}: use json or msgpack"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let compressions = args
        .compression
        .iter()
        .map(|c| match c.trim() {
            "off" => Ok(BenchCompression::Off),
            "deflate" => Ok(BenchCompression::Deflate),
            other => bail!("unknown compression {other:?}: use off or deflate"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let payload = match args.payload.as_deref() {
        None if compressions.is_empty() => PayloadKind::Padded,
        None | Some("snapshot") => PayloadKind::Snapshot,
        Some("padded") => PayloadKind::Padded,
        Some(other) => bail!("unknown payload {other:?}: use padded or snapshot"),
    };
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    let config = BenchConfig {
        url: args.url.clone(),
        binary: std::env::current_exe().context("cannot find the livegate binary")?,
        subscribers: args.subscribers,
        rate: args.rate,
        size: args.size,
        duration: Duration::from_secs_f64(args.duration),
        transports,
        encodings,
        idle: if args.peer.is_empty() && args.compression.is_empty() {
            args.idle
        } else {
            0
        },
        progress: !args.quiet,
        peers: args
            .peer
            .iter()
            .map(|p| parse_peer(p))
            .collect::<anyhow::Result<Vec<_>>>()?,
        compressions,
        payload,
    };
    let report = bench::run(config).await?;
    print!("{}", report::table(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        if path.as_os_str() == "-" {
            print!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report::markdown(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let lost: u64 = report.variants.iter().map(|v| v.lost).sum();
    if args.fail_on_loss && lost > 0 {
        bail!("{lost} publications were lost");
    }
    Ok(())
}

fn parse_peer(spec: &str) -> anyhow::Result<bench::peer::PeerConfig> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        name: String,
        ws: String,
        publish: String,
        pid: Option<u32>,
        subscribe: Option<String>,
        deflate: Option<bool>,
    }
    let s: Spec = serde_json::from_str(spec).with_context(|| {
        format!("--peer {spec:?}: expected {{\"name\",\"ws\",\"publish\",\"pid\"?,\"subscribe\"?,\"deflate\"?}}")
    })?;
    Ok(bench::peer::PeerConfig {
        name: s.name,
        ws_url: s.ws,
        subscribe_message: s.subscribe,
        publish_url: s.publish,
        pid: s.pid,
        // Peers that deflate need the bench's own subscriber (tungstenite has
        // no permessage-deflate).
        client: match s.deflate {
            Some(deflate) => bench::peer::PeerClient::Raw { deflate },
            None => bench::peer::PeerClient::Tungstenite,
        },
    })
}
