//! The native client through a TLS-terminating proxy (the fault proxy with
//! `--tls-ca-out`, a certificate from a test CA made at start), as gateways
//! run in production: every TCP transport, the HTTP `Publisher`, kept-alive
//! publish connections, and certificates that must be refused.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use livegate_client::http::{Endpoint, Stream};
use livegate_client::tls::certificate_sha256;
use livegate_client::{ClientBuilder, Publisher, SubscriptionEvent, TlsOptions};
use livegate_core::client::{State, TransportKind};
use livegate_core::Payload;
use support::{next_publication, FaultProxy, Gateway};

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lg-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway (no WebTransport) behind a TLS proxy; `url` is `https://`,
/// `ca` the test CA's PEM.
struct BehindTls {
    proxy: FaultProxy,
    url: String,
    ca: PathBuf,
    // Dropped after the processes (fields drop in order).
    _gateway: Gateway,
    _scratch: Scratch,
}

impl BehindTls {
    fn start(name: &str) -> Self {
        let gateway = Gateway::start(&["--no-wt".into()]);
        let scratch = Scratch::new(name);
        let ca = scratch.0.join("ca.pem");
        let proxy = FaultProxy::start_tls(&gateway.addr, &ca);
        Self {
            url: format!("https://{}", proxy.addr),
            proxy,
            ca,
            _gateway: gateway,
            _scratch: scratch,
        }
    }
}

fn ca_options(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca_file: Some(ca.to_path_buf()),
        pin_sha256: None,
    }
}

fn accepted(proxy: &mut FaultProxy) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&proxy.command("stats")).expect("stats JSON");
    stats["accepted"].as_u64().expect("accepted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tcp_transport_and_the_publisher_work_through_a_tls_proxy() {
    let mut behind = BehindTls::start("transports");
    let (url, ca) = (behind.url.clone(), behind.ca.clone());

    // Sequential publishes share one kept-alive connection.
    let publisher = Publisher::with_tls(&url, &ca_options(&ca)).expect("url");
    for n in 0..20 {
        let ack = publisher
            .publish(
                "tls.pub",
                None,
                Payload::from_json(n.to_string()).expect("json"),
            )
            .await
            .expect("ack through TLS");
        assert_eq!(ack.position.offset, n + 1);
    }
    assert_eq!(
        accepted(&mut behind.proxy),
        1,
        "20 publishes, one connection"
    );

    for transport in [
        TransportKind::WebSocket,
        TransportKind::Sse,
        TransportKind::LongPoll,
    ] {
        let topic = format!("tls.{}", transport.as_str());
        let client = ClientBuilder::new(&url)
            .tls_ca_file(&ca)
            .transports([transport])
            .connect()
            .expect("client");
        let mut sub = client.subscribe(&topic).await.expect("subscribe");
        let live = tokio::time::timeout(Duration::from_secs(10), sub.next()).await;
        assert!(
            matches!(live, Ok(Some(SubscriptionEvent::Subscribed(_)))),
            "{transport:?}: {live:?} ({:?})",
            client.last_error()
        );
        assert_eq!(client.transport(), Some(transport));
        let data = Payload::from_json(r#"{"over":"tls"}"#).expect("json");
        if transport == TransportKind::WebSocket {
            // Client publishes over the socket need a namespace allowing
            // them: this one goes through the HTTP Publisher.
            publisher.publish(&topic, None, data).await.expect("ack");
        } else {
            // The client's HTTP publish fallback, through TLS too.
            tokio::time::timeout(Duration::from_secs(10), client.publish(&topic, data))
                .await
                .expect("ack in time")
                .expect("ack");
        }
        let publication = next_publication(&mut sub).await;
        assert_eq!(publication.offset, 1, "{transport:?}");
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_mismatched_certificates_are_refused() {
    let behind = BehindTls::start("refused");
    let url = behind.url.clone();

    // The test CA is not among the system's roots.
    let publisher = Publisher::new(&url)
        .expect("url")
        .timeout(Duration::from_millis(300));
    let refused = publisher
        .publish("tls.x", None, Payload::from_json("1").expect("json"))
        .await;
    let message = format!("{refused:?}");
    assert!(
        refused.is_err() && message.to_lowercase().contains("certificate"),
        "{message}"
    );

    // A pin that is not the proxy's certificate.
    let client = ClientBuilder::new(&url)
        .tls_pin_sha256(&"ab".repeat(32))
        .expect("a well-formed pin")
        .transports([TransportKind::WebSocket])
        .connect()
        .expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some((_, message)) = client.last_error() {
            break message;
        }
        assert!(tokio::time::Instant::now() < deadline, "no error reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(error.contains("pinned"), "{error}");
    assert_ne!(client.state(), State::Connected);
    client.close().await;

    assert!(ClientBuilder::new(&url).tls_pin_sha256("not hex").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_is_trusted_without_its_ca() {
    let behind = BehindTls::start("pinned");
    let (url, ca) = (behind.url.clone(), behind.ca.clone());

    // The proxy's certificate, read through a connection that trusts the CA.
    let endpoint = Endpoint::new(&url, &ca_options(&ca)).expect("url");
    let Ok(Stream::Tls(tls)) = endpoint.connect().await else {
        panic!("expected a TLS connection");
    };
    let leaf = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    let pin: String = certificate_sha256(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // No CA file: the pin alone is trusted.
    let client = ClientBuilder::new(&url)
        .tls_pin_sha256(&pin)
        .expect("a well-formed pin")
        .transports([TransportKind::WebSocket])
        .connect()
        .expect("client");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), client.wait_for(State::Connected)).await,
        Ok(State::Connected),
        "{:?}",
        client.last_error()
    );
    client.close().await;
}
