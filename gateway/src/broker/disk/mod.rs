//! The embedded on-disk broker, the default of `livegate serve`: every
//! publication appended to a segmented log in the data directory before it
//! is acknowledged, so history, epochs and the dedupe window survive a
//! restart or a crash.
//!
//! Shape (argued in `docs/architecture.md`): one shared append-only active
//! segment for all topics, written by one thread with group commit
//! ([`writer`]); sealed segments deleted whole once no topic's history
//! needs them; every read served from the in-memory topic table that
//! start-up rebuilds from the segments ([`replay`]).

pub mod dir;
pub mod record;
pub mod replay;
pub mod segment;
pub mod syncer;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use livegate_core::protocol::Position;
use livegate_core::topic::Namespaces;
use tokio::sync::oneshot;

use super::dedupe::DedupeWindow;
use super::topics::{lock, SharedLog, TopicTable};
use super::{BoxFuture, Broker, BrokerError, Page, PublishRequest, Published, ReadError, Sink};
use crate::stats::Stats;
use dir::{DataDir, DirError};
use segment::Active;
use writer::{Command, Writer};

/// When the log is synced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before each publish is acknowledged (group commit: one sync covers
    /// every publish waiting at that moment). Nothing acknowledged is lost,
    /// not even to a power cut.
    Always,
    /// At most this long after a write. A killed process loses nothing
    /// (the kernel holds what was written); a power cut or kernel crash may
    /// lose the last interval's acknowledged publishes.
    Interval(Duration),
}

/// Where and how the log is kept.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// The data directory.
    pub dir: PathBuf,
    /// When to sync.
    pub fsync: FsyncPolicy,
    /// Size at which a segment is sealed and the next one started.
    pub segment_bytes: u64,
}

/// Why the log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The data directory cannot be used.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A file of the log cannot be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The on-disk broker.
pub struct DiskBroker {
    table: Arc<TopicTable>,
    epoch: String,
    commands: Option<Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    _dir: DataDir,
}

impl DiskBroker {
    /// Opens (or creates) the log in `options.dir`, reads it back, and
    /// starts its writer. History bounds come from `namespaces`.
    pub fn open(
        options: &DiskOptions,
        namespaces: Namespaces,
        dedupe: DedupeWindow,
        stats: Arc<Stats>,
        sink: Arc<dyn Sink>,
    ) -> Result<Self, DiskError> {
        let started = Instant::now();
        let dir = DataDir::open(&options.dir)?;
        let epoch = dir.epoch()?;
        let table = Arc::new(TopicTable::new(namespaces, stats));
        let mut replayed = replay::replay(&dir.path, &table, dedupe)?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DiskError::Io { path, source }
        };
        let active = match (replayed.segments.last(), replayed.last_len) {
            (Some(last), Some(len)) => Active::reopen(&dir.path, last.number, len)
                .map_err(io(&segment::path(&dir.path, last.number)))?,
            _ => {
                let number = replayed.segments.last().map_or(1, |s| s.number + 1);
                replayed.segments.push(replay::SegmentIndex {
                    number,
                    ..Default::default()
                });
                Active::create(&dir.path, number).map_err(io(&segment::path(&dir.path, number)))?
            }
        };
        tracing::info!(
            dir = %dir.path.display(),
            segments = replayed.segments.len(),
            topics = table.all().len(),
            publications = replayed.publications,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log opened"
        );
        if replayed.repeated > 0 {
            tracing::warn!(
                records = replayed.repeated,
                "skipped log records whose offsets were already read"
            );
        }
        let writer = Writer {
            dir: dir.path.clone(),
            active,
            segments: replayed.segments,
            table: table.clone(),
            epoch: epoch.clone(),
            window: dedupe,
            sink,
            fsync: options.fsync,
            segment_bytes: options.segment_bytes,
            syncer: None,
            broken: None,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("livegate-log".into())
            .spawn(move || writer.run(rx))
            .map_err(io(&dir.path))?;
        Ok(Self {
            table,
            epoch,
            commands: Some(tx),
            writer: Some(handle),
            _dir: dir,
        })
    }

    fn topic(&self, name: &str) -> SharedLog {
        self.table
            .get_or_create(name, 0, || topic_epoch(&self.epoch, name))
    }
}

/// A new topic's epoch: derived from the store's epoch and the name, so a
/// topic read before its first publication has the same epoch after a
/// restart (nothing needs saving), and two topics' epochs differ.
pub fn topic_epoch(store: &str, topic: &str) -> String {
    // FNV-1a, 64 bits: stable across builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in store.bytes().chain([0]).chain(topic.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let c = ALPHABET[(h % 36) as usize] as char;
            h /= 36;
            c
        })
        .collect()
}

impl Drop for DiskBroker {
    fn drop(&mut self) {
        // The writer syncs and stops once its channel closes.
        self.commands.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn gone() -> BrokerError {
    BrokerError::Unavailable("the log writer has stopped".into())
}

impl Broker for DiskBroker {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let command = Command {
                topic: request.topic.to_owned(),
                event: request.event,
                data: request.data,
                msg_id: request.msg_id,
                reply,
            };
            let sent = self.commands.as_ref().map(|c| c.send(command));
            if !matches!(sent, Some(Ok(()))) {
                return Err(gone());
            }
            answer.await.map_err(|_| gone())?
        })
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        since: Option<&'a Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, ReadError>> {
        let page = lock(&self.topic(topic)).page(since, limit, crate::now_ms());
        Box::pin(std::future::ready(page))
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position, BrokerError>> {
        let position = lock(&self.topic(topic)).history.position();
        Box::pin(std::future::ready(Ok(position)))
    }

    fn name(&self) -> &'static str {
        "disk"
    }
}

#[cfg(test)]
pub(crate) mod tests;
