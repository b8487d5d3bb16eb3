//! A stream read from JavaScript a batch at a time: `next(max)` resolves with
//! every item that is ready (at least one), or `null` once the stream ended
//! or was closed. One JS reader pumps it, so batches keep the stream's order.

use std::future::Future;
use std::sync::Arc;

use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::{watch, Mutex};

use crate::batch::BatchWriter;
use crate::Batch;

/// A stream shared between the pending `next` and `close`.
pub struct Feed<S> {
    stream: Arc<Mutex<Option<S>>>,
    /// Set by `close`, so a `next` parked on an idle stream lets go of it.
    closed: watch::Sender<bool>,
}

impl<S> Feed<S>
where
    S: Stream + Unpin + Send + 'static,
    S::Item: Send + 'static,
{
    pub fn new(stream: S) -> Self {
        Self {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed: watch::channel(false).0,
        }
    }

    /// The next batch of up to `max` items, each written by `write` (items
    /// it writes nothing for are skipped); `None` once the stream ended.
    pub fn next<W>(
        &self,
        max: usize,
        write: W,
    ) -> impl Future<Output = Option<Batch>> + Send + 'static
    where
        W: Fn(&mut BatchWriter, &S::Item) + Send + 'static,
    {
        let stream = Arc::clone(&self.stream);
        let mut closed = self.closed.subscribe();
        let max = max.max(1);
        async move {
            let mut guard = stream.lock().await;
            loop {
                if *closed.borrow() {
                    *guard = None;
                    return None;
                }
                let s = guard.as_mut()?;
                let first = tokio::select! {
                    item = s.next() => item,
                    _ = closed.wait_for(|c| *c) => None,
                };
                let Some(first) = first else {
                    *guard = None;
                    return None;
                };
                let mut out = BatchWriter::new();
                write(&mut out, &first);
                let mut ended = false;
                for _ in 1..max {
                    match s.next().now_or_never() {
                        Some(Some(item)) => write(&mut out, &item),
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if ended {
                    // What a subscription's drop means (unsubscribe) happens now.
                    *guard = None;
                }
                if !out.is_empty() {
                    return Some(out.finish());
                }
            }
        }
    }

    /// Drops the stream (a subscription unsubscribes); a pending `next`
    /// resolves with `None`.
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Ok(mut guard) = self.stream.try_lock() {
            guard.take();
        }
    }
}
