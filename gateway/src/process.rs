//! A `livegate serve` child process on loopback, for tests, the bench and
//! examples: started on a free port, its URL read from the first stdout
//! line, stopped by its pid.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a gateway process could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The binary could not be run.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The first line is not `livegate listening on http://ADDR`.
    #[error("the gateway did not start: its first line was {0:?}")]
    FirstLine(String),
    /// It did not exit within the time given after SIGTERM (it was killed).
    #[error("the gateway did not stop within {0:?} of SIGTERM")]
    Stuck(Duration),
}

/// A running `livegate serve --listen 127.0.0.1:0 --no-system-publisher
/// --log warn [--memory] ARGS`; killed (by pid) when dropped. `--memory` is
/// added unless ARGS name `--data-dir` or `--memory`: a test or bench
/// gateway writes no history into the working directory, and two of them
/// never contend for one data directory.
///
/// After the first line, the rest of stdout is read and discarded by a
/// thread until the gateway exits: the pipe then never fills, and the
/// gateway's later writes never meet a closed pipe, whichever way the
/// owner uses the process.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    addr: String,
}

impl GatewayProcess {
    /// Starts `binary serve` on a free loopback port with `args` appended;
    /// returns once it listens. Its stderr is inherited.
    pub fn start<I, S>(binary: &Path, args: I) -> Result<Self, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let names_log = args
            .iter()
            .any(|a| a.as_ref() == "--data-dir" || a.as_ref() == "--memory");
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-system-publisher",
                "--log",
                "warn",
            ])
            .args((!names_log).then_some("--memory"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let mut stdout = match child.stdout.take() {
            Some(s) => BufReader::new(s),
            None => return Err(Self::abandon(child, String::new())),
        };
        let mut first = String::new();
        // EOF (an empty line) means the gateway exited before listening.
        let _ = stdout.read_line(&mut first);
        let Some(addr) = first
            .trim()
            .strip_prefix("livegate listening on http://")
            .map(str::to_owned)
        else {
            return Err(Self::abandon(child, first));
        };
        let pid = child.id();
        let _ = std::thread::Builder::new()
            .name(format!("gateway-{pid}-stdout"))
            .spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(stdout.read(&mut sink), Ok(n) if n > 0) {}
            });
        Ok(Self { child, addr })
    }

    fn abandon(mut child: Child, first: String) -> ProcessError {
        let _ = child.kill();
        let _ = child.wait();
        ProcessError::FirstLine(first.trim().to_owned())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a clean shutdown), then waits at most `within` for the exit
    /// status; kills it if it is still running then.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, ProcessError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        // std can only send SIGKILL; `kill` sends SIGTERM to this pid only.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(ProcessError::Stuck(within))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
