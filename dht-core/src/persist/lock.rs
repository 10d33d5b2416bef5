//! The data directory's lock: an exclusive `flock` on `DIR/LOCK`, held as
//! long as the [`DirLock`] lives and released by the OS when the process
//! dies, so a node killed with SIGKILL never leaves a stale lock behind. It
//! is taken before the data file is touched, so a second process gets
//! [`PersistError::Locked`] instead of racing the first one's writes. The
//! holder's pid is written into the file for whoever investigates.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use fs4::FileExt;

use super::error::PersistError;

pub const LOCK_FILE: &str = "LOCK";

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, PersistError> {
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
                })
            }
            Err(fs4::TryLockError::Error(e)) => return Err(PersistError::from_io(&path, e)),
        }
        // The pid is a courtesy for humans; failing to write it is harmless.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}
