//! Command-line parsing (by hand) and the loopback-only address rule.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: livegate-faultproxy [--listen 127.0.0.1:0] --upstream 127.0.0.1:PORT [--tls-ca-out FILE]

Fault-injecting TCP proxy for livegate client conformance tests.
Both addresses must be loopback (127.0.0.0/8, ::1 or localhost).
Prints `faultproxy listening on ADDR` on stdout, then reads one control
command per line on stdin (see tests/faultproxy/README.md); exits on EOF.
With --tls-ca-out it terminates TLS with a certificate for 127.0.0.1 and
localhost from a test CA made at start, whose PEM it writes to FILE.";

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    /// Terminate TLS, and write the test CA's certificate here.
    pub tls_ca_out: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    Help,
}

/// Parses the arguments that follow the program name.
pub fn parse<I>(args: I) -> Result<Parsed, String>
where
    I: IntoIterator<Item = OsString>,
{
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<SocketAddr> = None;
    let mut tls_ca_out: Option<PathBuf> = None;
    let mut it = args.into_iter();
    while let Some(raw) = it.next() {
        let arg = raw
            .into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))?;
        let (flag, inline_value) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Parsed::Help);
        }
        let value = match inline_value {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .into_string()
                .map_err(|v| format!("value {v:?} of {flag} is not valid UTF-8"))?,
        };
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "--tls-ca-out" if tls_ca_out.is_some() => {
                return Err(format!("{flag} given more than once"))
            }
            "--tls-ca-out" if value.is_empty() => return Err(format!("{flag} needs a file")),
            "--tls-ca-out" => {
                tls_ca_out = Some(PathBuf::from(value));
                continue;
            }
            _ => return Err(format!("unknown argument `{arg}`")),
        };
        if slot.is_some() {
            return Err(format!("{flag} given more than once"));
        }
        let allow_port_zero = flag == "--listen";
        *slot = Some(parse_loopback(&value, allow_port_zero).map_err(|e| format!("{flag}: {e}"))?);
    }
    let upstream = upstream.ok_or_else(|| "--upstream HOST:PORT is required".to_string())?;
    let listen = listen.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    Ok(Parsed::Run(Args {
        listen,
        upstream,
        tls_ca_out,
    }))
}

/// Parses `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` and refuses anything
/// that is not a loopback address: this tool must never send traffic elsewhere.
pub fn parse_loopback(s: &str, allow_port_zero: bool) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr = if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{s}`: bad port `{port}`"))?;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else {
        s.parse::<SocketAddr>().map_err(|_| {
            format!("`{s}` is not a HOST:PORT address (HOST must be a loopback IP or localhost)")
        })?
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing non-loopback address {addr}: this test tool only talks to loopback"
        ));
    }
    if addr.port() == 0 && !allow_port_zero {
        return Err(format!("`{s}`: port 0 is not a valid upstream port"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_both_forms() {
        let want = Parsed::Run(Args {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:8080".parse().unwrap(),
            tls_ca_out: None,
        });
        assert_eq!(
            p(&["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:8080"]),
            Ok(want)
        );
        let Ok(Parsed::Run(a)) = p(&["--upstream=[::1]:9", "--listen=localhost:0"]) else {
            panic!("should parse");
        };
        assert_eq!(a.upstream, "[::1]:9".parse().unwrap());
        assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        let Ok(Parsed::Run(a)) = p(&["--upstream=127.0.0.1:9", "--tls-ca-out", "/tmp/ca.pem"])
        else {
            panic!("should parse");
        };
        assert_eq!(a.tls_ca_out, Some(PathBuf::from("/tmp/ca.pem")));
    }

    #[test]
    fn rejects_bad_args() {
        for bad in [
            &[][..],
            &["--listen", "127.0.0.1:0"],
            &["--upstream"],
            &["--upstream", "127.0.0.1:0"],
            &["--upstream", "10.0.0.1:80"],
            &["--upstream", "0.0.0.0:80"],
            &["--upstream", "example.com:80"],
            &["--upstream", "127.0.0.1:1", "--listen", "0.0.0.0:0"],
            &["--upstream", "127.0.0.1:1", "--upstream", "127.0.0.1:2"],
            &["--upstream", "127.0.0.1:1", "--verbose"],
            &["--upstream", "127.0.0.1"],
            &["--upstream", "127.0.0.1:1", "--tls-ca-out"],
            &["--upstream", "127.0.0.1:1", "--tls-ca-out="],
            &[
                "--upstream",
                "127.0.0.1:1",
                "--tls-ca-out=a",
                "--tls-ca-out=b",
            ],
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
