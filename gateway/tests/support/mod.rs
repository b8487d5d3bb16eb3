//! Shared by the end-to-end tests: the real gateway and fault-proxy
//! processes (stopped by pid when dropped) and a few HTTP helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use livegate::process::GatewayProcess;

/// A `livegate serve` process (stopped by pid when dropped).
pub struct Gateway {
    process: GatewayProcess,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Gateway {
    /// Starts `livegate serve --listen 127.0.0.1:0 --no-system-publisher ARGS`,
    /// in memory unless ARGS give a `--data-dir` (or `--memory` already).
    pub fn start(extra: &[String]) -> Self {
        let process = GatewayProcess::start(Path::new(env!("CARGO_BIN_EXE_livegate")), extra)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = process.addr().to_owned();
        Self { process, addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.process.url()
    }

    /// SIGTERM, then waits (at most 5 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process
            .terminate(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A blocking HTTP/1.1 request; returns status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_request(&self.addr, method, path, body)
    }

    /// `POST` with a JSON body.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request("POST", path, body)
    }
}

/// The next publication of `sub`, within 10 s (other events skipped).
pub async fn next_publication(
    sub: &mut livegate_client::Subscription,
) -> livegate_core::protocol::Publication {
    use futures_util::StreamExt;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on");
        if let livegate_client::SubscriptionEvent::Publication(p) = event {
            return p;
        }
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn http_request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The fault proxy, driven over its stdin.
pub struct FaultProxy {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

/// Where cargo put the workspace's binaries (next to this test's `deps/`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream`.
    pub fn start(upstream: &str) -> Self {
        Self::spawn(upstream, &[])
    }

    /// Starts the proxy in front of `upstream` as a TLS terminator whose
    /// certificate (for 127.0.0.1) comes from a test CA written to `ca_out`.
    pub fn start_tls(upstream: &str, ca_out: &Path) -> Self {
        Self::spawn(upstream, &["--tls-ca-out".as_ref(), ca_out.as_os_str()])
    }

    fn spawn(upstream: &str, extra: &[&std::ffi::OsStr]) -> Self {
        let bin = bin_dir().join("livegate-faultproxy");
        assert!(
            bin.exists(),
            "{} is missing: build it first with `cargo build -p livegate-faultproxy`",
            bin.display()
        );
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start faultproxy");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        let addr = first
            .trim()
            .strip_prefix("faultproxy listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Self {
            child,
            stdin,
            stdout,
            addr,
        }
    }

    /// Sends one command; returns its answer line.
    pub fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("proxy stdin");
        self.stdin.flush().expect("proxy stdin");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("proxy answer");
        answer.trim().to_owned()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
