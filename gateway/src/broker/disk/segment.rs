//! Segment files: `NNNNNNNNNNNNNNNN.seg` in the data directory, numbered in
//! the order they were written, each a magic header then records.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::{self, Record, RecordError};

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"LGSEG1\r\n";
const SUFFIX: &str = ".seg";

/// The path of segment `number` in `dir`.
pub fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016}{SUFFIX}"))
}

/// The numbers of the segments in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(n) = stem.parse::<u64>() {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// What reading a segment found.
#[derive(Debug)]
pub struct Scan {
    /// Bytes up to the end of the last good record.
    pub valid_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// Why reading stopped before the end, if it did.
    pub error: Option<RecordError>,
}

/// Reads every good record of segment `path` in order, stopping at the
/// first that is torn, fails its checksum or does not decode.
pub fn scan(path: &Path, mut each: impl FnMut(Record)) -> io::Result<Scan> {
    let bytes = std::fs::read(path)?;
    let file_len = bytes.len() as u64;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        let error = if MAGIC.starts_with(&bytes) {
            RecordError::Truncated
        } else {
            RecordError::Malformed("not a livegate segment (bad magic)")
        };
        return Ok(Scan {
            valid_len: 0,
            file_len,
            error: Some(error),
        });
    }
    let mut at = MAGIC.len();
    let mut error = None;
    while at < bytes.len() {
        match record::read(&bytes[at..]) {
            Ok((r, n)) => {
                each(r);
                at += n;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok(Scan {
        valid_len: at as u64,
        file_len,
        error,
    })
}

/// The segment being appended to.
pub struct Active {
    /// Its number.
    pub number: u64,
    file: File,
    /// Bytes written and not cut.
    pub len: u64,
    /// Whether bytes were written since the last sync.
    pub dirty: bool,
}

impl Active {
    /// Creates segment `number` in `dir` with its header, synced with the
    /// directory entry so the file survives a crash.
    pub fn create(dir: &Path, number: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path(dir, number))?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(Self {
            number,
            file,
            len: MAGIC.len() as u64,
            dirty: false,
        })
    }

    /// Reopens segment `number`, `len` bytes long, to append after it.
    pub fn reopen(dir: &Path, number: u64, len: u64) -> io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path(dir, number))?;
        Ok(Self {
            number,
            file,
            len,
            dirty: false,
        })
    }

    /// Appends `bytes`; on failure cuts what part of them was written, so
    /// the segment still ends with a whole record.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            // Best effort: if the cut fails too, the start-up scan cuts the
            // torn record (and whatever follows it) by its checksum.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// A second handle on the segment's file (for syncing elsewhere).
    pub fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Cuts the segment back to `len` bytes.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Cuts segment `path` to `len` bytes and syncs it.
pub fn cut(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}
