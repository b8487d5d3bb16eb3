//! The disk broker against real files in a temporary directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livegate_core::protocol::Position;
use livegate_core::topic::{Namespace, NamespaceOptions, Namespaces};
use livegate_core::Payload;

use super::*;
use crate::broker::topics::lock;
use crate::wire::SharedPub;

/// A directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "livegate-{name}-{}-{}",
            std::process::id(),
            crate::token::random_token(8)
        ));
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl Sink for Recorder {
    fn deliver(&self, p: SharedPub) {
        lock(&self.0).push(p.publication.offset);
    }
}

fn options(dir: &Path, segment_bytes: u64) -> DiskOptions {
    DiskOptions {
        dir: dir.to_owned(),
        fsync: FsyncPolicy::Always,
        segment_bytes,
    }
}

fn open_with(
    dir: &Path,
    segment_bytes: u64,
    namespaces: Namespaces,
) -> (DiskBroker, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let b = DiskBroker::open(
        &options(dir, segment_bytes),
        namespaces,
        DedupeWindow::default(),
        Arc::new(Stats::default()),
        rec.clone(),
    )
    .unwrap();
    (b, rec)
}

fn open(dir: &Path) -> DiskBroker {
    open_with(dir, 64 << 20, Namespaces::default()).0
}

