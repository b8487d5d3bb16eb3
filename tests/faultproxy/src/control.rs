//! The stdin control channel: one command per line, one answer per line.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::args::parse_loopback;
use crate::state::State;

/// Longest accepted command line (without the newline).
const MAX_LINE: usize = 1024;
/// Largest accepted `delay` (ten minutes).
const MAX_DELAY_MS: u64 = 600_000;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Refuse {
    Ws,
    Sse,
    Poll,
    All,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Drop,
    Refuse(Refuse, bool),
    Stall(bool),
    Delay(u64),
    Upstream(SocketAddr),
    Stats,
}

fn on_off(word: Option<&str>, cmd: &str) -> Result<bool, String> {
    match word {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(format!("{cmd}: expected on or off, got `{other}`")),
        None => Err(format!("{cmd}: expected on or off")),
    }
}

pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Err("empty command".into());
    };
    let cmd = match name {
        "drop" => Command::Drop,
        "stats" => Command::Stats,
        "stall" => Command::Stall(on_off(words.next(), "stall")?),
        "refuse" => {
            let kind = match words.next() {
                Some("ws") => Refuse::Ws,
                Some("sse") => Refuse::Sse,
                Some("poll") => Refuse::Poll,
                Some("all") => Refuse::All,
                Some(other) => {
                    return Err(format!(
                        "refuse: expected ws, sse, poll or all, got `{other}`"
                    ))
                }
                None => return Err("refuse: expected ws, sse, poll or all".into()),
            };
            Command::Refuse(kind, on_off(words.next(), "refuse")?)
        }
        "delay" => {
            let arg = words.next().ok_or("delay: expected milliseconds")?;
            match arg.parse::<u64>() {
                Ok(ms) if ms <= MAX_DELAY_MS => Command::Delay(ms),
                _ => {
                    return Err(format!(
                        "delay: expected milliseconds 0..={MAX_DELAY_MS}, got `{arg}`"
                    ))
                }
            }
        }
        "upstream" => {
            let arg = words.next().ok_or("upstream: expected HOST:PORT")?;
            Command::Upstream(parse_loopback(arg, false).map_err(|e| format!("upstream: {e}"))?)
        }
        other => return Err(format!("unknown command `{other}`")),
    };
    if let Some(extra) = words.next() {
        return Err(format!("{name}: unexpected argument `{extra}`"));
    }
    Ok(cmd)
}

/// Applies a command and returns its one-line answer.
pub async fn apply(state: &State, cmd: Command) -> String {
    match cmd {
        Command::Drop => {
            state.drop_all().await;
        }
        Command::Refuse(kind, on) => {
            let flag = match kind {
                Refuse::Ws => &state.refuse_ws,
                Refuse::Sse => &state.refuse_sse,
                Refuse::Poll => &state.refuse_poll,
                Refuse::All => &state.refuse_all,
            };
            flag.store(on, Ordering::SeqCst);
        }
        Command::Stall(on) => {
            state.stall.send_replace(on);
        }
        Command::Delay(ms) => state.delay_ms.store(ms, Ordering::SeqCst),
        Command::Upstream(addr) => state.set_upstream(addr),
        Command::Stats => return state.stats_json(),
    }
    "ok".into()
}

/// Reads lines (bounded) from `input` and answers each on `out` until EOF.
pub async fn run<R, W>(state: Arc<State>, input: R, out: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::new(input);
    let mut line = Vec::with_capacity(MAX_LINE + 1);
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        let answer = if !complete && line.len() > MAX_LINE {
            // Skip the rest of the over-long line, in bounded pieces.
            loop {
                line.clear();
                let n = (&mut input)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await?;
                if n == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            format!("error: command longer than {MAX_LINE} bytes")
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) => match parse(text) {
                    Ok(cmd) => apply(&state, cmd).await,
                    Err(why) => format!("error: {why}"),
                },
                Err(_) => "error: command is not valid UTF-8".into(),
            }
        };
        out.write_all(answer.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("drop\r\n"), Ok(Command::Drop));
        assert_eq!(parse("  stats "), Ok(Command::Stats));
        assert_eq!(parse("refuse ws on"), Ok(Command::Refuse(Refuse::Ws, true)));
        assert_eq!(
            parse("refuse all off"),
            Ok(Command::Refuse(Refuse::All, false))
        );
        assert_eq!(parse("stall on"), Ok(Command::Stall(true)));
        assert_eq!(parse("delay 0"), Ok(Command::Delay(0)));
        assert_eq!(parse("delay 200"), Ok(Command::Delay(200)));
        assert_eq!(
            parse("upstream 127.0.0.1:9000"),
            Ok(Command::Upstream("127.0.0.1:9000".parse().unwrap()))
        );
    }

    #[test]
    fn rejects_bad_commands() {
        for bad in [
            "",
            "   ",
            "bogus",
            "DROP",
            "drop now",
            "refuse",
            "refuse ws",
            "refuse xyz on",
            "refuse ws maybe",
            "stall",
            "stall yes",
            "delay",
            "delay -1",
            "delay 1.5",
            "delay 99999999999999999999999",
            "delay 600001",
            "upstream",
            "upstream nonsense",
            "upstream 192.168.1.1:80",
            "upstream 127.0.0.1:0",
            "stats please",
        ] {
            assert!(parse(bad).is_err(), "`{bad}` should be rejected");
        }
    }
}
