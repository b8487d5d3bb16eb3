//! The log's one writer: a thread that sequences publishes, appends them to
//! the active segment, syncs as the policy says, and only then makes them
//! readable and hands them to the sink.
//!
//! Group commit falls out of the loop: while one batch is written and
//! synced, the next publishes queue up, and the next turn takes them all.
//! Offsets are given here and nowhere else, so a failed write takes back
//! the offsets it gave (nothing was readable or delivered yet).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livegate_core::protocol::{Position, Publication};
use livegate_core::Payload;
use tokio::sync::oneshot;

use super::record;
use super::replay::SegmentIndex;
use super::segment::{self, Active};
use super::syncer::Syncer;
use super::FsyncPolicy;
use crate::broker::dedupe::DedupeWindow;
use crate::broker::topics::{lock, SharedLog, TopicTable};
use crate::broker::{BrokerError, Published, Sink};
use crate::wire::{SharedPub, SharedPublication};

/// Publishes taken in one turn at most.
const MAX_BATCH: usize = 4096;
/// How often old segments are checked for deletion when nothing rolls.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// The answer to one publish.
pub type Reply = oneshot::Sender<Result<Published, BrokerError>>;

/// One publish on its way to the writer.
pub struct Command {
    /// The topic.
    pub topic: String,
    /// Optional event name.
    pub event: Option<String>,
    /// The payload.
    pub data: Payload,
    /// Client-generated id for deduplication.
    pub msg_id: Option<String>,
    /// Where the outcome goes.
    pub reply: Reply,
}

/// The writer's state.
pub struct Writer {
    /// The data directory.
    pub dir: PathBuf,
    /// The segment appended to.
    pub active: Active,
    /// What each segment holds, oldest first; the last is the active one's.
    pub segments: Vec<SegmentIndex>,
    /// Every topic's log (shared with readers).
    pub table: Arc<TopicTable>,
    /// The store's epoch, from which new topics' epochs derive.
    pub epoch: String,
    /// The dedupe window.
    pub window: DedupeWindow,
    /// Where committed publications go.
    pub sink: Arc<dyn Sink>,
    /// When to sync.
    pub fsync: FsyncPolicy,
    /// A segment past this many bytes is sealed and a new one started.
    pub segment_bytes: u64,
    /// The background sync of [`FsyncPolicy::Interval`], started by `run`.
    pub syncer: Option<Syncer>,
    /// Set when a failed write could not be cut back: the segment's end is
    /// unknown, so nothing more is appended until a restart.
    pub broken: Option<String>,
}

/// A publication written in this turn, waiting for the commit.
struct Staged {
    log: SharedLog,
    publication: SharedPub,
    msg_id: Option<String>,
    reply: Reply,
}

