//! The storage seam: every file and directory operation the log performs goes through
//! [`Storage`] and [`StorageFile`]. [`FsStorage`] is the real file system; a simulated,
//! crash-injecting implementation can stand behind the same traits. Every call fails with a
//! [`StoreError`], which says in its type whether the operating system, a fleet's fencing or a
//! database statement failed.

use std::any::Any;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Deref;
use std::path::Path;

pub use crate::error::{StoreError, StoreResult};

/// Mode of every file the log creates: owner read and write only, since files hold user ids.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a log directory the log creates.
pub const DIR_MODE: u32 = 0o700;
/// The lock file's name, defined with every other name in a log directory.
pub use crate::layout::LOCK_FILE;

/// Directory operations, and the way to files.
pub trait Storage: Send + Sync + Debug {
    /// Creates `dir` and any missing parents with [`DIR_MODE`]. Not an error if it exists.
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()>;
    /// Whether `dir` exists and is a directory.
    fn is_dir(&self, dir: &Path) -> StoreResult<bool>;
    /// The names of the entries in `dir`.
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>>;
    /// Creates a new file (failing if it exists) with [`FILE_MODE`], open for reading and writing.
    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>>;
    /// Opens an existing file, for reading and, if `write`, writing.
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> StoreResult<()>;
    /// Removes an empty directory. Only an import ([`import::import_runs`](crate::import::import_runs)) needs it, to clean up
    /// after itself; the default refuses with [`io::ErrorKind::Unsupported`].
    ///
    /// [`import::import_runs`]: crate::import::import_runs
    fn remove_dir(&self, dir: &Path) -> StoreResult<()> {
        Err(StoreError::new(
            io::ErrorKind::Unsupported,
            format!("this storage cannot remove the directory {}", dir.display()),
        ))
    }
    /// What the entry at `path` is, following symbolic links, without opening it: readers
    /// open only regular files, so that a FIFO or a device named like a log file can never
    /// block them. The default says every entry is a regular file (a storage that holds
    /// nothing else).
    fn entry_kind(&self, path: &Path) -> StoreResult<EntryKind> {
        let _ = path;
        Ok(EntryKind::File)
    }
    /// Makes the directory's entries (creates, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> StoreResult<()>;
    /// Takes the directory's exclusive lock, held until the returned guard is dropped. (With
    /// [`FsStorage`] it is a `flock` on the lock file. A child process forked while the lock is
    /// held shares it until the child calls exec, which closes the file: Rust opens files
    /// close-on-exec. So a lock its own process holds is tried again for up to
    /// [`LOCK_OWN_PROCESS_WAIT`](crate::limits::LOCK_OWN_PROCESS_WAIT) before it is reported
    /// held: a handle dropped while another thread spawns a process does not fail a reopen.)
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError>;
}

/// What a directory entry is ([`Storage::entry_kind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file, or a symbolic link to one.
    File,
    /// Nothing: the name is gone (removed since the directory was listed).
    Missing,
    /// Anything else, in words: "a directory", "a FIFO", "a symbolic link to nothing", ...
    Other(String),
}

/// Operations on one open file.
#[allow(clippy::len_without_is_empty)] // a file's length is a storage call, not a collection's size
pub trait StorageFile: Send + Sync + Debug {
    /// Reads at `offset`; may return fewer bytes than asked, and 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize>;
    /// Writes at `offset`; may write fewer bytes than given.
    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize>;
    /// The file's length.
    fn len(&self) -> StoreResult<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> StoreResult<()>;
    /// Makes the file's data, and the metadata needed to read it back, durable (fdatasync).
    fn sync_data(&self) -> StoreResult<()>;
    /// Makes the file's data and all its metadata durable (fsync).
    fn sync_all(&self) -> StoreResult<()>;
    /// The whole file. The default reads it; [`FsStorage`] maps it.
    fn read_all(&self) -> StoreResult<FileBytes> {
        read_to_vec(self).map(FileBytes::Owned)
    }
}

/// A plain open file is a storage file too: positional I/O through the platform's calls
/// (`pread`/`pwrite` on Unix, `ReadFile`/`WriteFile` at an offset on Windows), so that
/// [`write_all_at`] and [`read_exact_at`] serve a benchmark's or a tool's own files as well.
impl StorageFile for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        Ok(platform::read_at(self, buf, offset)?)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        Ok(platform::write_at(self, buf, offset)?)
    }
    fn len(&self) -> StoreResult<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> StoreResult<()> {
        Ok(File::set_len(self, len)?)
    }
    fn sync_data(&self) -> StoreResult<()> {
        Ok(File::sync_data(self)?)
    }
    fn sync_all(&self) -> StoreResult<()> {
        Ok(File::sync_all(self)?)
    }
}

