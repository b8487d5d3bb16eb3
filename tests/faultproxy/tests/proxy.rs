//! Integration tests: start the built `livegate-faultproxy` binary in front
//! of tiny upstream servers and drive it through its stdin control channel.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_livegate-faultproxy");
const RESPONSE_503: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// Runs a whole test body with an upper bound on its duration.
async fn bounded<F: Future<Output = ()>>(body: F) {
    timeout(Duration::from_secs(60), body)
        .await
        .expect("test took longer than 60 s");
}

/// Kills (by pid) and reaps a child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits for the process to exit on its own, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }
}

/// A running proxy process and its control channel.
struct Proxy {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    addr: SocketAddr,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let mut child = ChildGuard(
            Command::new(BIN)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting livegate-faultproxy"),
        );
        let stdin = child.0.stdin.take();
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (tx, mut lines) = mpsc::unbounded_channel();
        // Blocking reader thread; it ends when the process closes stdout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("no first line within 10 s")
            .expect("stdout closed before the first line");
        let addr = first
            .strip_prefix("faultproxy listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        let addr: SocketAddr = addr.parse().expect("listen address");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        Proxy {
            child,
            stdin,
            lines,
            addr,
        }
    }

    /// Sends one command line and returns the one answer line.
    async fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes());
        self.answer().await
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).expect("writing a command");
        stdin.flush().expect("flushing a command");
    }

    async fn answer(&mut self) -> String {
        timeout(WAIT, self.lines.recv())
            .await
            .expect("no answer within 5 s")
            .expect("proxy stdout closed")
    }

    async fn ok(&mut self, line: &str) {
        assert_eq!(self.cmd(line).await, "ok", "command `{line}`");
    }

    async fn stat(&mut self, key: &str) -> u64 {
        let json = self.cmd("stats").await;
        let needle = format!("\"{key}\":");
        let start = json
            .find(&needle)
            .unwrap_or_else(|| panic!("no {key} in {json}"))
            + needle.len();
        let digits: String = json[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("bad {key} in {json}"))
    }

    /// Polls `stats` until `key` equals `want` (bounded).
    async fn wait_stat(&mut self, key: &str, want: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.stat(key).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{key} is {got}, want {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- upstreams

/// An upstream that echoes every byte back; counts its connections.
async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = sock.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, conns)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// An HTTP/1.1 upstream: reads one request (head and Content-Length body)
/// and answers 200 with a body of `NAME\n` followed by every byte of the
/// request it received, then closes. Counts its connections.
async fn http_server(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    if let Some(end) = find_head_end(&req) {
                        break end;
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                let body_len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while req.len() < end + body_len {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let mut body = format!("{name}\n").into_bytes();
                body.extend_from_slice(&req);
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                resp.extend_from_slice(&body);
                let _ = sock.write_all(&resp).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, conns)
}

// ------------------------------------------------------------------ clients

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect")
}

async fn accept(listener: &TcpListener) -> TcpStream {
    timeout(WAIT, listener.accept())
        .await
        .expect("upstream saw no connection within 5 s")
        .expect("accept")
        .0
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .expect("read");
    buf
}

/// Round-trips a small message through an echo upstream.
async fn ping(s: &mut TcpStream) {
    s.write_all(b"ping").await.expect("write");
    assert_eq!(read_exact(s, 4).await, b"ping");
}

/// Asserts that nothing at all (no data, no EOF) arrives for `QUIET`.
async fn assert_quiet(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    if let Ok(r) = timeout(QUIET, s.read(&mut buf)).await {
        panic!("{what}: expected nothing within {QUIET:?}, got {r:?}");
    }
}

/// Asserts that the peer closed the connection (EOF or reset) within `limit`.
async fn assert_closed(s: &mut TcpStream, limit: Duration, what: &str) {
    let mut buf = [0u8; 64];
    match timeout(limit, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: expected close, got {n} bytes"),
        Err(_) => panic!("{what}: still open after {limit:?}"),
    }
}

/// Sends `req` in the given pieces (pausing between them) and reads the
/// whole answer until the server closes.
async fn request_in_pieces(addr: SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = connect(addr).await;
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        s.write_all(piece).await.expect("write request");
    }
    let mut resp = Vec::new();
    timeout(WAIT, s.read_to_end(&mut resp))
        .await
        .expect("no complete response within 5 s")
        .expect("read response");
    resp
}

