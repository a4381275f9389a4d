//! The log handle: open (lock, replay, repair), durable appends, clean close.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::event::{Event, Run, encode_event};
use crate::fold::{Applied, Counters, Entry, Mark, RunningSet};
use crate::layout::TEMP_SUFFIX;
use crate::limits::{SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MIN};
use crate::open_dir::create_dir_durably;
use crate::recovery::{Policy, RecoveryReport, Tail, replay};
use crate::storage::{DirLock, FsStorage, LockError, Storage};
use crate::writer::{Writer, replace_durably};

/// The outside world the shell needs: a clock and a source of salts. Replace it to make a
/// simulated run deterministic.
pub trait Environment: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A fresh random salt for a new segment.
    fn salt(&self) -> u64;
}

/// The system clock and a random salt.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn salt(&self) -> u64 {
        fastrand::u64(..)
    }
}

/// The system clock in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How to open a log.
#[derive(Clone, Debug)]
pub struct Options {
    /// What to do with corruption: skip and report (default), or fail.
    pub policy: Policy,
    /// Size at which the writer starts a new segment, between [`SEGMENT_BYTES_MIN`] and
    /// [`SEGMENT_BYTES_LIMIT`].
    pub segment_bytes_max: u64,
    /// The clock and salt source.
    pub environment: Arc<dyn Environment>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            policy: Policy::default(),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            environment: Arc::new(SystemEnvironment),
        }
    }
}

impl Options {
    /// These options with the strict corruption policy.
    pub fn strict(mut self) -> Options {
        self.policy = Policy::Strict;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return Err(Error::InvalidInput {
                field: "segment_bytes_max",
                reason: format!(
                    "is {}, outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                    self.segment_bytes_max
                ),
                key: None,
            });
        }
        Ok(())
    }
}

/// What a read-only replay found: the report and the folded state.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// What replay found.
    pub report: RecoveryReport,
    /// The state the log folds to.
    pub set: RunningSet,
}

/// An open log. `Send + Sync`: share it between threads with an `Arc`.
///
/// Every `mark_*` call returns only after its event is durable: written and synced with
/// fdatasync (and, for a new segment, its directory entry synced too). A call that returns an
/// error may or may not have reached the disk; after a failed write or sync the handle is
/// poisoned and every later call fails until the log is reopened.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: Options,
    state: Mutex<State>,
    _lock: DirLock,
}

#[derive(Debug)]
struct State {
    writer: Writer,
    set: RunningSet,
    /// Set by the first failed write or sync, or by close; then every call fails.
    failure: Option<Failure>,
}

#[derive(Debug, Clone)]
enum Failure {
    Poisoned(String),
    Closed,
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Poisoned(cause) => Error::Poisoned {
                cause: cause.clone(),
            },
            Failure::Closed => Error::Closed,
        }
    }
}

