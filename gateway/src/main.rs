//! `livegate`: the gateway binary.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use livegate::config::Config;
use livegate::App;
use tracing_subscriber::EnvFilter;

mod cli_bench;
mod cli_client;

/// livegate: a real-time streaming gateway (WebSocket, SSE, long-poll).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and its live page.
    Serve(Box<ServeArgs>),
    /// Subscribe and print one JSON line per event, reconnecting and resuming on its own.
    Sub(cli_client::SubArgs),
    /// Publish DATA (or each line of stdin) and print the acks.
    Pub(cli_client::PubArgs),
    /// Compare transports and encodings on the same load (latency, throughput, CPU, memory).
    Bench(cli_bench::BenchArgs),
}

/// Flags override `LIVEGATE_*` variables, which override the config file.
#[derive(Args)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "LIVEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP address; port 0 picks a free port (printed on the first line).
    #[arg(long, env = "LIVEGATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Require this key to publish over HTTP.
    #[arg(long, env = "LIVEGATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Heartbeat interval in milliseconds [default: 25000].
    #[arg(long, env = "LIVEGATE_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Drop a WebSocket peer silent this long, in milliseconds [default: 60000].
    #[arg(long, env = "LIVEGATE_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// Outbound frames queued per connection before it is cut as a slow consumer [default: 1024].
    #[arg(long, env = "LIVEGATE_QUEUE_SIZE")]
    queue_size: Option<usize>,
    /// Largest incoming message or HTTP publish body in bytes [default: 1048576].
    #[arg(long, env = "LIVEGATE_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    /// Topics per connection [default: 256].
    #[arg(long, env = "LIVEGATE_MAX_SUBSCRIPTIONS")]
    max_subscriptions: Option<usize>,
    /// Default long-poll wait in milliseconds [default: 25000].
    #[arg(long, env = "LIVEGATE_POLL_TIMEOUT_MS")]
    poll_timeout_ms: Option<u64>,
    /// Do not publish machine and gateway figures on $sys.* topics.
    #[arg(long, env = "LIVEGATE_NO_SYSTEM_PUBLISHER")]
    no_system_publisher: bool,
    /// Interval of the $sys.* publisher in milliseconds [default: 1000].
    #[arg(long, env = "LIVEGATE_SYSTEM_INTERVAL_MS")]
    system_interval_ms: Option<u64>,
    /// Publish msg_ids remembered per topic for deduplication; 0 turns it off [default: 1000].
    #[arg(long, env = "LIVEGATE_DEDUPE_WINDOW_SIZE")]
    dedupe_window_size: Option<usize>,
    /// Seconds a publish msg_id is remembered; 0 turns deduplication off [default: 300].
    #[arg(long, env = "LIVEGATE_DEDUPE_WINDOW_SECS")]
    dedupe_window_secs: Option<u64>,
    /// Never compress, even for clients that ask (permessage-deflate, gzip, WebTransport).
    #[arg(long, env = "LIVEGATE_NO_COMPRESSION")]
    no_compression: bool,
    /// Frames shorter than this many bytes go uncompressed [default: 256].
    #[arg(long, env = "LIVEGATE_COMPRESSION_THRESHOLD")]
    compression_threshold: Option<usize>,
    /// Deflate level, 1 (fastest) to 9 (smallest) [default: 6].
    #[arg(long, env = "LIVEGATE_COMPRESSION_LEVEL")]
    compression_level: Option<u32>,
    /// WebTransport UDP address [default: the --listen IP, port 4433; port 0 when --listen's is 0].
    #[arg(long, env = "LIVEGATE_WT_LISTEN")]
    wt_listen: Option<SocketAddr>,
    /// Do not serve WebTransport.
    #[arg(long, env = "LIVEGATE_NO_WT")]
    no_wt: bool,
    /// PEM certificate chain for WebTransport [default: a self-signed dev certificate].
    #[arg(long, env = "LIVEGATE_WT_CERT", requires = "wt_key")]
    wt_cert: Option<PathBuf>,
    /// PEM private key for --wt-cert.
    #[arg(long, env = "LIVEGATE_WT_KEY", requires = "wt_cert")]
    wt_key: Option<PathBuf>,
    /// WebTransport URL to announce at /wt/cert-hash when clients reach it through another address.
    #[arg(long, env = "LIVEGATE_WT_ADVERTISE")]
    wt_advertise: Option<String>,
    /// Shared secret of HS256/384/512 connection tokens (turns tokens on).
    #[arg(long, env = "LIVEGATE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM public key of RS256, ES256 or EdDSA connection tokens (turns tokens on).
    #[arg(long, env = "LIVEGATE_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// With tokens on, let connections without a token in.
    #[arg(long, env = "LIVEGATE_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,
    /// Keep history in memory only: lost when the gateway stops (no data directory).
    #[arg(long, env = "LIVEGATE_MEMORY", conflicts_with = "data_dir")]
    memory: bool,
    /// Directory of the history log [default: ./livegate-data]. One gateway per directory.
    #[arg(long, env = "LIVEGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Sync the log at most this many ms after a write; 0 syncs before every acknowledgement [default: 0].
    #[arg(long, env = "LIVEGATE_FSYNC_INTERVAL_MS")]
    fsync_interval_ms: Option<u64>,
    /// Size in bytes at which a log segment is sealed and the next begun [default: 67108864].
    #[arg(long, env = "LIVEGATE_SEGMENT_BYTES")]
    segment_bytes: Option<u64>,
    /// Log filter, e.g. `info` or `livegate=debug`.
    #[arg(long, env = "LIVEGATE_LOG", default_value = "info")]
    log: String,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = self.$field.clone() { c.$field = v; } )* };
        }
        take!(
            listen,
            heartbeat_ms,
            idle_timeout_ms,
            queue_size,
            max_frame_bytes,
            max_subscriptions,
            poll_timeout_ms,
            system_interval_ms,
            dedupe_window_size,
            dedupe_window_secs,
            compression_threshold,
            compression_level,
            data_dir,
            fsync_interval_ms,
            segment_bytes
        );
        if self.no_compression {
            c.compression = false;
        }
        if self.memory {
            c.memory = true;
        }
        if self.api_key.is_some() {
            c.api_key = self.api_key.clone();
        }
        if self.jwt_secret.is_some() {
            c.auth.jwt_secret = self.jwt_secret.clone();
        }
        if self.jwt_public_key.is_some() {
            c.auth.jwt_public_key = self.jwt_public_key.clone();
        }
        if self.allow_anonymous {
            c.auth.anonymous = true;
        }
        if self.no_system_publisher {
            c.system_publisher = false;
        }
        if self.no_wt {
            c.webtransport = false;
        }
        if self.wt_listen.is_some() {
            c.wt_listen = self.wt_listen;
        }
        if self.wt_advertise.is_some() {
            c.wt_advertise = self.wt_advertise.clone();
        }
        if self.wt_cert.is_some() {
            c.wt_cert = self.wt_cert.clone();
            c.wt_key = self.wt_key.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Sub(args) => client_command(cli_client::sub(args)),
        Command::Pub(args) => client_command(cli_client::publish(args)),
        Command::Bench(args) => client_command(cli_bench::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the causes (`{:#}`): returning the error from
            // main would print its Debug form, a backtrace included
            // whenever RUST_BACKTRACE is set.
            let _ = writeln!(std::io::stderr(), "livegate: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client_command(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(
            std::env::var("LIVEGATE_LOG").unwrap_or_else(|_| "warn".into()),
        )?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let system = config.system_publisher;
        let interval = Duration::from_millis(config.system_interval_ms);
        let webtransport = config.webtransport;
        let app = App::open(config).context("cannot open the history log (--memory runs without one)")?;
        let wt = if webtransport {
            Some(livegate::transport::wt::start(app.clone()).await?)
        } else {
            None
        };
        {
            // The first line is the contract for scripts and tests: keep it
            // stable. A reader that closed stdout must not stop the gateway.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "livegate listening on http://{addr}");
            if let Some(wt) = &wt {
                let _ = writeln!(out, "webtransport: {} (certificate sha-256 {})", wt.url, wt.hash);
            }
            let _ = writeln!(out, "live page: http://{addr}/  ·  publish: curl -X POST http://{addr}/api/publish/demo -d '{{\"hello\":1}}'");
            let _ = out.flush();
        }
        let publisher = system.then(|| tokio::spawn(livegate::system::run(app.clone(), interval)));
        livegate::server::serve(app, listener, shutdown_signal()).await;
        if let Some(p) = publisher {
            p.abort();
        }
        tracing::info!("stopped");
        Ok(())
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