fn publish(b: &DiskBroker, topic: &str, n: u64, msg_id: Option<&str>) -> Published {
    let req = PublishRequest {
        topic,
        event: None,
        data: Payload::from_json(format!("{{\"n\":{n}}}")).unwrap(),
        msg_id: msg_id.map(str::to_owned),
    };
    block(b.publish(req)).unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn offsets(b: &DiskBroker, topic: &str, since: Option<&Position>) -> Result<Vec<u64>, ReadError> {
    let page = block(b.read(topic, since, 100_000))?;
    Ok(page
        .publications
        .iter()
        .map(|p| p.publication.offset)
        .collect())
}

fn position(b: &DiskBroker, topic: &str) -> Position {
    block(b.position(topic)).unwrap()
}

fn segments(dir: &Path) -> Vec<u64> {
    segment::list(dir).unwrap()
}

#[test]
fn a_reopened_log_has_the_same_epochs_history_and_dedupe_window() {
    let dir = TempDir::new("reopen");
    let (b, rec) = open_with(dir.path(), 64 << 20, Namespaces::default());
    for n in 1..=5 {
        assert_eq!(
            publish(&b, "a", n, Some(&format!("m{n}"))).position.offset,
            n
        );
    }
    publish(&b, "b", 1, None);
    assert_eq!(
        *lock(&rec.0),
        vec![1, 2, 3, 4, 5, 1],
        "delivered once each, in order"
    );
    let before = (position(&b, "a"), position(&b, "b"));
    drop(b);

    let b = open(dir.path());
    assert_eq!((position(&b, "a"), position(&b, "b")), before);
    assert_eq!(offsets(&b, "a", None).unwrap(), vec![1, 2, 3, 4, 5]);
    let at_2 = Position {
        epoch: before.0.epoch.clone(),
        offset: 2,
    };
    assert_eq!(offsets(&b, "a", Some(&at_2)).unwrap(), vec![3, 4, 5]);
    let again = publish(&b, "a", 3, Some("m3"));
    assert!(again.duplicate, "the dedupe window survives a restart");
    assert_eq!(again.position.offset, 3);
    assert_eq!(publish(&b, "a", 6, None).position.offset, 6);
    // A topic never published keeps its epoch across a restart too, and
    // topics' epochs differ.
    let empty = position(&b, "never");
    assert_ne!(empty.epoch, before.0.epoch);
    drop(b);
    assert_eq!(position(&open(dir.path()), "never"), empty);
}

#[test]
fn a_torn_tail_is_cut_and_what_precedes_it_is_kept() {
    let dir = TempDir::new("torn");
    let b = open(dir.path());
    for n in 1..=3 {
        publish(&b, "t", n, None);
    }
    drop(b);
    let seg = segment::path(dir.path(), segments(dir.path())[0]);
    let good = std::fs::metadata(&seg).unwrap().len();
    // Half a record, as a crash in the middle of a write leaves it.
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut record = Vec::new();
    record::put_checkpoint(&mut record, "t", "x", 9);
    bytes.extend_from_slice(&record[..record.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();

    let b = open(dir.path());
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        good,
        "cut back to the last whole record"
    );
    assert_eq!(offsets(&b, "t", None).unwrap(), vec![1, 2, 3]);
    assert_eq!(publish(&b, "t", 4, None).position.offset, 4);
    drop(b);
    assert_eq!(
        offsets(&open(dir.path()), "t", None).unwrap(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn a_flipped_bit_cuts_the_record_and_everything_after_it() {
    let dir = TempDir::new("flip");
    let b = open(dir.path());
    for n in 1..=4 {
        publish(&b, "t", n, None);
    }
    let epoch = position(&b, "t").epoch;
    drop(b);
    let seg = segment::path(dir.path(), segments(dir.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Four records of one size: flip a byte inside the third's body.
    let size = (bytes.len() - segment::MAGIC.len()) / 4;
    let third = segment::MAGIC.len() + 2 * size + 12;
    bytes[third] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let b = open(dir.path());
    assert_eq!(offsets(&b, "t", None).unwrap(), vec![1, 2]);
    assert_eq!(position(&b, "t"), Position { epoch, offset: 2 });
}

#[test]
fn segments_roll_carry_checkpoints_and_go_when_no_history_needs_them() {
    let dir = TempDir::new("roll");
    let ns = Namespaces::new(
        vec![Namespace {
            prefix: "short.".into(),
            options: NamespaceOptions {
                history_size: 3,
                ..NamespaceOptions::default()
            },
        }],
        NamespaceOptions::default(),
    );
    let (b, _) = open_with(dir.path(), 256, ns.clone());
    for n in 1..=40 {
        publish(&b, "short.t", n, None);
    }
    // Rolls happen after a commit; wait for the writer's turn to end.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while segments(dir.path()).len() > 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let kept = segments(dir.path());
    assert!(kept.len() <= 3, "expired segments deleted: {kept:?}");
    assert!(kept[0] > 1, "the first segment went");
    let before = position(&b, "short.t");
    drop(b);
    let (b, _) = open_with(dir.path(), 256, ns);
    assert_eq!(
        position(&b, "short.t"),
        before,
        "the checkpoint keeps epoch and offset"
    );
    assert_eq!(offsets(&b, "short.t", None).unwrap(), vec![38, 39, 40]);
    let at_10 = Position {
        epoch: before.epoch,
        offset: 10,
    };
    assert!(matches!(
        offsets(&b, "short.t", Some(&at_10)),
        Err(ReadError::Unrecoverable(_))
    ));
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
    let dir = TempDir::new("perm");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = DiskBroker::open(
        &options(&file.join("data"), 1 << 20),
        Namespaces::default(),
        DedupeWindow::default(),
        Arc::new(Stats::default()),
        Arc::new(Recorder::default()),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("cannot use data directory"),
        "{err}"
    );
}

#[test]
fn the_interval_policy_syncs_in_the_background_across_segment_rolls() {
    let dir = TempDir::new("interval");
    let open_interval = || {
        DiskBroker::open(
            &DiskOptions {
                dir: dir.path().to_owned(),
                fsync: FsyncPolicy::Interval(Duration::from_millis(5)),
                segment_bytes: 4096,
            },
            Namespaces::default(),
            DedupeWindow::default(),
            Arc::new(Stats::default()),
            Arc::new(Recorder::default()),
        )
        .unwrap()
    };
    let b = open_interval();
    for n in 1..=200 {
        assert_eq!(publish(&b, "t", n, None).position.offset, n);
    }
    drop(b);
    assert!(segments(dir.path()).len() > 1, "rolled");
    let b = open_interval();
    assert_eq!(
        offsets(&b, "t", None).unwrap(),
        (1..=200).collect::<Vec<_>>()
    );
}
