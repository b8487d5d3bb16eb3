//! Start-up: every segment read back into the topic table, oldest first;
//! a torn or corrupt tail cut (and logged) where reading stopped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::record::Record;
use super::segment::{self, MAGIC};
use super::DiskError;
use crate::broker::dedupe::DedupeWindow;
use crate::broker::topics::{lock, TopicTable};
use crate::wire::SharedPublication;

/// What one segment holds: for each topic, the newest offset in it. A
/// segment may go once every topic's history has moved past those.
#[derive(Debug, Default)]
pub struct SegmentIndex {
    /// The segment's number.
    pub number: u64,
    /// Newest offset per topic.
    pub topics: HashMap<Arc<str>, u64>,
}

/// What start-up found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Every segment kept, oldest first; the last is appended to next.
    pub segments: Vec<SegmentIndex>,
    /// The last segment's length, when it can be appended to.
    pub last_len: Option<u64>,
    /// Publications read back.
    pub publications: u64,
    /// Records skipped because their offset was already read.
    pub repeated: u64,
}

/// Reads every segment of `dir` into `table`.
pub fn replay(dir: &Path, table: &TopicTable, window: DedupeWindow) -> Result<Replayed, DiskError> {
    let io = |source| DiskError::Io {
        path: dir.to_owned(),
        source,
    };
    let numbers = segment::list(dir).map_err(io)?;
    let mut out = Replayed::default();
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment::path(dir, number);
        let mut index = SegmentIndex {
            number,
            ..SegmentIndex::default()
        };
        let scan = segment::scan(&path, |record| {
            apply(table, window, record, &mut index, &mut out)
        })
        .map_err(|source| DiskError::Io {
            path: path.clone(),
            source,
        })?;
        let last = i + 1 == numbers.len();
        if let Some(error) = &scan.error {
            let cut = scan.file_len - scan.valid_len;
            if last {
                tracing::warn!(segment = %path.display(), at = scan.valid_len, cut_bytes = cut, %error,
                    "cutting a torn tail of the log (a write the crash interrupted; it was never acknowledged under fsync = every publish)");
            } else {
                tracing::error!(segment = %path.display(), at = scan.valid_len, cut_bytes = cut, %error,
                    "cutting a corrupt segment of the log where it stops being readable; clients behind the cut resume with recovered: false");
            }
            if scan.valid_len < MAGIC.len() as u64 {
                std::fs::remove_file(&path).map_err(|source| DiskError::Io {
                    path: path.clone(),
                    source,
                })?;
                continue;
            }
            segment::cut(&path, scan.valid_len).map_err(|source| DiskError::Io {
                path: path.clone(),
                source,
            })?;
        }
        if last {
            out.last_len = Some(scan.valid_len);
        }
        out.segments.push(index);
    }
    Ok(out)
}

fn apply(
    table: &TopicTable,
    window: DedupeWindow,
    record: Record,
    index: &mut SegmentIndex,
    out: &mut Replayed,
) {
    match record {
        Record::Publication(p, msg_id) => {
            let log = table.get_or_create(&p.topic, p.offset.saturating_sub(1), || p.epoch.clone());
            let mut st = lock(&log);
            let latest = st.history.latest();
            if *st.epoch != p.epoch || p.offset > latest + 1 {
                // Another epoch, or offsets missing before this one (a cut
                // segment): the history starts again here, and positions
                // before it are expired, never silently skipped.
                *st = table.fresh(st.name.clone(), p.epoch.clone(), p.offset.saturating_sub(1));
            } else if p.offset <= latest {
                out.repeated += 1;
                return;
            }
            let name = st.name.clone();
            let offset = p.offset;
            st.append(
                Arc::new(SharedPublication::new(p)),
                msg_id.as_deref(),
                window,
            );
            index.topics.insert(name, offset);
            out.publications += 1;
        }
        Record::Checkpoint {
            topic,
            epoch,
            latest,
        } => {
            let log = table.get_or_create(&topic, latest, || epoch.clone());
            let mut st = lock(&log);
            if *st.epoch != epoch || latest > st.history.latest() {
                *st = table.fresh(st.name.clone(), epoch, latest);
            }
        }
    }
}
