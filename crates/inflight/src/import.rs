//! Migration into a new log: runs recorded elsewhere (for example in the JSON checkpoint of the
//! design this crate replaces) written as running runs, all or nothing.
//!
//! [`import::import_runs`](crate::import::import_runs) validates every run before it writes anything, takes the import's lock
//! (so that of two imports started at once, one imports and the other gets [`Error::Locked`]),
//! builds the log in a sibling directory (`DIR.import-tmp/log`), and renames it into place only
//! once every run is durable; on any failure it removes the temporary directory and leaves
//! `DIR` as it was. It never writes into an existing log: importing into a directory that holds
//! one is [`Error::AlreadyExists`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::event::{Event, Generation, Run, UnixMs, shorten, validate_key};
use crate::layout::LOCK_FILE;
use crate::layout::is_log_file;
use crate::log::Log;
use crate::open_dir::sync_parent_of_new;
use crate::options::Options;
use crate::storage::{DirLock, FsStorage, LockError, Storage};

/// Suffix of the sibling directory an import works in: `DIR.import-tmp` for `DIR`. It holds the
/// import's lock file and the log being built, in `DIR.import-tmp/log`.
pub const IMPORT_TMP_SUFFIX: &str = ".import-tmp";

/// The log an import builds, inside its temporary directory.
const IMPORT_LOG_DIR: &str = "log";

/// The latest start time an import accepts, in seconds since the Unix epoch:
/// 9999-12-31T23:59:59Z. Anything later is a unit mix-up (milliseconds or microseconds given as
/// seconds), not a time.
pub const STARTED_AT_SECS_MAX: f64 = 253_402_300_799.0;

/// What [`import::import_runs`](crate::import::import_runs) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// The new log directory.
    pub dir: PathBuf,
    /// How many runs it holds, all running.
    pub imported: usize,
}

/// A start time given in seconds since the Unix epoch as a float (as Python's `time.time()`
/// gives it), in milliseconds, rounded down. A negative, NaN or infinite value, or one after
/// [`STARTED_AT_SECS_MAX`], is [`Error::InvalidInput`] for field `started_at`, naming `key`.
///
/// ```
/// use inflight::UnixMs;
/// use inflight::import::started_at_from_secs;
///
/// assert_eq!(started_at_from_secs("k", 1_764_150_000.1239)?, UnixMs(1_764_150_000_123));
/// assert!(started_at_from_secs("k", -1.0).is_err());
/// assert!(started_at_from_secs("k", f64::NAN).is_err());
/// # Ok::<(), inflight::Error>(())
/// ```
pub fn started_at_from_secs(key: &str, secs: f64) -> Result<UnixMs> {
    let invalid = |reason: String| Error::InvalidInput {
        field: "started_at",
        reason,
        key: Some(shorten(key)),
    };
    if !secs.is_finite() {
        return Err(invalid(format!(
            "is {secs}; it must be a finite number of seconds since the Unix epoch"
        )));
    }
    if secs < 0.0 {
        return Err(invalid(format!(
            "is {secs}, before the Unix epoch; it must be seconds since 1970-01-01"
        )));
    }
    if secs > STARTED_AT_SECS_MAX {
        return Err(invalid(format!(
            "is {secs}, after the year 9999; it must be seconds since the Unix epoch (not milliseconds)"
        )));
    }
    // At most 2.6e14 ms: exact in a f64, and well within a u64.
    Ok(UnixMs((secs * 1000.0).floor() as u64))
}