/// A whole file's bytes: mapped, or read into memory.
#[derive(Debug)]
pub enum FileBytes {
    /// A read-only memory map.
    Mapped(memmap2::Mmap),
    /// Bytes read into memory.
    Owned(Vec<u8>),
    /// Bytes a store holds and shares with its readers (a database's part, downloaded once),
    /// handed out without a copy.
    Shared(std::sync::Arc<Vec<u8>>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
            FileBytes::Shared(v) => v,
        }
    }
}

/// Reads a whole file through [`StorageFile::read_at`], retrying short reads.
pub fn read_to_vec(file: &(impl StorageFile + ?Sized)) -> StoreResult<Vec<u8>> {
    let len = usize::try_from(file.len()?)
        .map_err(|_| StoreError::new(io::ErrorKind::Other, "file too large"))?;
    let mut buf = vec![0u8; len];
    read_exact_at(file, &mut buf, 0)?;
    Ok(buf)
}

/// Fills `buf` from `offset`, retrying short reads; an early end of file is an error.
pub fn read_exact_at(
    file: &(impl StorageFile + ?Sized),
    buf: &mut [u8],
    offset: u64,
) -> StoreResult<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(StoreError::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended at byte {} while reading", offset + done as u64),
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`, retrying short writes. A write that makes no progress is an
/// error ([`io::ErrorKind::WriteZero`]).
pub fn write_all_at(
    file: &(impl StorageFile + ?Sized),
    buf: &[u8],
    offset: u64,
) -> StoreResult<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.write_at(&buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A held directory lock; dropping it releases the lock.
pub struct DirLock(#[allow(dead_code)] Box<dyn Any + Send + Sync>);

impl DirLock {
    /// Wraps whatever keeps the lock held.
    pub fn new(guard: impl Any + Send + Sync) -> DirLock {
        DirLock(Box::new(guard))
    }
}

impl Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirLock")
    }
}

/// Why [`Storage::lock`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Another holder has the lock; its pid, if it could be read.
    Held(Option<u32>),
    /// The lock could not be taken: the lock file could not be opened or locked, the
    /// database failed, or (a fleet's log) the instance was taken over.
    Io(StoreError),
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage {
    /// When set, [`StorageFile::read_all`] maps a file (memmap2) instead of reading it into
    /// memory: faster for offline replay of large logs, but a disk read error while mapped kills
    /// the process with SIGBUS instead of returning an error. [`inspect::read_only`](crate::inspect::read_only) sets it; a
    /// read-write open does not, so a gateway gets a typed error it can report.
    ///
    /// [`inspect::read_only`]: crate::inspect::read_only
    pub mmap: bool,
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        // Windows: the directory inherits its parent's access control list.
        Ok(builder.create(dir)?)
    }

    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        match fs::metadata(dir) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        let file = options.open(path)?;
        Ok(Box::new(FsFile {
            file,
            mmap: self.mmap,
        }))
    }

    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(write);
        // Without blocking, so that a FIFO put in place of a checked file cannot hang the
        // open; then only a regular file is kept (O_NONBLOCK changes nothing for one).
        // (Windows has no FIFO in a directory: its pipes live in their own namespace.)
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let file = options.open(path)?;
        if !file.metadata()?.is_file() {
            return Err(StoreError::new(
                io::ErrorKind::InvalidInput,
                "not a regular file: only regular files are read",
            ));
        }
        Ok(Box::new(FsFile {
            file,
            mmap: self.mmap,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        Ok(platform::rename(from, to)?)
    }

    fn remove(&self, path: &Path) -> StoreResult<()> {
        Ok(fs::remove_file(path)?)
    }

    fn remove_dir(&self, dir: &Path) -> StoreResult<()> {
        Ok(fs::remove_dir(dir)?)
    }

    fn entry_kind(&self, path: &Path) -> StoreResult<EntryKind> {
        let followed = match fs::metadata(path) {
            Ok(m) if m.is_file() => return Ok(EntryKind::File),
            Ok(m) => m.file_type(),
            Err(e) => {
                return match fs::symlink_metadata(path) {
                    Ok(link) if link.file_type().is_symlink() => {
                        Ok(EntryKind::Other(if e.kind() == io::ErrorKind::NotFound {
                            "a symbolic link to nothing".to_string()
                        } else {
                            format!("a symbolic link that does not resolve ({e})")
                        }))
                    }
                    Err(gone) if gone.kind() == io::ErrorKind::NotFound => Ok(EntryKind::Missing),
                    _ => Err(e.into()),
                };
            }
        };
        Ok(EntryKind::Other(platform::describe(&followed).to_string()))
    }

    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        Ok(platform::sync_dir(dir)?)
    }

    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        let mut file = options.open(&path).map_err(|e| LockError::Io(e.into()))?;
        let waited_since = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    let pid = holder_pid(&file);
                    // Held by this process: another handle (for good), or a child another
                    // thread forked and has not yet exec'd, which holds a copy of the lock for
                    // microseconds; so wait a little before saying it is held.
                    if pid == Some(std::process::id())
                        && waited_since.elapsed() < crate::limits::LOCK_OWN_PROCESS_WAIT
                    {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    return Err(LockError::Held(pid));
                }
                Err(fs::TryLockError::Error(e)) => return Err(LockError::Io(e.into())),
            }
        }
        // The pid is only a hint for the error message of the next opener; the lock itself is
        // the flock, which the kernel drops when this process dies, so no sync is needed.
        file.set_len(0).map_err(|e| LockError::Io(e.into()))?;
        write!(file, "{}", std::process::id()).map_err(|e| LockError::Io(e.into()))?;
        Ok(DirLock::new(file))
    }
}

/// The pid the lock file's holder wrote into it, if it can be read.
fn holder_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = platform::read_at(file, &mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

#[derive(Debug)]
struct FsFile {
    file: File,
    mmap: bool,
}

impl StorageFile for FsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        Ok(platform::read_at(&self.file, buf, offset)?)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        Ok(platform::write_at(&self.file, buf, offset)?)
    }
    fn len(&self) -> StoreResult<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> StoreResult<()> {
        Ok(self.file.set_len(len)?)
    }
    fn sync_data(&self) -> StoreResult<()> {
        Ok(self.file.sync_data()?)
    }
    fn sync_all(&self) -> StoreResult<()> {
        Ok(self.file.sync_all()?)
    }
    fn read_all(&self) -> StoreResult<FileBytes> {
        // Windows: a mapped file cannot be removed or replaced while the map lives, and a
        // reader's map would make a gateway's compaction fail; so a file is always read there.
        if !self.mmap || cfg!(windows) || self.len()? == 0 {
            return read_to_vec(self).map(FileBytes::Owned);
        }
        // SAFETY: a map is undefined behaviour if the mapped bytes change or the file shrinks
        // under it. The log never changes or shortens a segment in place: it only appends past
        // the end (outside the map) and replaces whole files by renaming a copy over them, which
        // leaves the mapped inode as it was.
        let map = unsafe { memmap2::Mmap::map(&self.file)? };
        Ok(FileBytes::Mapped(map))
    }
}

/// What differs between the platforms: positional I/O, a rename that is durable, a directory
/// sync, the kinds of entries.
#[cfg(unix)]
mod platform {
    use std::fs::{self, File, FileType};
    use std::io;
    use std::os::unix::fs::{FileExt, FileTypeExt};
    use std::path::Path;

    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        file.write_at(buf, offset)
    }

    /// `rename(2)`: atomic; durable once the directory is synced.
    pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    /// `fsync(2)` of the directory: its entries (created, renamed, removed) are durable.
    /// macOS: the standard library's `sync_all` is `fcntl(F_FULLFSYNC)`, which also empties
    /// the drive's cache.
    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    pub fn describe(kind: &FileType) -> &'static str {
        if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        }
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::{File, FileType};
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::FileExt;
    use std::path::Path;

    use windows_sys::Win32::Storage::FileSystem::{
        MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH, MoveFileExW,
    };

    /// `ReadFile` at an offset (it moves the handle's position, which nothing here uses).
    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.seek_read(buf, offset)
    }

    pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        file.seek_write(buf, offset)
    }

    fn wide(path: &Path) -> Vec<u16> {
        path.as_os_str().encode_wide().chain(Some(0)).collect()
    }

    /// `MoveFileExW` with `MOVEFILE_WRITE_THROUGH`: it returns once the rename is on the
    /// disk, so a rename is durable by itself (Windows has no directory sync to follow it).
    /// A directory renamed over an empty one (an import's new log over an empty target)
    /// removes that one first, as `MoveFileExW` replaces files only: not atomic there, unlike
    /// `rename(2)`.
    pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
        if from.is_dir() && to.is_dir() {
            std::fs::remove_dir(to)?;
        }
        let (from, to) = (wide(from), wide(to));
        // SAFETY: both are NUL-terminated wide strings that live across the call.
        let done = unsafe {
            MoveFileExW(
                from.as_ptr(),
                to.as_ptr(),
                MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
            )
        };
        if done == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Nothing: Windows cannot flush a directory (`FlushFileBuffers` refuses a directory
    /// handle). NTFS keeps its metadata in a journal written in order: a file's
    /// `FlushFileBuffers` (each segment's and snapshot's sync) writes it up to that point,
    /// the file's creation included, and a rename here is write-through. A removal may be
    /// undone by a power cut, which the reader tolerates (a segment a compaction covered).
    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ))
        }
    }

    pub fn describe(kind: &FileType) -> &'static str {
        if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        }
    }
}