async fn request(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    request_in_pieces(addr, &[req]).await
}

/// Asserts `resp` is the `http_server` answer of `name` to exactly `req`.
fn assert_forwarded(resp: &[u8], name: &str, req: &[u8]) {
    let text = String::from_utf8_lossy(resp);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n"),
        "not forwarded: {text:?}"
    );
    let mut want = format!("{name}\n").into_bytes();
    want.extend_from_slice(req);
    assert!(
        resp.ends_with(&want),
        "upstream {name} did not get exactly the request: {text:?}"
    );
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    // xorshift: no repeats that could hide reordering.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const WS_REQ: &[u8] = b"GET /live?topic=a HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
const HEALTH_REQ: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// -------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_both_ways_byte_for_byte() {
    bounded(async {
        // Through an echo upstream, with a half-close at the end.
        let (echo, _) = echo_server().await;
        let p = Proxy::start(echo).await;
        let data = pattern(300 * 1024, 7);
        let (mut r, mut w) = connect(p.addr).await.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7001) {
                w.write_all(chunk).await?;
            }
            w.shutdown().await
        });
        let mut got = Vec::new();
        timeout(Duration::from_secs(20), r.read_to_end(&mut got))
            .await
            .expect("echo not complete within 20 s")
            .expect("read");
        writer.await.expect("join").expect("write");
        assert_eq!(got.len(), data.len());
        assert!(got == data, "echoed bytes differ");
        drop(p);

        // Both directions at once, different data each way.
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let p = Proxy::start(upstream.local_addr().expect("addr")).await;
        let client = connect(p.addr).await;
        let server = accept(&upstream).await;
        let up_data = pattern(256 * 1024, 11);
        let down_data = pattern(384 * 1024, 13);
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let (a, b) = (up_data.clone(), down_data.clone());
        let w1 = tokio::spawn(async move {
            cw.write_all(&a).await?;
            cw.shutdown().await
        });
        let w2 = tokio::spawn(async move {
            sw.write_all(&b).await?;
            sw.shutdown().await
        });
        let (mut at_server, mut at_client) = (Vec::new(), Vec::new());
        let (r1, r2) = timeout(Duration::from_secs(20), async {
            tokio::join!(
                sr.read_to_end(&mut at_server),
                cr.read_to_end(&mut at_client)
            )
        })
        .await
        .expect("transfer not complete within 20 s");
        r1.expect("server read");
        r2.expect("client read");
        w1.await.expect("join").expect("client write");
        w2.await.expect("join").expect("server write");
        assert!(at_server == up_data, "client -> upstream bytes differ");
        assert!(at_client == down_data, "upstream -> client bytes differ");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_closes_open_connections() {
    bounded(async {
        let (echo, _) = echo_server().await;
        let mut p = Proxy::start(echo).await;
        let mut a = connect(p.addr).await;
        let mut b = connect(p.addr).await;
        ping(&mut a).await;
        ping(&mut b).await;
        p.ok("drop").await;
        assert_closed(&mut a, Duration::from_secs(1), "first connection").await;
        assert_closed(&mut b, Duration::from_secs(1), "second connection").await;
        assert_eq!(p.stat("dropped").await, 2);
        p.wait_stat("active", 0).await;
        // New connections still work.
        let mut c = connect(p.addr).await;
        ping(&mut c).await;
        assert_eq!(p.stat("active").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_ws_answers_503_but_forwards_plain_requests() {
    bounded(async {
        let (http, conns) = http_server("A").await;
        let mut p = Proxy::start(http).await;
        p.ok("refuse ws on").await;

        assert_eq!(request(p.addr, WS_REQ).await, RESPONSE_503);
        let mixed_case =
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nuPgRaDe: WebSocket\r\n\r\n";
        assert_eq!(request(p.addr, mixed_case).await, RESPONSE_503);
        // Head split over several writes.
        let (x, y) = WS_REQ.split_at(40);
        let (y, z) = y.split_at(50);
        assert_eq!(request_in_pieces(p.addr, &[x, y, z]).await, RESPONSE_503);
        assert_eq!(
            conns.load(Ordering::SeqCst),
            0,
            "refused requests reached upstream"
        );

        // Plain requests are inspected but forwarded intact, even in pieces.
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "A", HEALTH_REQ);
        let (x, y) = HEALTH_REQ.split_at(9);
        let (y, z) = y.split_at(20);
        assert_forwarded(
            &request_in_pieces(p.addr, &[x, y, z]).await,
            "A",
            HEALTH_REQ,
        );
        let post = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
        assert_forwarded(&request(p.addr, post).await, "A", post);
        // A websocket-looking value in another header does not count.
        let other = b"GET /health HTTP/1.1\r\nX-Note: Upgrade: websocket\r\n\r\n";
        assert_forwarded(&request(p.addr, other).await, "A", other);
        assert_eq!(conns.load(Ordering::SeqCst), 4);
        assert_eq!(p.stat("refused_ws").await, 3);

        p.ok("refuse ws off").await;
        assert_forwarded(&request(p.addr, WS_REQ).await, "A", WS_REQ);
        assert_eq!(p.stat("refused_ws").await, 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_sse_and_poll_by_path() {
    bounded(async {
        let (http, conns) = http_server("A").await;
        let mut p = Proxy::start(http).await;
        let sse = b"GET /sse?topic=a HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
        let poll = b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\n\r\n";

        p.ok("refuse sse on").await;
        assert_eq!(request(p.addr, sse).await, RESPONSE_503);
        assert_eq!(conns.load(Ordering::SeqCst), 0);
        assert_forwarded(&request(p.addr, poll).await, "A", poll);
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "A", HEALTH_REQ);

        p.ok("refuse poll on").await;
        assert_eq!(request(p.addr, poll).await, RESPONSE_503);
        assert_eq!(request(p.addr, sse).await, RESPONSE_503);
        // WebSocket refusal is a separate switch, still off.
        assert_forwarded(&request(p.addr, WS_REQ).await, "A", WS_REQ);
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        assert_eq!(p.stat("refused_sse").await, 2);
        assert_eq!(p.stat("refused_poll").await, 1);
        assert_eq!(p.stat("refused_ws").await, 0);

        p.ok("refuse sse off").await;
        p.ok("refuse poll off").await;
        assert_forwarded(&request(p.addr, sse).await, "A", sse);
        assert_forwarded(&request(p.addr, poll).await, "A", poll);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_all_closes_new_connections() {
    bounded(async {
        let (echo, conns) = echo_server().await;
        let mut p = Proxy::start(echo).await;
        let mut before = connect(p.addr).await;
        ping(&mut before).await;

        p.ok("refuse all on").await;
        let mut c = connect(p.addr).await;
        assert_closed(&mut c, Duration::from_secs(1), "refused connection").await;
        let mut c = connect(p.addr).await;
        let _ = c.write_all(b"ping").await;
        assert_closed(&mut c, Duration::from_secs(1), "refused connection").await;
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "refused connection reached upstream"
        );
        assert_eq!(p.stat("refused_all").await, 2);
        // Existing connections are not affected.
        ping(&mut before).await;

        p.ok("refuse all off").await;
        let mut c = connect(p.addr).await;
        ping(&mut c).await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_bytes_and_releases_them_in_order() {
    bounded(async {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut p = Proxy::start(upstream.local_addr().expect("addr")).await;
        let mut c = connect(p.addr).await;
        let mut u = accept(&upstream).await;
        c.write_all(b"hello").await.expect("write");
        assert_eq!(read_exact(&mut u, 5).await, b"hello");

        p.ok("stall on").await;
        c.write_all(b"one-").await.expect("write");
        u.write_all(b"uno-").await.expect("write");
        assert_quiet(&mut u, "client -> upstream while stalled").await;
        assert_quiet(&mut c, "upstream -> client while stalled").await;

        // A connection opened during the stall is stalled too, FIN included.
        let mut c2 = connect(p.addr).await;
        let mut u2 = accept(&upstream).await;
        c2.write_all(b"second").await.expect("write");
        c2.shutdown().await.expect("shutdown");
        assert_quiet(&mut u2, "new connection while stalled").await;

        // Bulk data is held (bounded) and delivered in order afterwards.
        let bulk = pattern(200 * 1024, 3);
        let (mut cr, mut cw) = c.into_split();
        let sent = bulk.clone();
        let writer = tokio::spawn(async move {
            cw.write_all(b"two-").await?;
            cw.write_all(&sent).await?;
            io_ok(cw)
        });
        assert_quiet(&mut u, "bulk while stalled").await;

        p.ok("stall off").await;
        let mut want = b"one-two-".to_vec();
        want.extend_from_slice(&bulk);
        let got = read_exact(&mut u, want.len()).await;
        assert!(got == want, "bytes after stall differ or are out of order");
        let mut back = [0u8; 4];
        timeout(WAIT, cr.read_exact(&mut back))
            .await
            .expect("timed out")
            .expect("read");
        assert_eq!(&back, b"uno-");
        let mut rest = Vec::new();
        timeout(WAIT, u2.read_to_end(&mut rest))
            .await
            .expect("timed out")
            .expect("read");
        assert_eq!(rest, b"second");
        let _cw = writer.await.expect("join").expect("write");
    })
    .await;
}

/// Keeps the write half alive (not closed) until the caller drops it.
fn io_ok<T>(t: T) -> std::io::Result<T> {
    Ok(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_delays_every_chunk() {
    bounded(async {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut p = Proxy::start(upstream.local_addr().expect("addr")).await;
        let mut c = connect(p.addr).await;
        let mut u = accept(&upstream).await;

        p.ok("delay 200").await;
        let t = Instant::now();
        c.write_all(b"x").await.expect("write");
        assert_eq!(read_exact(&mut u, 1).await, b"x");
        let up = t.elapsed();
        let t = Instant::now();
        u.write_all(b"y").await.expect("write");
        assert_eq!(read_exact(&mut c, 1).await, b"y");
        let down = t.elapsed();
        assert!(
            up >= Duration::from_millis(190),
            "client -> upstream took {up:?}"
        );
        assert!(
            down >= Duration::from_millis(190),
            "upstream -> client took {down:?}"
        );

        p.ok("delay 0").await;
        let t = Instant::now();
        c.write_all(b"z").await.expect("write");
        assert_eq!(read_exact(&mut u, 1).await, b"z");
        assert!(
            t.elapsed() < Duration::from_millis(190),
            "delay 0 still delays"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_switches_new_connections() {
    bounded(async {
        let (a, a_conns) = http_server("A").await;
        let (b, b_conns) = http_server("B").await;
        let mut p = Proxy::start(a).await;
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "A", HEALTH_REQ);
        // A connection opened before the switch stays on the old upstream.
        let mut old = connect(p.addr).await;
        let deadline = Instant::now() + WAIT;
        while a_conns.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "proxy did not connect upstream");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        p.ok(&format!("upstream {b}")).await;
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "B", HEALTH_REQ);
        old.write_all(HEALTH_REQ).await.expect("write");
        let mut resp = Vec::new();
        timeout(WAIT, old.read_to_end(&mut resp))
            .await
            .expect("timed out")
            .expect("read");
        assert_forwarded(&resp, "A", HEALTH_REQ);

        // Non-loopback and malformed upstreams are refused; B stays.
        assert!(p.cmd("upstream 10.1.2.3:80").await.starts_with("error: "));
        assert!(p
            .cmd("upstream example.com:80")
            .await
            .starts_with("error: "));
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "B", HEALTH_REQ);

        p.ok(&format!("upstream localhost:{}", a.port())).await;
        assert_forwarded(&request(p.addr, HEALTH_REQ).await, "A", HEALTH_REQ);
        assert_eq!(a_conns.load(Ordering::SeqCst), 3);
        assert_eq!(b_conns.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_counts() {
    bounded(async {
        let (echo, _) = echo_server().await;
        let mut p = Proxy::start(echo).await;
        assert_eq!(
            p.cmd("stats").await,
            r#"{"accepted":0,"active":0,"refused_ws":0,"refused_sse":0,"refused_poll":0,"refused_all":0,"dropped":0}"#
        );
        let mut a = connect(p.addr).await;
        let mut b = connect(p.addr).await;
        ping(&mut a).await;
        ping(&mut b).await;
        assert_eq!(p.stat("accepted").await, 2);
        assert_eq!(p.stat("active").await, 2);
        drop(a);
        p.wait_stat("active", 1).await;

        p.ok("refuse all on").await;
        let mut c = connect(p.addr).await;
        assert_closed(&mut c, Duration::from_secs(1), "refused").await;
        p.ok("refuse all off").await;
        p.ok("drop").await;
        assert_closed(&mut b, Duration::from_secs(1), "dropped").await;
        assert_eq!(
            p.cmd("stats").await,
            r#"{"accepted":3,"active":0,"refused_ws":0,"refused_sse":0,"refused_poll":0,"refused_all":1,"dropped":1}"#
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_get_errors() {
    bounded(async {
        let (echo, _) = echo_server().await;
        let mut p = Proxy::start(echo).await;
        for bad in [
            "",
            "bogus",
            "drop everything",
            "refuse",
            "refuse xyz on",
            "refuse ws maybe",
            "stall",
            "stall 1",
            "delay",
            "delay -5",
            "delay soon",
            "upstream",
            "upstream nonsense",
            "upstream 8.8.8.8:53",
        ] {
            let answer = p.cmd(bad).await;
            assert!(answer.starts_with("error: "), "`{bad}` got {answer:?}");
        }
        // Over-long and non-UTF-8 lines: still exactly one answer each.
        let long = "x".repeat(5000);
        assert!(p.cmd(&long).await.starts_with("error: "));
        p.send_raw(b"stall \xff\n");
        assert!(p.answer().await.starts_with("error: "));
        // The proxy is unharmed and in sync: the next answer is for `stats`.
        assert!(p.cmd("stats").await.starts_with("{\"accepted\":0,"));
        let mut c = connect(p.addr).await;
        ping(&mut c).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eof_on_stdin_ends_the_process() {
    bounded(async {
        let (echo, _) = echo_server().await;
        let mut p = Proxy::start(echo).await;
        let mut c = connect(p.addr).await;
        ping(&mut c).await;
        drop(p.stdin.take());
        let status = p
            .child
            .wait_exit(WAIT)
            .expect("proxy still running 5 s after stdin EOF");
        assert!(status.success(), "{status}");
        assert_closed(&mut c, Duration::from_secs(1), "connection of exited proxy").await;
        assert!(TcpStream::connect(p.addr).await.is_err(), "still listening");
    })
    .await;
}

#[test]
fn bad_args_exit_2() {
    for args in [
        &[][..],
        &["--upstream"],
        &["--upstream", "8.8.8.8:53"],
        &["--upstream", "127.0.0.1:notaport"],
        &["--upstream", "127.0.0.1:0"],
        &["--listen", "0.0.0.0:0", "--upstream", "127.0.0.1:9"],
        &["--upstream", "127.0.0.1:9", "--frobnicate"],
    ] {
        let mut child = ChildGuard(
            Command::new(BIN)
                .args(args)
                .stdin(Stdio::piped()) // kept open: must not be why it exits
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
        let status = child
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("{args:?}: still running after 5 s"));
        assert_eq!(status.code(), Some(2), "{args:?}");
        let mut err = String::new();
        if let Some(mut stderr) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        }
        assert!(err.contains("usage:"), "{args:?}: stderr {err:?}");
    }
}
