//! Waiting from synchronous Python code: the GIL is released while waiting,
//! and Ctrl-C (or any signal handler that raises) interrupts the wait promptly.

use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::runtime;

/// How often a blocked call looks at pending signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs `fut` on the client runtime and waits for it, at most `timeout`:
/// `Ok(None)` when the time ran out, `Err` when a signal handler raised
/// (KeyboardInterrupt). Either way the future is cancelled, so it must be
/// safe to drop at an await point.
pub fn wait<T, F>(py: Python<'_>, timeout: Option<Duration>, fut: F) -> PyResult<Option<T>>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, mut rx) = mpsc::sync_channel(1);
    let task = runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let step = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_CHECK),
            None => SIGNAL_CHECK,
        };
        let (back, received) = py.detach(move || {
            let r = rx.recv_timeout(step);
            (rx, r)
        });
        rx = back;
        match received {
            Ok(value) => return Ok(Some(value)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The task ended without an answer: the runtime is shutting down.
                return Ok(None);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let interrupted = py.check_signals();
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if interrupted.is_err() || expired {
            task.abort();
            // The task may have finished just now: keep its answer rather than lose it.
            let late = py.detach(move || {
                let _ = runtime().block_on(task);
                rx.try_recv().ok()
            });
            interrupted?;
            return Ok(late);
        }
    }
}

/// A timeout argument in seconds: None waits for ever; negative is an error.
pub fn timeout_arg(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(crate::errors::error(
            crate::errors::Kind::Argument,
            livegate_core::ErrorCode::Invalid,
            format!("timeout must be a number of seconds >= 0 or None, not {s}"),
        )),
    }
}