/// Creates a new log in `dir` holding `runs` as running runs, on the real file system: for
/// migrating the in-flight runs of another store (the JSON checkpoint this crate replaces:
/// on the command line, `inflight import-json FILE DIR`). Each run keeps the generation and
/// start time it is given. Open the log afterwards with [`Log::open`]; its report lists
/// every imported run, with reason `crash` (no shutdown is recorded: the runs were
/// interrupted wherever they came from).
///
/// All or nothing:
///
/// - every run is checked first (the limits of [`crate::limits`], and no key twice), and an
///   invalid one is [`Error::InvalidInput`] naming its key, before anything is written;
/// - `dir` must not exist or be an empty directory: a directory that holds a log, or
///   anything else, is [`Error::AlreadyExists`] and is left untouched (an existing log is
///   never mixed with imported runs);
/// - one import at a time: the import locks `DIR.import-tmp/LOCK` first, and an import
///   started while another holds it fails with [`Error::Locked`] (wait, then open the log
///   the other one made); under the lock `dir` is checked again, so an import that finished
///   meanwhile makes this one [`Error::AlreadyExists`];
/// - the log is built in `DIR.import-tmp/log` (what an interrupted import left there is
///   removed first), every run synced, and renamed to `dir` only then; the temporary
///   directory is removed and the parent synced once for both. On any failure the
///   temporary directory is removed and `dir` is as it was. (If only the final sync of the
///   parent fails, the error says so; the complete log is then in place, but a power loss
///   could still undo the rename.)
///
/// Run it before the gateway starts: the new log is not locked until it is opened.
///
/// ```
/// use inflight::import::import_runs;
/// use inflight::{Generation, Log, Options, Run, UnixMs};
///
/// let parent = tempfile::tempdir()?;
/// let dir = parent.path().join("inflight");
/// let runs = [
///     Run::new("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0", Generation(1), UnixMs(1_764_150_000_000)),
///     Run::new("agent:main:http:c-5", "20261126_2", Generation(1), UnixMs(1_764_150_001_500)),
/// ];
/// let imported = import_runs(&dir, runs, Options::default())?;
/// assert_eq!(imported.imported, 2);
///
/// let opened = Log::open(&dir, Options::default())?;
/// assert_eq!(opened.report.running.len(), 2);
/// // Importing again is refused: the directory holds a log now.
/// assert!(matches!(
///     import_runs(&dir, [], Options::default()),
///     Err(inflight::Error::AlreadyExists { log: true, .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_runs(
    dir: impl AsRef<Path>,
    runs: impl IntoIterator<Item = Run>,
    options: Options,
) -> Result<ImportReport> {
    import_runs_with_storage(Arc::new(FsStorage::default()), dir, runs, options)
}

/// [`import_runs`] through `storage`. The storage must be able to rename and remove a
/// directory ([`Storage::remove_dir`]); [`FsStorage`] can.
pub fn import_runs_with_storage(
    storage: Arc<dyn Storage>,
    dir: impl AsRef<Path>,
    runs: impl IntoIterator<Item = Run>,
    options: Options,
) -> Result<ImportReport> {
    let dir = dir.as_ref();
    options.validate()?;
    let events = validate_runs(runs)?;
    check_target(&*storage, dir)?;
    let tmp = tmp_path(dir)?;
    let lock = lock_import(&*storage, &tmp)?;
    // Checked again under the lock: an import that finished meanwhile is seen here.
    let imported = check_target(&*storage, dir)
        .and_then(|()| build_and_rename(&storage, &tmp, dir, &events, options));
    let cleaned = remove_tmp(&*storage, &tmp, lock);
    match (imported, cleaned) {
        (Err(e), cleaned) => {
            if let Err(cleanup) = cleaned {
                tracing::error!(
                    dir = %tmp.display(),
                    error = %cleanup,
                    "could not remove the directory of the failed import; remove it by hand"
                );
            }
            return Err(e);
        }
        (Ok(()), Err(cleanup)) => {
            // The log is in place; only the scaffolding is left (the next import removes it).
            tracing::warn!(dir = %tmp.display(), error = %cleanup, "could not remove the import's temporary directory");
        }
        (Ok(()), Ok(())) => {}
    }
    // One sync of the parent for the new log's entry and the temporary directory's removal.
    sync_parent_of_new(&*storage, dir)?;
    tracing::info!(dir = %dir.display(), runs = events.len(), "imported runs into a new log");
    Ok(ImportReport {
        dir: dir.to_path_buf(),
        imported: events.len(),
    })
}

