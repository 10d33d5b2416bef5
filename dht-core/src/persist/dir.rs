//! The data directory itself: created when missing, and refused, with an
//! error naming what is there instead, when it is a file, a link to nothing
//! or a loop of links.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::PersistError;

/// Creates `dir` if missing and checks it is a directory.
pub(super) fn prepare_dir(dir: &Path) -> Result<(), PersistError> {
    if let Err(e) = fs::create_dir_all(dir) {
        return Err(match e.kind() {
            // A link to nothing exists but cannot be created through.
            io::ErrorKind::AlreadyExists if dangles(dir) => match fs::read_link(dir) {
                Ok(target) => PersistError::DanglingLink {
                    path: dir.to_owned(),
                    target: link_target(dir, target),
                },
                Err(e) => PersistError::from_io(dir, e),
            },
            // So is a link that leads back to itself (a -> b -> a): the
            // kernel's ELOOP when following it, not "not a directory".
            io::ErrorKind::AlreadyExists if loops(dir) => PersistError::LinkLoop {
                path: dir.to_owned(),
                target: fs::read_link(dir).map_or_else(|_| dir.to_owned(), |t| link_target(dir, t)),
            },
            // create_dir_all reports a regular file at `dir` this way.
            io::ErrorKind::AlreadyExists => PersistError::NotADirectory {
                path: dir.to_owned(),
            },
            _ => PersistError::from_io(dir, e),
        });
    }
    let meta = fs::metadata(dir).map_err(|e| PersistError::from_io(dir, e))?;
    if !meta.is_dir() {
        return Err(PersistError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

/// Where the link `link` points, read as the kernel reads it: a relative
/// target is relative to the link's directory.
fn link_target(link: &Path, target: PathBuf) -> PathBuf {
    link.parent().map_or(target.clone(), |p| p.join(&target))
}

/// Whether `path` is a symbolic link that, followed link by link, never
/// reaches anything else: 40 links in a row, Linux's own limit (the kernel's
/// ELOOP has no stable `io::ErrorKind` to test instead).
fn loops(path: &Path) -> bool {
    let mut at = path.to_owned();
    for _ in 0..40 {
        match fs::read_link(&at) {
            Ok(target) => at = link_target(&at, target),
            Err(_) => return false,
        }
    }
    true
}

/// Whether `path` is a symbolic link whose target does not exist (a loop
/// or an unreadable target is another error, reported as such).
fn dangles(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && fs::metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}
