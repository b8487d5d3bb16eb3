//! The data directory: created if missing, locked for one gateway, and
//! holding the store's epoch.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory cannot be created or read.
    #[error("cannot use data directory {path}: {source}")]
    Access {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "data directory {path} is in use by another livegate (lock held on {lock}); \
         give each gateway its own --data-dir"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
}

/// A locked data directory; the lock lasts as long as this value (and is
/// released by the kernel if the process dies).
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    _lock: File,
}

const LOCK: &str = "LOCK";
const EPOCH: &str = "EPOCH";

impl DataDir {
    /// Creates `path` if missing and takes its lock.
    pub fn open(path: &Path) -> Result<Self, DirError> {
        let access = |source| DirError::Access {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(access)?;
        let lock_path = path.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(access)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DirError::Locked {
                    path: path.to_owned(),
                    lock: lock_path,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(access(e)),
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The store's epoch, made and saved on first use: topics' epochs
    /// derive from it, so they change when the directory is emptied.
    pub fn epoch(&self) -> Result<String, DirError> {
        let access = |source| DirError::Access {
            path: self.path.clone(),
            source,
        };
        let file = self.path.join(EPOCH);
        match std::fs::read_to_string(&file) {
            Ok(text) if valid_epoch(text.trim()) => return Ok(text.trim().to_owned()),
            Ok(_) => {
                return Err(access(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold an epoch", file.display()),
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(access(e)),
        }
        let epoch = crate::token::new_epoch();
        // Written aside and renamed: a crash leaves either no file or a whole one.
        let tmp = self.path.join("EPOCH.tmp");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(epoch.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            File::open(&self.path)?.sync_all()
        };
        write().map_err(access)?;
        Ok(epoch)
    }
}

fn valid_epoch(s: &str) -> bool {
    !s.is_empty() && s.len() < 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = crate::broker::disk::tests::TempDir::new("lock");
        let first = DataDir::open(dir.path()).unwrap();
        let second = DataDir::open(dir.path()).unwrap_err();
        assert!(matches!(second, DirError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("in use by another livegate"));
        let epoch = first.epoch().unwrap();
        drop(first);
        let again = DataDir::open(dir.path()).unwrap();
        assert_eq!(again.epoch().unwrap(), epoch, "the epoch is kept");
    }
}
