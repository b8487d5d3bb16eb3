//! The background sync of the every-N-ms policy: a thread of its own, so
//! the writer goes on appending (and acknowledging) while a sync runs.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::broker::topics::lock;

struct Shared {
    /// The active segment (a second handle on it), replaced at each roll.
    file: Mutex<Option<File>>,
    /// Something was written since the last sync.
    dirty: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Syncs the active segment at most `every` after a write.
pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread, syncing `file` (the active segment).
    pub fn start(file: File, every: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            file: Mutex::new(Some(file)),
            dirty: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("livegate-log-sync".into())
            .spawn(move || loop {
                let stop = lock(&s.stop);
                let (stop, _) = s
                    .wake
                    .wait_timeout_while(stop, every, |stop| !*stop)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let stopping = *stop;
                drop(stop);
                if s.dirty.swap(false, Ordering::AcqRel) {
                    if let Some(f) = lock(&s.file).as_ref() {
                        if let Err(e) = f.sync_data() {
                            tracing::error!(error = %e, "cannot sync the log");
                        }
                    }
                }
                if stopping {
                    return;
                }
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Notes a write to sync.
    pub fn wrote(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Syncs `file` from now on (the writer synced the previous one).
    pub fn replace(&self, file: File) {
        *lock(&self.shared.file) = Some(file);
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
