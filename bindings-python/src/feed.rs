//! A stream read from Python in batches: `wait()` (awaitable or blocking)
//! says when items are there, `drain()` takes them under the GIL.
//!
//! Waiting never takes an item out of the stream, so a cancelled wait (an
//! `asyncio.wait_for` that timed out, a Ctrl-C) loses nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{FutureExt, Stream, StreamExt};
use pyo3::prelude::*;

use crate::blocking::{timeout_arg, wait};

/// Items moved from the stream per wake-up, at most.
const BATCH: usize = 1024;

struct Stash<T> {
    items: VecDeque<T>,
    ended: bool,
}

/// A stream shared between waiting futures and draining Python calls.
pub struct Feed<S: Stream> {
    stream: Arc<tokio::sync::Mutex<Option<S>>>,
    stash: Arc<Mutex<Stash<S::Item>>>,
    /// Set by `close`, so a waiter parked on an idle stream lets go of it.
    closed: tokio::sync::watch::Sender<bool>,
}

impl<S> Feed<S>
where
    S: Stream + Unpin + Send + 'static,
    S::Item: Send + 'static,
{
    pub fn new(stream: S) -> Self {
        Self {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            stash: Arc::new(Mutex::new(Stash {
                items: VecDeque::new(),
                ended: false,
            })),
            closed: tokio::sync::watch::channel(false).0,
        }
    }

    /// Resolves to true when items are ready to drain, false once the stream
    /// has ended and everything was drained.
    pub fn wait(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let stream = Arc::clone(&self.stream);
        let stash = Arc::clone(&self.stash);
        let mut closed = self.closed.subscribe();
        async move {
            if let Some(ready) = ready(&stash) {
                return ready;
            }
            let mut guard = stream.lock().await;
            // Another waiter may have filled the stash while this one queued.
            if let Some(ready) = ready(&stash) {
                return ready;
            }
            let Some(s) = guard.as_mut() else {
                return false;
            };
            let first = tokio::select! {
                item = s.next() => item,
                _ = closed.wait_for(|c| *c) => return ready(&stash).unwrap_or(false),
            };
            let mut st = lock(&stash);
            match first {
                Some(item) => {
                    st.items.push_back(item);
                    pull_ready(s, &mut st);
                    true
                }
                None => {
                    st.ended = true;
                    false
                }
            }
        }
    }

    /// [`Feed::wait`] as a Python awaitable.
    pub fn wait_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.wait();
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(fut.await) })
    }

    /// [`Feed::wait`] from synchronous code: `None` once `timeout` seconds passed.
    pub fn wait_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        let timeout = timeout_arg(timeout)?;
        wait(py, timeout, self.wait())
    }

    /// Takes up to `max` items that are ready, without waiting.
    pub fn drain(&self, max: usize) -> Vec<S::Item> {
        let mut st = lock(&self.stash);
        if st.items.len() < max {
            if let Ok(mut guard) = self.stream.try_lock() {
                if let Some(s) = guard.as_mut() {
                    pull_ready(s, &mut st);
                }
            }
        }
        let n = st.items.len().min(max);
        st.items.drain(..n).collect()
    }

    /// Puts an item back at the front, to be drained first.
    pub fn unread(&self, item: S::Item) {
        lock(&self.stash).items.push_front(item);
    }

    /// Drops the stream (what that means is the stream's business: a
    /// subscription unsubscribes). Items already taken stay drainable.
    pub fn close(&self) {
        lock(&self.stash).ended = true;
        self.closed.send_replace(true);
        let taken = match self.stream.try_lock() {
            Ok(mut guard) => {
                drop(guard.take());
                true
            }
            Err(_) => false,
        };
        if !taken {
            // A waiter holds it: drop the stream as soon as it lets go.
            let stream = Arc::clone(&self.stream);
            crate::runtime().spawn(async move {
                stream.lock().await.take();
            });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ready<T>(stash: &Mutex<Stash<T>>) -> Option<bool> {
    let st = lock(stash);
    if !st.items.is_empty() {
        Some(true)
    } else if st.ended {
        Some(false)
    } else {
        None
    }
}

fn pull_ready<S: Stream + Unpin>(s: &mut S, st: &mut Stash<S::Item>) {
    while st.items.len() < BATCH {
        match s.next().now_or_never() {
            Some(Some(item)) => st.items.push_back(item),
            Some(None) => {
                st.ended = true;
                break;
            }
            None => break,
        }
    }
}