/// Takes the import's lock: `DIR.import-tmp/LOCK`, created with its directory. Held by another
/// import (of this process or another) is [`Error::Locked`]. A directory left by an interrupted
/// import holds no lock anyone owns, and is taken over (its contents are removed once the lock
/// is held).
fn lock_import(storage: &dyn Storage, tmp: &Path) -> Result<DirLock> {
    // An import that finishes removes the directory: between its creation here and the lock,
    // it may be gone again. A few tries make that race harmless.
    let mut tries = 0;
    loop {
        storage.create_dir_all(tmp).at("create directory", tmp)?;
        match storage.lock(tmp) {
            Ok(lock) => return Ok(lock),
            Err(LockError::Held(holder_pid)) => {
                return Err(Error::Locked {
                    dir: tmp.to_path_buf(),
                    holder_pid,
                });
            }
            Err(LockError::Io(e)) if e.kind() == io::ErrorKind::NotFound && tries < 8 => {
                tries += 1;
            }
            Err(LockError::Io(e)) => return Err(Error::io("lock", tmp, e)),
        }
    }
}

/// Builds the log in `TMP/log` (what an interrupted import left there removed first), then
/// renames it to `dir`.
fn build_and_rename(
    storage: &Arc<dyn Storage>,
    tmp: &Path,
    dir: &Path,
    events: &[Event],
    options: Options,
) -> Result<()> {
    let log_dir = tmp.join(IMPORT_LOG_DIR);
    remove_leftovers(&**storage, tmp)?;
    write_log(storage.clone(), &log_dir, events, options)?;
    storage.rename(&log_dir, dir).at("rename", &log_dir)
}

/// Every run as a start event, each checked against the limits, no key twice.
fn validate_runs(runs: impl IntoIterator<Item = Run>) -> Result<Vec<Event>> {
    let events: Vec<Event> = runs.into_iter().map(Event::Started).collect();
    let mut keys = HashSet::with_capacity(events.len());
    for event in &events {
        event.validate()?;
        let key = event.key().unwrap_or_default();
        if !keys.insert(key) {
            return Err(Error::InvalidInput {
                field: "key",
                reason: "is given twice; a key has at most one running run".into(),
                key: Some(shorten(key)),
            });
        }
    }
    Ok(events)
}