impl Writer {
    /// Runs until every sender is gone, then syncs what is left.
    pub fn run(mut self, commands: Receiver<Command>) {
        if let FsyncPolicy::Interval(every) = self.fsync {
            match self.active.handle().and_then(|f| Syncer::start(f, every)) {
                Ok(s) => self.syncer = Some(s),
                // Without it the writer syncs each batch itself: slower, as safe.
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the log's sync thread; syncing every write")
                }
            }
        }
        let mut last_retention = Instant::now();
        let mut batch = Vec::new();
        loop {
            match commands.recv_timeout(RETENTION_EVERY) {
                Ok(first) => {
                    batch.push(first);
                    batch.extend(commands.try_iter().take(MAX_BATCH - 1));
                    self.commit(&mut batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.active.len >= self.segment_bytes {
                self.roll();
            }
            if last_retention.elapsed() >= RETENTION_EVERY {
                self.retention();
                last_retention = Instant::now();
            }
        }
        self.syncer.take();
        if let Err(e) = self.active.sync() {
            tracing::error!(error = %e, "cannot sync the log at shutdown");
        }
    }

    /// Sequences, writes, syncs and then applies one batch.
    fn commit(&mut self, batch: &mut Vec<Command>) {
        let now = crate::now_ms();
        let window = self.window;
        let mut buf = Vec::new();
        let mut staged: Vec<Staged> = Vec::with_capacity(batch.len());
        // Offsets given in this batch, and msg_ids published in it.
        let mut next: HashMap<Arc<str>, u64> = HashMap::new();
        let mut pending_ids: HashMap<(Arc<str>, String), Position> = HashMap::new();
        let mut repeats: Vec<(Reply, Position)> = Vec::new();
        for cmd in batch.drain(..) {
            if let Some(why) = &self.broken {
                let _ = cmd.reply.send(Err(BrokerError::Unavailable(why.clone())));
                continue;
            }
            let log = self.table.get_or_create(&cmd.topic, 0, || {
                super::topic_epoch(&self.epoch, &cmd.topic)
            });
            let st = &mut *lock(&log);
            let msg_id = cmd.msg_id.filter(|_| window.enabled());
            if let Some(id) = &msg_id {
                if let Some(position) = st.duplicate(window, id, now) {
                    let _ = cmd.reply.send(Ok(Published {
                        position,
                        duplicate: true,
                    }));
                    continue;
                }
                if let Some(position) = pending_ids.get(&(st.name.clone(), id.clone())) {
                    repeats.push((cmd.reply, position.clone()));
                    continue;
                }
            }
            let offset = next.get(&st.name).copied().unwrap_or(st.history.latest()) + 1;
            next.insert(st.name.clone(), offset);
            let publication = Publication {
                topic: st.name.to_string(),
                epoch: st.epoch.to_string(),
                offset,
                event: cmd.event,
                data: cmd.data,
                time_ms: now,
            };
            record::put_publication(&mut buf, &publication, msg_id.as_deref());
            if let Some(id) = &msg_id {
                pending_ids.insert((st.name.clone(), id.clone()), publication.position());
            }
            staged.push(Staged {
                log: log.clone(),
                publication: Arc::new(SharedPublication::new(publication)),
                msg_id,
                reply: cmd.reply,
            });
        }
        if staged.is_empty() {
            return;
        }
        if let Err(e) = self.write(&buf) {
            let why = format!("cannot write the log: {e}");
            tracing::error!(error = %e, publications = staged.len(), "publishes failed: cannot write the log");
            for s in staged {
                let _ = s.reply.send(Err(BrokerError::Unavailable(why.clone())));
            }
            for (reply, _) in repeats {
                let _ = reply.send(Err(BrokerError::Unavailable(why.clone())));
            }
            return;
        }
        let mut index = self.segments.last_mut();
        for s in staged {
            let mut st = lock(&s.log);
            let position = st.append(s.publication.clone(), s.msg_id.as_deref(), window);
            if let Some(index) = index.as_mut() {
                index.topics.insert(st.name.clone(), position.offset);
            }
            // Readable first, then delivered, in offset order: the topic's
            // lock is held across both.
            self.sink.deliver(s.publication);
            drop(st);
            let _ = s.reply.send(Ok(Published {
                position,
                duplicate: false,
            }));
        }
        for (reply, position) in repeats {
            let _ = reply.send(Ok(Published {
                position,
                duplicate: true,
            }));
        }
    }

    /// Appends and, under the every-publish policy, syncs; on failure the
    /// segment is cut back to where it was.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let before = self.active.len;
        let result = self.active.append(bytes).and_then(|()| match &self.syncer {
            Some(syncer) => {
                syncer.wrote();
                Ok(())
            }
            None => self.active.sync(),
        });
        if result.is_err() && self.active.len != before {
            // Written but not synced: take the records back, or a restart
            // would read publications whose publishers were told they failed.
            match self.active.truncate(before) {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot cut a failed write from the log; refusing publishes until a restart");
                    self.broken = Some(format!(
                        "the log could not cut a failed write ({e}); restart the gateway"
                    ));
                }
            }
        }
        result
    }

    /// Seals the active segment and starts the next with a checkpoint of
    /// every topic, then drops segments no history needs.
    fn roll(&mut self) {
        let number = self.active.number + 1;
        let started = self
            .active
            .sync()
            .and_then(|()| Active::create(&self.dir, number));
        let mut next = match started {
            Ok(a) => a,
            Err(e) => {
                // Kept appending to the current segment; retried next turn.
                tracing::error!(error = %e, "cannot start a new log segment");
                return;
            }
        };
        let mut buf = Vec::new();
        for log in self.table.all() {
            let st = lock(&log);
            if st.history.latest() > 0 {
                record::put_checkpoint(&mut buf, &st.name, &st.epoch, st.history.latest());
            }
        }
        if let Err(e) = next.append(&buf).and_then(|()| next.sync()) {
            tracing::error!(error = %e, "cannot write the checkpoint of a new log segment");
            let _ = std::fs::remove_file(segment::path(&self.dir, number));
            return;
        }
        if let Some(syncer) = &self.syncer {
            match next.handle() {
                Ok(f) => syncer.replace(f),
                Err(e) => {
                    tracing::error!(error = %e, "cannot hand the new log segment to the sync thread");
                    let _ = std::fs::remove_file(segment::path(&self.dir, number));
                    return;
                }
            }
        }
        self.active = next;
        self.segments.push(SegmentIndex {
            number,
            ..SegmentIndex::default()
        });
        self.retention();
    }

    /// Deletes the oldest sealed segments whose every publication is past
    /// its topic's history (by count, age or bytes).
    fn retention(&mut self) {
        let now = crate::now_ms();
        let sealed = self.segments.len().saturating_sub(1);
        let mut gone = 0;
        for index in &self.segments[..sealed] {
            let needed = index.topics.iter().any(|(topic, newest)| {
                self.table.get(topic).is_some_and(|log| {
                    let mut st = lock(&log);
                    st.history.trim(now);
                    st.history.oldest_kept() <= *newest
                })
            });
            if needed {
                break;
            }
            let path = segment::path(&self.dir, index.number);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(segment = %path.display(), error = %e, "cannot delete an expired log segment");
                break;
            }
            tracing::debug!(segment = %path.display(), "deleted an expired log segment");
            gone += 1;
        }
        self.segments.drain(..gone);
    }
}
