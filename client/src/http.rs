//! A minimal HTTP/1.1 client on hyper for the one-way transports and HTTP
//! publish: one TCP connection per request, no TLS (yet).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;
use livegate_core::client::{Method, Request, Target};
use tokio::net::TcpStream;

use super::ClientError;

/// Where the gateway is: `http://host:port[/prefix]`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    authority: String,
    prefix: String,
}

impl Endpoint {
    /// Parses the gateway's HTTP URL (`ws://` is accepted as well).
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::BadUrl(format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| bad("expected http://HOST:PORT (TLS is not supported yet)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(bad("expected a host and an optional port"));
        }
        // `host:port`, `[v6]:port`, or the same without a port (80).
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            p.parse::<u16>().is_ok() && (!h.starts_with('[') || h.ends_with(']'))
        });
        let authority = if has_port {
            authority.to_owned()
        } else if authority.starts_with('[') && authority.ends_with(']') {
            format!("{authority}:80")
        } else if authority.contains(':') {
            return Err(bad("the port is not a number"));
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `ws://authority/prefix/ws`.
    pub fn ws_url(&self) -> String {
        self.ws_url_for("/ws")
    }

    /// A WebSocket URL of a path (and query) below the gateway's prefix.
    pub fn ws_url_for(&self, path_and_query: &str) -> String {
        format!("ws://{}{}{path_and_query}", self.authority, self.prefix)
    }

    /// `host:port` to connect to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A path below the gateway's prefix.
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.prefix)
    }
}

/// The hyper request for a request the engine built: its path below the
/// gateway's prefix (or its own URL), `Host`, its headers and body.
pub fn request(endpoint: &Endpoint, r: &Request) -> Result<hyper::Request<Full<Bytes>>, String> {
    let uri = match &r.target {
        Target::Gateway(_) => endpoint.path(&r.path_and_query()),
        Target::Url(_) => r.path_and_query(),
    };
    let method = match r.method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
    };
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header(hyper::header::HOST, endpoint.authority());
    for (name, value) in &r.headers {
        b = b.header(name.as_str(), value.as_str());
    }
    b.body(Full::new(r.body.clone()))
        .map_err(|e| format!("cannot build the request: {e}"))
}

/// Sends one request on a fresh connection; the body streams after this returns.
pub async fn send(
    endpoint: &Endpoint,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Response<Incoming>, ClientError> {
    let tcp = TcpStream::connect(endpoint.authority())
        .await
        .map_err(|e| ClientError::Io(format!("connect {}: {e}", endpoint.authority())))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| ClientError::Io(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| ClientError::Io(e.to_string()))
}

/// Reads a whole (bounded) body.
pub async fn body_bytes(res: Response<Incoming>, limit: usize) -> Result<Bytes, ClientError> {
    let body = http_body_util::Limited::new(res.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ClientError::Io(format!("reading the body: {e}")))
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
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://a:b",
            "127.0.0.1:8080",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