/// `dir` must be absent or an empty directory.
fn check_target(storage: &dyn Storage, dir: &Path) -> Result<()> {
    if !storage.is_dir(dir).at("stat", dir)? {
        if storage.open(dir, false).is_ok() {
            return Err(Error::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        return Ok(());
    }
    let names = storage.list(dir).at("list", dir)?;
    if names.is_empty() {
        return Ok(());
    }
    Err(Error::AlreadyExists {
        dir: dir.to_path_buf(),
        log: names.iter().any(|n| is_log_file(n)),
    })
}

/// `DIR.import-tmp`, beside `dir`.
fn tmp_path(dir: &Path) -> Result<PathBuf> {
    let Some(name) = dir.file_name() else {
        return Err(Error::InvalidInput {
            field: "dir",
            reason: format!(
                "{} has no final component to import into; name the new log directory",
                dir.display()
            ),
            key: None,
        });
    };
    let mut tmp_name = OsString::from(name);
    tmp_name.push(IMPORT_TMP_SUFFIX);
    Ok(dir.with_file_name(tmp_name))
}

/// Creates the log in `tmp` (which must not exist) and records every start, each synced.
fn write_log(
    storage: Arc<dyn Storage>,
    tmp: &Path,
    events: &[Event],
    options: Options,
) -> Result<()> {
    let opened = Log::open_with_storage(storage, tmp, options)?;
    let log = opened.log;
    for event in events {
        log.record(event.clone())?;
    }
    // Dropped, not closed: a shutdown record would report the runs as interrupted by a clean
    // shutdown of this log, which they were not.
    drop(log);
    Ok(())
}

/// Removes what an interrupted import left in its temporary directory: everything but the lock.
fn remove_leftovers(storage: &dyn Storage, tmp: &Path) -> Result<()> {
    for name in storage.list(tmp).at("list", tmp)? {
        if name != LOCK_FILE {
            remove_entry(storage, &tmp.join(name))?;
        }
    }
    Ok(())
}

/// Removes a file, or a directory of files (the log an import builds).
fn remove_entry(storage: &dyn Storage, path: &Path) -> Result<()> {
    if storage.is_dir(path).at("stat", path)? {
        for name in storage.list(path).at("list", path)? {
            let file = path.join(name);
            storage.remove(&file).at("remove", &file)?;
        }
        storage.remove_dir(path).at("remove directory", path)
    } else {
        storage.remove(path).at("remove", path)
    }
}

/// Removes the temporary directory of an import: what it holds, its lock file (still held, so
/// that no other import starts in it meanwhile), then itself, releasing the lock last. Its
/// parent's sync is the caller's.
///
/// Windows: a file open there (the held lock file) keeps its directory from being removed
/// even once the file is deleted, so the lock is let go of before the directory goes; an
/// import that takes it in that moment finds an empty directory and starts afresh.
fn remove_tmp(storage: &dyn Storage, tmp: &Path, lock: DirLock) -> Result<()> {
    remove_leftovers(storage, tmp)?;
    let lock_file = tmp.join(LOCK_FILE);
    storage.remove(&lock_file).at("remove", &lock_file)?;
    #[cfg(windows)]
    drop(lock);
    let removed = storage.remove_dir(tmp).at("remove directory", tmp);
    #[cfg(not(windows))]
    drop(lock);
    removed
}

/// The shape of a JSON checkpoint, as the messages about a malformed one show it.
const CHECKPOINT_SHAPE: &str = r#"{"KEY": {"session_id": "S", "started_at": SECONDS}, ...}"#;

/// Reads a JSON checkpoint of the design this crate replaces: one JSON object
/// `{key: {"session_id": str, "started_at": seconds}}`. Every run gets generation 1 (the
/// checkpoint has none) and its start time in milliseconds, rounded down
/// ([`started_at_from_secs`]); members other than those two are ignored. Anything else (not
/// UTF-8, not JSON, another shape, a key given twice, a key or a time out of bounds) is
/// [`Error::CheckpointFile`] naming the file and where; a file that cannot be read is
/// [`Error::Io`]. The one reader of the format: the command line's `import-json` and the
/// Python checkpoint class both use it.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("agent_checkpoints.json");
/// std::fs::write(&path, r#"{"agent:main:telegram:dm:4242": {"session_id": "s1", "started_at": 1764150000.5}}"#)?;
/// let runs = inflight::import::read_checkpoint(&path)?;
/// assert_eq!((runs[0].generation, runs[0].started_at_ms), (1, 1_764_150_000_500));
/// std::fs::write(&path, r#"{"k": {"session_id": "a", "started_at": 1}, "k": {"session_id": "b", "started_at": 2}}"#)?;
/// assert!(matches!(inflight::import::read_checkpoint(&path), Err(inflight::Error::CheckpointFile { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_checkpoint(path: &Path) -> Result<Vec<Run>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    checkpoint_from_bytes(&bytes, path)
}

/// [`read_checkpoint`] of bytes already read (standard input, say); `name` is what errors
/// call them.
pub fn checkpoint_from_bytes(bytes: &[u8], name: &Path) -> Result<Vec<Run>> {
    parse_checkpoint(bytes).map_err(|(detail, at)| Error::CheckpointFile {
        path: name.to_path_buf(),
        line: at.map(|a| a.0),
        column: at.map(|a| a.1),
        detail,
    })
}

/// What is wrong with a checkpoint's bytes, and where (line, column) when the JSON breaks.
type CheckpointError = (String, Option<(usize, usize)>);

/// The runs of a checkpoint's bytes. Pure.
fn parse_checkpoint(bytes: &[u8]) -> std::result::Result<Vec<Run>, CheckpointError> {
    use serde::Deserializer;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        (
            format!("not UTF-8 text: an invalid byte at byte {at}"),
            None,
        )
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de
        .deserialize_any(EntriesVisitor)
        .and_then(|entries| de.end().map(|()| entries))
        .map_err(|e| {
            let detail = match e.classify() {
                serde_json::error::Category::Data => {
                    format!("the file must be one JSON object {CHECKPOINT_SHAPE}")
                }
                _ => format!("not valid JSON: {e}"),
            };
            (detail, (e.line() > 0).then(|| (e.line(), e.column())))
        })?;
    let mut seen = HashSet::new();
    let mut runs = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let shape = |what: String| (format!("key {key:?}: {what}"), None);
        if !seen.insert(key.clone()) {
            return Err(shape("the key is given twice".into()));
        }
        validate_key(&key).map_err(|e| shape(e.to_string()))?;
        let object = value.as_object().ok_or_else(|| {
            shape(format!(
                "expected an object {{\"session_id\": \"S\", \"started_at\": SECONDS}}, found {value}"
            ))
        })?;
        let field = |name: &str| {
            object
                .get(name)
                .ok_or_else(|| shape(format!("missing field {name:?}")))
        };
        let session_id = match field("session_id")? {
            serde_json::Value::String(s) => s.clone(),
            other => return Err(shape(format!("session_id must be a string, found {other}"))),
        };
        let secs = match field("started_at")? {
            n @ serde_json::Value::Number(_) => n.as_f64().unwrap_or(f64::NAN),
            other => {
                return Err(shape(format!(
                    "started_at must be a number of seconds since the Unix epoch, found {other}"
                )));
            }
        };
        let started_at = started_at_from_secs(&key, secs).map_err(|e| shape(e.to_string()))?;
        let run = Run::new(key.clone(), session_id, Generation(1), started_at);
        Event::Started(run.clone())
            .validate()
            .map_err(|e| shape(e.to_string()))?;
        runs.push(run);
    }
    Ok(runs)
}

