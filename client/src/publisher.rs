//! Publishing over HTTP (`POST /api/publish/{topic}`), for servers that only
//! publish and keep no connection open.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::Request;
use livegate_core::client::HttpPublishError;
use livegate_core::payload::PayloadKind;
use livegate_core::protocol::Position;
use livegate_core::Payload;

use super::http::{self, Endpoint};
use super::{Ack, ClientError, TlsOptions};

/// How long one HTTP publish may take before it counts as lost (and is retried).
pub(super) const HTTP_PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Publishes over HTTP with the gateway's API key. Each publish carries a
/// fresh msg_id, so a retry after a lost answer is published once.
/// Publishes reuse kept-alive connections (as many as are in flight at
/// once), so a steady stream of publishes does not open a socket each.
///
/// ```no_run
/// # async fn demo() -> Result<(), livegate_client::ClientError> {
/// use livegate_client::Publisher;
/// use livegate_core::Payload;
///
/// let publisher = Publisher::new("http://127.0.0.1:8080")?.api_key("secret");
/// let data = Payload::from_json(r#"{"service":"db","status":"down"}"#)
///     .map_err(|e| livegate_client::ClientError::Invalid(e.to_string()))?;
/// let ack = publisher.publish("health", Some("health_change".into()), data).await?;
/// println!("published at offset {}", ack.position.offset);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Publisher {
    endpoint: Endpoint,
    api_key: Option<String>,
    timeout: Duration,
    instance: String,
    seq: AtomicU64,
}

impl Publisher {
    /// A publisher to the gateway at `url` (`http://host:port`, or
    /// `https://` with the system's roots).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Self::with_tls(url, &TlsOptions::default())
    }

    /// A publisher to the gateway at `url` with these TLS settings.
    pub fn with_tls(url: &str, tls: &TlsOptions) -> Result<Self, ClientError> {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Ok(Self {
            endpoint: Endpoint::new(url, tls)?,
            api_key: None,
            timeout: HTTP_PUBLISH_TIMEOUT,
            instance: format!("p{:012x}", u64::from_le_bytes(seed) & 0xffff_ffff_ffff),
            seq: AtomicU64::new(0),
        })
    }

    /// The gateway's API key (sent as `Authorization: Bearer`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How long a publish may take, retries included (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Publishes and returns where the publication landed. Network errors,
    /// timeouts and 5xx answers are retried until the timeout; the gateway's
    /// refusals (4xx) are returned at once as [`ClientError::Refused`].
    pub async fn publish(
        &self,
        topic: &str,
        event: Option<String>,
        data: Payload,
    ) -> Result<Ack, ClientError> {
        livegate_core::topic::validate_topic(topic)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(e) = &event {
            livegate_core::topic::validate_event(e)
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
        }
        let msg_id = format!(
            "{}-{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = publish_once(
                &self.endpoint,
                self.api_key.as_deref(),
                &msg_id,
                topic,
                event.clone(),
                &data,
                left.min(HTTP_PUBLISH_TIMEOUT),
            )
            .await;
            let err = match attempt {
                Ok(position) => {
                    return Ok(Ack {
                        msg_id,
                        topic: topic.to_owned(),
                        position,
                    })
                }
                Err(e) => e,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !err.retry || left <= pause {
                return Err(match err.code.as_str() {
                    "io" | "timeout" => ClientError::Io(format!(
                        "publishing to {} failed: {}",
                        self.endpoint.authority(),
                        err.message
                    )),
                    _ => ClientError::Refused {
                        code: err.code,
                        message: err.message,
                    },
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// `POST /api/publish/{topic}` with the payload as it was made (JSON,
/// MessagePack or binary, by content type) and the msg_id for dedupe;
/// `retry` when worth retrying (network, timeout, 5xx).
pub(super) async fn publish_once(
    endpoint: &Endpoint,
    api_key: Option<&str>,
    msg_id: &str,
    topic: &str,
    event: Option<String>,
    data: &Payload,
    timeout: Duration,
) -> Result<Position, HttpPublishError> {
    let err = |code: &str, message: String, retry: bool| HttpPublishError {
        code: code.to_owned(),
        message,
        retry,
    };
    let content_type = match data.kind() {
        PayloadKind::Json => "application/json",
        PayloadKind::Msgpack => "application/msgpack",
        PayloadKind::Binary => "application/octet-stream",
    };
    let mut path = format!("/api/publish/{topic}?msg_id={}", http::encode(msg_id));
    if let Some(e) = &event {
        path.push_str(&format!("&event={}", http::encode(e)));
    }
    let mut b = Request::post(endpoint.path(&path))
        .header(hyper::header::HOST, endpoint.authority())
        .header(hyper::header::CONTENT_TYPE, content_type);
    if let Some(k) = api_key {
        b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = b
        .body(Full::new(data.as_bytes().clone()))
        .map_err(|e| err("bad_request", e.to_string(), false))?;
    let io = |e: ClientError| err("io", e.to_string(), true);
    let answer = tokio::time::timeout(timeout, async {
        http::request(endpoint, req, 64 * 1024).await.map_err(io)
    })
    .await
    .map_err(|_| {
        err(
            "timeout",
            "the gateway did not answer the publish in time".into(),
            true,
        )
    })?;
    let (status, bytes) = answer?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        let epoch = v["epoch"].as_str().unwrap_or_default().to_owned();
        let offset = v["offset"].as_u64().unwrap_or_default();
        return Ok(Position { epoch, offset });
    }
    let code = v["code"].as_str().unwrap_or("http_error").to_owned();
    let message = v["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    Err(err(&code, message, status.is_server_error()))
}
