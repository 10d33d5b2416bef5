//! The data directory's lock: an exclusive `flock` on `DIR/LOCK`, held as
//! long as the [`DirLock`] lives and released by the OS when the process
//! dies, so a node killed with SIGKILL never leaves a stale lock behind. It
//! is taken before the data file is touched, so a second process gets
//! [`PersistError::Locked`] instead of racing the first one's writes. The
//! holder's pid is written into the file for whoever investigates.
//!
//! A second node of this same process is refused by the same `flock` (each
//! open of the file is its own lock holder), but "another process" would
//! send its operator looking for one that does not exist. So the process
//! also keeps a registry of the directories it has locked, by device and
//! inode (what `flock` goes by: a symlink, `..` or a bind mount reach the
//! same directory), and says "already open in this process" for those.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fs4::FileExt;

use super::error::PersistError;

pub const LOCK_FILE: &str = "LOCK";

/// A directory as the kernel knows it: (device, inode).
type DirIdentity = (u64, u64);

/// Directories locked by this process → the pid that took the lock. The pid
/// tells a forked child (which inherits this map, but holds none of the
/// parent's locks as its own) that an entry is not its.
static OPEN_DIRS: Mutex<BTreeMap<DirIdentity, u32>> = Mutex::new(BTreeMap::new());

fn open_dirs() -> MutexGuard<'static, BTreeMap<DirIdentity, u32>> {
    OPEN_DIRS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    /// Taken (closed, so unlocked) in `drop`, under the registry's mutex.
    file: Option<File>,
    dir: DirIdentity,
    pid: u32,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // The flock and the entry go together: no other thread of this
        // process can find the directory registered but free, or free of
        // the entry but still locked.
        let mut open = open_dirs();
        drop(self.file.take());
        if open.get(&self.dir) == Some(&self.pid) {
            open.remove(&self.dir);
        }
    }
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, PersistError> {
        // `dir` exists by now (`prepare_dir`).
        let meta = std::fs::metadata(dir).map_err(|e| PersistError::from_io(dir, e))?;
        let identity = (meta.dev(), meta.ino());
        let pid = std::process::id();
        // Held across the flock, so that two threads opening one directory
        // at once see each other here rather than in the flock.
        let mut open = open_dirs();
        if open.get(&identity) == Some(&pid) {
            return Err(PersistError::Locked {
                path: dir.to_owned(),
                in_this_process: true,
            });
        }
        let path = dir.join(LOCK_FILE);
        // No truncate here: the file may belong to a live holder.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PersistError::from_io(&path, e))?;
        // Called through the trait: std's own `File::try_lock` (Rust 1.89)
        // would shadow it under newer compilers.
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(PersistError::Locked {
                    path: dir.to_owned(),
                    in_this_process: false,
                })
            }
            Err(fs4::TryLockError::Error(e)) => return Err(PersistError::from_io(&path, e)),
        }
        open.insert(identity, pid);
        drop(open);
        // The pid is a courtesy for humans; failing to write it is harmless.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{pid}");
        Ok(DirLock {
            file: Some(file),
            dir: identity,
            pid,
        })
    }
}
