//! A read-only replay: the state a log folds to and what reading it found, without the lock
//! and without changing a byte; safe on a live log.

use std::path::Path;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::event::{Event, EventRef, UnixMs};
use crate::fold::RunningSet;
use crate::read::core::Found;
use crate::read::files::{LogReader, Start};
use crate::recovery::{Policy, RecoveryReport, Replayed, Runs, replay, replay_settled};
use crate::store::{FileSource, LogSource};

/// What a read-only replay found: the report and the folded state.
#[derive(Clone, Debug)]
pub struct ReadOnly {
    /// What replay found.
    pub report: RecoveryReport,
    /// The state the log folds to.
    pub set: RunningSet,
    /// How many readings started over because a live log changed under them (a compaction, a
    /// rollover, a record being written); see [`read_only`].
    pub restarts: u32,
}

/// Replays the log in `dir` without taking the lock or changing a byte: for tools that
/// inspect a log, even one a live process is writing. A torn tail is reported (with
/// `cut: false`) but left in place. Segments are memory-mapped (see [`FsStorage::mmap`](crate::FsStorage::mmap)).
/// A directory with neither segment nor snapshot files is [`Error::NotFound`]: it is not a
/// log, and must not read as "nothing in flight".
///
/// On a live log the reading is exact: when a compaction or a segment rollover changes the
/// files under it (a file it listed removed, damage where the files changed, a record half
/// written at the end), it starts over from a new listing, up to
/// [`READ_ATTEMPTS_MAX`](crate::limits::READ_ATTEMPTS_MAX) readings, and reports only
/// damage seen in files that held still (under [`Policy::Strict`], fails only on it). A log
/// that never held still is [`Error::KeptChanging`]: read again.
///
/// It writes nothing, so it answers on a full disk too, where a read-write open
/// ([`Log::open`](crate::Log::open)) fails for want of room for its copy of the last segment. The command
/// line's `inflight replay DIR` is this call.
pub fn read_only(dir: impl AsRef<Path>, policy: Policy) -> Result<ReadOnly> {
    read_only_from(&FileSource::at(dir), policy)
}

/// [`read_only`] of the log `source` holds: a directory through any
/// [`Storage`](crate::Storage) ([`FileSource::new`]) or a store kept elsewhere (a database).
pub fn read_only_from(source: &dyn LogSource, policy: Policy) -> Result<ReadOnly> {
    let (found, set, restarts) = replay_settled(source, policy)?;
    let runs = Runs::of(&set);
    Ok(ReadOnly::of(found, set, runs, restarts))
}

/// A read-only replay that also hands every valid record after the snapshot it starts from,
/// with its sequence number, to `visit` in log order: for offline tools that need the events
/// themselves, not only the state they fold to. Like [`read_only`], it takes no lock
/// and changes nothing. It reads once: on a live log, a compaction may remove a file between
/// the listing and its reading, which is an [`Error::Io`] of kind `NotFound` (after some
/// records were visited), and a second call sees a consistent listing again; where only the
/// state is needed, [`read_only`] starts over by itself.
///
/// ```
/// # use inflight::{Generation, Log, Options, Policy, Run, UnixMs};
/// use inflight::inspect::for_each_event;
/// use inflight::store::FileSource;
/// # let dir = tempfile::tempdir()?;
/// # let log = Log::open(dir.path(), Options::default())?.log;
/// # log.mark_running(Run::new("k", "s", Generation(1), UnixMs(1)))?;
/// let mut keys = Vec::new();
/// for_each_event(&FileSource::at(dir.path()), Policy::Strict, |_seq, event| {
///     keys.extend(event.key().map(str::to_string));
/// })?;
/// assert_eq!(keys, ["k"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn for_each_event(
    source: &dyn LogSource,
    policy: Policy,
    mut visit: impl FnMut(u64, EventRef<'_>),
) -> Result<ReadOnly> {
    let replayed = replay_once(source, policy, &mut visit)?;
    let runs = Runs::of(&replayed.set);
    Ok(ReadOnly::of(replayed.found, replayed.set, runs, 0))
}

/// The recovery of a log no writer will append to again (a fleet's takeover of a fenced
/// instance), made without writing: the log replayed once, as [`for_each_event`] does, and
/// the recovery counted as a read-write open counts it: each run in flight was interrupted
/// once more, at `at` (its loop counts raised), so the report and the set are what an open of
/// the log would report and hold. Nothing is written: the caller records what it resumes in a
/// log of its own ([`Log::adopt`](crate::Log::adopt)). `source` holds the log: a directory
/// ([`FileSource`]) or a store kept elsewhere (a database).
pub fn recover_frozen(source: &dyn LogSource, policy: Policy, at: UnixMs) -> Result<ReadOnly> {
    let replayed = replay_once(source, policy, &mut |_, _| {})?;
    let mut set = replayed.set;
    let mut runs = Runs::of(&set);
    if !set.is_empty() {
        set.apply(&Event::Recovered { at_ms: at.0 });
        runs = runs.recovered(&set);
    }
    Ok(ReadOnly::of(replayed.found, set, runs, 0))
}

/// One reading of the log `source` holds from its newest snapshot, each valid record after it
/// handed to `visit`.
fn replay_once(
    source: &dyn LogSource,
    policy: Policy,
    visit: &mut impl FnMut(u64, EventRef<'_>),
) -> Result<Replayed> {
    let names = LogReader::over(Box::new(source), Start::Newest).list_log()?;
    replay(source, &names, policy, None, visit)
}

impl ReadOnly {
    /// The report of what a read-only replay found, with `runs` the runs of `set` (the
    /// recovery a writer's open would record folded in both, if counted).
    fn of(found: Found, set: RunningSet, runs: Runs, restarts: u32) -> ReadOnly {
        let coverage = found.coverage_since_ms;
        let report = RecoveryReport::of(
            found,
            runs,
            set.counters(),
            false,
            coverage,
            crate::fold::Thresholds::default(),
        );
        ReadOnly {
            report,
            set,
            restarts,
        }
    }
}