impl Log {
    /// Opens (creating if missing) the log in `dir` on the real file system, and replays it.
    ///
    /// A new directory gets mode 0700. The entry of the log directory in its parent is synced,
    /// even when the directory was already there (its creator may have died before syncing it);
    /// a parent this process may not read for that (`EACCES` or `EPERM`, say mode 0711 and
    /// another owner) is logged as a warning with the reason, and the open goes on.
    ///
    /// A read-write open writes: it makes a synced copy of the last segment (see
    /// [`Options::segment_bytes_max`]), so it needs that much free space. On a full disk it fails
    /// with an [`Error::Io`] whose source is of kind [`std::io::ErrorKind::StorageFull`] and
    /// whose message says so; [`Log::read_only`] writes nothing and still reports what was in
    /// flight.
    ///
    /// ```
    /// use inflight::{Log, Options, Run};
    /// let dir = tempfile::tempdir()?;
    /// let (log, report) = Log::open(dir.path(), Options::default())?;
    /// assert!(report.running.is_empty());
    /// log.mark_running(Run::new("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0", 1, 1_764_150_000_000))?;
    /// drop(log); // a crash: no clean shutdown recorded
    ///
    /// let (log, report) = Log::open(dir.path(), Options::default())?;
    /// assert_eq!(report.running.len(), 1); // the run to resume
    /// log.mark_completed("agent:main:telegram:dm:4242", 1)?;
    /// log.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<(Log, RecoveryReport)> {
        Log::open_with_storage(Arc::new(FsStorage::default()), dir, options)
    }

    /// Opens the log in `dir` through `storage`: takes the directory's lock, replays, cuts a torn
    /// tail (and syncs the cut) and prepares the segment the next append goes to.
    pub fn open_with_storage(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Log, RecoveryReport)> {
        Log::open_read_write(storage, dir.as_ref(), options).map_err(Error::at_open)
    }

    fn open_read_write(
        storage: Arc<dyn Storage>,
        dir: &Path,
        options: Options,
    ) -> Result<(Log, RecoveryReport)> {
        options.validate()?;
        let dir = dir.to_path_buf();
        create_dir_durably(&*storage, &dir)?;
        let lock = storage.lock(&dir).map_err(|e| match e {
            LockError::Held(holder_pid) => Error::Locked {
                dir: dir.clone(),
                holder_pid,
            },
            LockError::Io(e) => Error::io("lock", &dir, e),
        })?;
        let names = remove_temp_files(&*storage, &dir)?;
        let replayed = replay(&*storage, &dir, names, options.policy, &mut |_, _| {})?;
        let mut report = replayed.report;
        let env = &options.environment;
        let writer = match replayed.tail {
            Tail::Fresh => {
                Writer::create(&*storage, &dir, 1, replayed.next_seq, env.now_ms(), &**env)?
            }
            Tail::NewSegment { segment_no, remove } => {
                if let Some(path) = remove {
                    storage
                        .remove(&path)
                        .map_err(|e| Error::io("remove", &path, e))?;
                    storage
                        .sync_dir(&dir)
                        .map_err(|e| Error::io("sync directory", &dir, e))?;
                    if let Some(torn) = &mut report.torn_tail {
                        torn.cut = true;
                    }
                }
                let created = report.coverage_since_ms.unwrap_or_else(|| env.now_ms());
                Writer::create(
                    &*storage,
                    &dir,
                    segment_no,
                    replayed.next_seq,
                    created,
                    &**env,
                )?
            }
            Tail::Append {
                path,
                header,
                end,
                bytes,
            } => {
                let valid = &bytes[..end as usize];
                let writer =
                    Writer::reopen(&*storage, &dir, path, header, valid, replayed.next_seq)?;
                if let Some(torn) = &mut report.torn_tail {
                    torn.cut = true;
                }
                writer
            }
            Tail::Seal {
                path,
                bytes,
                next_segment_no,
            } => {
                // The damage stays where it is, for inspection; new records go to a new segment.
                replace_durably(&*storage, &dir, &path, &bytes)?;
                let created = report.coverage_since_ms.unwrap_or_else(|| env.now_ms());
                Writer::create(
                    &*storage,
                    &dir,
                    next_segment_no,
                    replayed.next_seq,
                    created,
                    &**env,
                )?
            }
        };
        let created = writer.header.log_created_ms;
        report.coverage_since_ms =
            Some(report.coverage_since_ms.map_or(created, |c| c.min(created)));
        log_report(&dir, &report);
        let log = Log {
            dir,
            storage,
            options,
            state: Mutex::new(State {
                writer,
                set: replayed.set,
                failure: None,
            }),
            _lock: lock,
        };
        Ok((log, report))
    }

    /// Replays the log in `dir` without taking the lock or changing a byte: for tools that
    /// inspect a log, even one a live process is writing (an append in progress then shows as a
    /// torn tail). A torn tail is reported (with `cut: false`) but left in place. Segments are
    /// memory-mapped (see [`FsStorage::mmap`]). A directory without segment files is
    /// [`Error::NotFound`]: it is not a log, and must not read as "nothing in flight".
    ///
    /// It writes nothing, so it answers on a full disk too, where a read-write open
    /// ([`Log::open`]) fails for want of room for its copy of the last segment. The command
    /// line's `inflight replay DIR` is this call.
    pub fn read_only(dir: impl AsRef<Path>, policy: Policy) -> Result<Recovered> {
        Log::read_only_with_storage(&FsStorage { mmap: true }, dir, policy)
    }

    /// [`Log::read_only`] through `storage`.
    pub fn read_only_with_storage(
        storage: &dyn Storage,
        dir: impl AsRef<Path>,
        policy: Policy,
    ) -> Result<Recovered> {
        Log::for_each_event(storage, dir, policy, |_, _| {})
    }

    /// A read-only replay that also hands every valid record, with its sequence number, to
    /// `visit` in log order: for offline tools that need the events themselves, not only the
    /// state they fold to. Like [`Log::read_only`], it takes no lock and changes nothing.
    ///
    /// ```
    /// # use inflight::{Log, Options, Policy, Run, FsStorage};
    /// # let dir = tempfile::tempdir()?;
    /// # let (log, _) = Log::open(dir.path(), Options::default())?;
    /// # log.mark_running(Run::new("k", "s", 1, 1))?;
    /// let mut keys = Vec::new();
    /// Log::for_each_event(&FsStorage::default(), dir.path(), Policy::Strict, |_seq, event| {
    ///     keys.extend(event.key().map(str::to_string));
    /// })?;
    /// assert_eq!(keys, ["k"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each_event(
        storage: &dyn Storage,
        dir: impl AsRef<Path>,
        policy: Policy,
        mut visit: impl FnMut(u64, &Event),
    ) -> Result<Recovered> {
        let dir = dir.as_ref();
        if !storage.is_dir(dir).map_err(|e| Error::io("stat", dir, e))? {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
        let replayed = replay(storage, dir, names, policy, &mut visit)?;
        if replayed.report.segments == 0 {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Recovered {
            report: replayed.report,
            set: replayed.set,
        })
    }

    /// Records that `run` started. Returns once the event is durable, with what it did to the
    /// running set (a start below the key's high-water mark is recorded but ignored).
    pub fn mark_running(&self, run: Run) -> Result<Applied> {
        self.record(Event::Started(run))
    }

    /// Records that the run of `key` with `generation` completed, timestamped with the
    /// environment's clock. Returns once the event is durable.
    pub fn mark_completed(&self, key: &str, generation: u64) -> Result<Applied> {
        let at_ms = self.options.environment.now_ms();
        self.mark_completed_at(key, generation, at_ms)
    }

    /// [`Log::mark_completed`] with an explicit timestamp.
    pub fn mark_completed_at(&self, key: &str, generation: u64, at_ms: u64) -> Result<Applied> {
        self.record(Event::Completed {
            key: key.to_string(),
            generation,
            at_ms,
        })
    }

    /// Records a clean shutdown (runs still in flight are reported after the next open with
    /// reason `shutdown`) and closes the handle: later calls return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        let at_ms = self.options.environment.now_ms();
        self.record(Event::Shutdown { at_ms }).map(drop)
    }

    /// The runs in flight now, ordered by key.
    pub fn running(&self) -> Vec<Entry> {
        self.with_set(|set| set.entries().cloned().collect())
    }

    /// The high-water mark of `key`: the highest generation recorded for it.
    pub fn high_water(&self, key: &str) -> Option<Mark> {
        self.with_set(|set| set.mark(key))
    }

    /// What the fold has counted since the log was created.
    pub fn counters(&self) -> Counters {
        self.with_set(|set| set.counters())
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn with_set<T>(&self, f: impl FnOnce(&RunningSet) -> T) -> T {
        // The set is only changed after a durable append, by code that cannot panic halfway, so
        // it is consistent even if another thread panicked while holding the lock.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state.set)
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Poisoned {
            cause: "a thread panicked while appending".into(),
        })
    }

    /// Records any event: a start, a completion, or a shutdown (which closes the handle, as
    /// [`Log::close`] does). Returns once the event is durable, with what it did to the running
    /// set. For replaying events from elsewhere, or tools that carry [`Event`] values around.
    pub fn record(&self, event: Event) -> Result<Applied> {
        event.validate()?;
        let payload = encode_event(&event);
        let mut state = self.state()?;
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        let result = state
            .writer
            .append(&*self.storage, &self.dir, &payload, &self.options);
        if let Err(e) = result {
            // A failed write or sync leaves the file in an unknown state and, after a failed
            // fsync, the kernel may report the next one as a success without writing the data
            // (Linux drops dirty pages on error). Nothing written after this point could be
            // trusted, so the handle refuses everything until the log is reopened and replayed.
            tracing::error!(dir = %self.dir.display(), error = %e, "append failed; log handle poisoned");
            state.failure = Some(Failure::Poisoned(e.to_string()));
            return Err(e);
        }
        if matches!(event, Event::Shutdown { .. }) {
            // In the same critical section as the append, so no other thread's event can land
            // after the shutdown record.
            state.failure = Some(Failure::Closed);
        }
        Ok(state.set.apply(&event))
    }
}

/// Removes replacements that a crash interrupted before their rename (the originals are intact),
/// and returns the names that remain in the directory.
fn remove_temp_files(storage: &dyn Storage, dir: &Path) -> Result<Vec<String>> {
    let (temps, names): (Vec<String>, Vec<String>) = storage
        .list(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .into_iter()
        .partition(|n| n.ends_with(TEMP_SUFFIX));
    for name in &temps {
        let path = dir.join(name);
        storage
            .remove(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
    }
    if !temps.is_empty() {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }
    Ok(names)
}

fn log_report(dir: &Path, report: &RecoveryReport) {
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        records = report.records,
        running = report.running.len(),
        clean_shutdown = report.clean_shutdown,
        "opened log"
    );
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(segment = %torn.segment, offset = torn.offset, bytes = torn.bytes, "torn tail");
    }
    for c in &report.corruption {
        tracing::error!(
            segment = %c.segment,
            start = c.start_offset,
            end = c.end_offset,
            after_seq = c.after_seq,
            before_seq = ?c.before_seq,
            detail = %c.detail,
            "corruption skipped: gap in the log"
        );
    }
}
