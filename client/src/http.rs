//! A minimal HTTP/1.1 client on hyper for the one-way transports, HTTP
//! publish and the WebSocket handshake: TCP or TLS (rustls), and a small
//! pool of kept-alive connections for requests whose answer is read whole.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::{self, TlsOptions};
use crate::ClientError;

/// Kept-alive connections held per endpoint; more concurrent requests than
/// this open connections that are closed after use.
const MAX_IDLE: usize = 8;

/// Where the gateway is (`http[s]://host[:port][/prefix]`), and how to
/// reach it: TLS settings and the idle connections. Clones share the pool.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// `host:port`, brackets around an IPv6 address.
    authority: String,
    prefix: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Parses the gateway's URL with the default TLS settings (the system's
    /// roots) for `https://` and `wss://`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        Self::new(url, &TlsOptions::default())
    }

    /// Parses the gateway's URL: `http://`, `https://`, or the same as
    /// `ws://`, `wss://`; an optional path is the gateway's prefix.
    pub fn new(url: &str, tls_options: &TlsOptions) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::BadUrl(format!("{url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let secure = match parsed.scheme() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(bad("expected http://, https://, ws:// or wss://")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials in the URL are not supported: use a token"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("expected no query or fragment"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("expected a host")),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("expected a port"))?;
        let authority = match parsed.host() {
            Some(url::Host::Ipv6(_)) => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let tls = if secure {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| bad(&format!("not a TLS server name: {e}")))?;
            Some((tls::client_config(tls_options)?, name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            authority,
            prefix: parsed.path().trim_end_matches('/').to_owned(),
            tls,
            idle: Arc::default(),
        })
    }

    /// `ws[s]://authority/prefix/ws`.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}/ws", self.authority, self.prefix)
    }

    /// `host:port` (the `Host` header).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A path below the gateway's prefix.
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.prefix)
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a TCP connection, with TLS on top for `https://`.
    pub async fn connect(&self) -> Result<Stream, ClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ClientError::Io(format!("connect {}: {e}", self.authority)))?;
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| ClientError::Io(format!("TLS with {}: {e}", self.authority)))?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    async fn handshake(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = self.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// An idle kept-alive connection, if one is still open. It may still
    /// be finishing the previous exchange: it is ready once that is done.
    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }
}

/// A TCP or TLS connection to the gateway.
pub enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Sends one request on a connection of its own, for a response whose body
/// streams after this returns (SSE).
pub async fn send(
    endpoint: &Endpoint,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, ClientError> {
    let mut sender = endpoint.handshake().await?;
    sender
        .send_request(request)
        .await
        .map_err(|e| ClientError::Io(e.to_string()))
}

/// Sends one request on a kept-alive connection and reads the whole
/// (bounded) answer; the connection then serves the next request. A request
/// that an idle connection could not take (the gateway closed it meanwhile)
/// goes on a new connection; one lost after it was sent is an error, as on
/// a connection of its own.
pub async fn request(
    endpoint: &Endpoint,
    request: Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, Bytes), ClientError> {
    let mut request = request;
    while let Some(mut sender) = endpoint.take_idle() {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(res) => return finish(endpoint, sender, res, limit).await,
            Err(mut e) => match e.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(ClientError::Io(e.into_error().to_string())),
            },
        }
    }
    let mut sender = endpoint.handshake().await?;
    let res = sender
        .send_request(request)
        .await
        .map_err(|e| ClientError::Io(e.to_string()))?;
    finish(endpoint, sender, res, limit).await
}

/// Reads the answer, then keeps the connection for the next request.
async fn finish(
    endpoint: &Endpoint,
    sender: SendRequest<Full<Bytes>>,
    res: Response<Incoming>,
    limit: usize,
) -> Result<(StatusCode, Bytes), ClientError> {
    let status = res.status();
    let body = body_bytes(res, limit).await?;
    endpoint.put_idle(sender);
    Ok((status, body))
}

/// Reads a whole (bounded) body.
pub async fn body_bytes(res: Response<Incoming>, limit: usize) -> Result<Bytes, ClientError> {
    let body = http_body_util::Limited::new(res.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ClientError::Io(format!("reading the body: {e}")))
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.ws_url(), "ws://127.0.0.1:8080/ws");
        assert_eq!(e.path("/sse"), "/sse");
        let e = Endpoint::parse("http://localhost:9/live/").unwrap();
        assert_eq!(e.ws_url(), "ws://localhost:9/live/ws");
        assert_eq!(
            Endpoint::parse("http://example").unwrap().authority(),
            "example:80"
        );
        let v6 = |u: &str| Endpoint::parse(u).unwrap().authority().to_owned();
        assert_eq!(v6("http://[::1]"), "[::1]:80");
        assert_eq!(v6("http://[::1]:9"), "[::1]:9");
        assert_eq!(v6("ws://[::1]:9"), "[::1]:9");
        for bad in [
            "ftp://x",
            "http://",
            "http://a:b",
            "127.0.0.1:8080",
            "http://[zz",
            "http://[zz]:80",
            "http://user:pw@host",
            "http://host/?q=1",
            "http://ho st",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn secure_schemes_use_tls_on_port_443_by_default() {
        let options = TlsOptions {
            ca_file: None,
            pin_sha256: Some([7; 32]),
        };
        let e = Endpoint::new("https://example.com/live", &options).unwrap();
        assert!(e.is_tls());
        assert_eq!(e.authority(), "example.com:443");
        assert_eq!(e.ws_url(), "wss://example.com:443/live/ws");
        let e = Endpoint::new("wss://[::1]:8443", &options).unwrap();
        assert!(e.is_tls());
        assert_eq!(e.ws_url(), "wss://[::1]:8443/ws");
        assert!(!Endpoint::new("http://example.com", &options)
            .unwrap()
            .is_tls());
    }
}
