//! The log directory at open: created if missing, and its entry made durable.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::storage::Storage;

/// Creates `dir` if missing, and syncs the parent of every directory it created and, when it
/// created nothing, the parent of `dir` itself.
///
/// A directory entry is durable only once its parent is synced, and an earlier process may
/// have created the log directory and died before syncing its parent: without the second sync,
/// a power loss could take the whole directory, acknowledged records and all.
///
/// Syncing a directory means opening it for reading, which a parent the process may not read
/// refuses (say one of mode 0711 owned by another user, or 0311): that open or its sync failing
/// with `EACCES` or `EPERM` is logged as a warning naming the parent and the reason, and the
/// open goes on, since the log itself can still be used and the warning says what is at risk.
/// Any other failure (an `EIO` says the disk is failing) is an error.
pub(crate) fn create_dir_durably(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let is_dir = |d: &Path| storage.is_dir(d).at("stat", d);
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next {
        if d.as_os_str().is_empty() || is_dir(d)? {
            break;
        }
        missing.push(d);
        next = d.parent();
    }
    if missing.is_empty() {
        return sync_parent(storage, dir, Created::No);
    }
    storage.create_dir_all(dir).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => Error::NotADirectory {
            path: dir.to_path_buf(),
        },
        _ => Error::io("create directory", dir, e),
    })?;
    for created in missing.iter().rev() {
        sync_parent(storage, created, Created::Yes)?;
    }
    Ok(())
}

/// Syncs the parent of `path`, a directory entry this process just created, renamed into place
/// or removed. A parent this process may not open or sync is a warning, not an error.
pub(crate) fn sync_parent_of_new(storage: &dyn Storage, path: &Path) -> Result<()> {
    sync_parent(storage, path, Created::Yes)
}

/// Whether the open created the directory whose parent it syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Created {
    Yes,
    No,
}

/// Syncs the parent of `child`, making `child`'s entry durable. A parent this process may not
/// open or sync is a warning, not an error.
fn sync_parent(storage: &dyn Storage, child: &Path, created: Created) -> Result<()> {
    let parent = parent_of(child);
    match storage.sync_dir(&parent) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let risk = match created {
                Created::Yes => {
                    "this open created the directory, and a power loss before the file system writes its parent out on its own could take it, with any records in it"
                }
                Created::No => {
                    "if the process that created the directory died before syncing its parent, a power loss before the file system writes that parent out could take the directory, with its records"
                }
            };
            tracing::warn!(
                parent = %parent.display(),
                dir = %child.display(),
                error = %e,
                "cannot sync the parent of {}; going on without it: {risk}",
                child.display()
            );
            Ok(())
        }
        Err(e) => Err(Error::io("sync directory", &parent, e)),
    }
}

/// The directory holding `path`'s entry (`.` for a relative path of one component).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