/// The checkpoint's entries in file order, a key given twice kept twice (a JSON map would keep
/// only the last), so that it can be refused.
struct EntriesVisitor;

impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, serde_json::Value)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object mapping each key to its run")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_milliseconds_rounded_down() {
        assert_eq!(started_at_from_secs("k", 0.0).unwrap(), UnixMs(0));
        assert_eq!(started_at_from_secs("k", 1.0009).unwrap(), UnixMs(1_000));
        assert_eq!(
            started_at_from_secs("k", 1_764_150_000.5).unwrap(),
            UnixMs(1_764_150_000_500)
        );
        assert_eq!(
            started_at_from_secs("k", STARTED_AT_SECS_MAX).unwrap(),
            UnixMs(253_402_300_799_000)
        );
        for bad in [-0.001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e15] {
            let e = started_at_from_secs("agent:k", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("started_at") && e.contains("agent:k"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_temporary_directory_is_a_sibling() {
        assert_eq!(
            tmp_path(Path::new("/var/lib/gw/inflight")).unwrap(),
            Path::new("/var/lib/gw/inflight.import-tmp")
        );
        assert_eq!(
            tmp_path(Path::new("inflight")).unwrap(),
            Path::new("inflight.import-tmp")
        );
        assert!(tmp_path(Path::new("/")).is_err());
        assert!(tmp_path(Path::new("a/..")).is_err());
    }
}
