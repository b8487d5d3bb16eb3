//! Inspection of the first HTTP request head of a connection.

/// At most this many bytes are read while looking for the end of the head.
pub const MAX_HEAD: usize = 16 * 1024;

/// Index just past the blank line ending the head (`\r\n\r\n`; a bare
/// `\n\n` is tolerated too), if `buf` holds a complete head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// What the refuse rules need to know about a request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Has an `Upgrade` header listing `websocket` (case-insensitive).
    pub websocket: bool,
    /// The request path starts with `/sse`.
    pub sse: bool,
    /// The request path starts with `/poll`.
    pub poll: bool,
}

pub fn inspect(head: &[u8]) -> Inspection {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let path = request_path(request_line);
    let websocket = lines.any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (line[..colon].trim_ascii(), &line[colon + 1..]);
        name.eq_ignore_ascii_case(b"upgrade")
            && value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    });
    Inspection {
        websocket,
        sse: path.starts_with(b"/sse"),
        poll: path.starts_with(b"/poll"),
    }
}

/// The path of the request target (`METHOD SP TARGET SP VERSION`); an
/// absolute-form target (`http://host/path`) is reduced to its path.
fn request_path(request_line: &[u8]) -> &[u8] {
    let mut parts = request_line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|p| !p.is_empty());
    let _method = parts.next();
    let target = parts.next().unwrap_or_default();
    for scheme in [&b"http://"[..], b"https://", b"ws://", b"wss://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            return match rest.iter().position(|&b| b == b'/') {
                Some(i) => &rest[i..],
                None => b"/",
            };
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_head_end() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn inspects() {
        let ws = b"GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nupgrade:  WebSocket \r\n\r\n";
        assert_eq!(
            inspect(ws),
            Inspection {
                websocket: true,
                ..Default::default()
            }
        );
        let multi = b"GET / HTTP/1.1\r\nUPGRADE: h2c, websocket\r\n\r\n";
        assert!(inspect(multi).websocket);
        let not_ws = b"GET /health HTTP/1.1\r\nX-Upgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(inspect(not_ws), Inspection::default());
        assert!(inspect(b"GET /sse?topic=a HTTP/1.1\r\n\r\n").sse);
        assert!(inspect(b"GET http://127.0.0.1:1/sse HTTP/1.1\r\n\r\n").sse);
        assert!(inspect(b"POST /poll/x HTTP/1.1\r\n\r\n").poll);
        assert!(!inspect(b"GET /ssex/../poll HTTP/1.1\r\n\r\n").poll);
        assert_eq!(
            inspect(b"GET / HTTP/1.1\r\nReferer: /sse\r\n\r\n"),
            Inspection::default()
        );
        assert_eq!(inspect(b"\x00\xff garbage"), Inspection::default());
    }
}
