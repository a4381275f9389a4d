//! Offline inspection of a log: every record with its place, what the fold did with it, the
//! damage and the snapshots where they lie, the running set at any point still in the log, a
//! check of every file, and statistics. Read-only: nothing here takes the lock or changes a
//! byte, so it works on a log a gateway is appending to and compacting. There a reading that
//! the log changed under (a compaction removed a file it listed, a rollover or a record being
//! written changed what it read) starts over ([`Reader::read_settled`], which the command
//! line's tools use): no such change is ever reported as damage or an error.
//!
//! A [`Reader`] walks the log in log order (segments are mapped with memmap2) and hands each
//! [`Item`] to a visitor. It is the reader an open uses (`read`), started from the beginning
//! instead of the newest snapshot, so what it reports agrees with what an open would:
//!
//! ```
//! use std::ops::ControlFlow;
//! use inflight::inspect::{Item, walk};
//! use inflight::store::FileSource;
//! use inflight::{Log, Options};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), Options::default())?.log;
//! let run = log.begin_run("agent:main:telegram:dm:4242", "s1", None)?;
//! log.mark_completed(&run.key, run.generation)?;
//! log.mark_completed(&run.key, run.generation)?; // late and repeated: unknown now
//! drop(log);
//!
//! let mut events = Vec::new();
//! let walked = walk(&FileSource::at(dir.path()), |item| {
//!     if let Item::Event(e) = item {
//!         events.push((e.seq, e.segment.to_string(), e.offset, e.applied));
//!     }
//!     ControlFlow::Continue(())
//! })?;
//! assert_eq!(events.len(), 3);
//! assert_eq!(events[0].2, 64); // the first frame, right after the segment header
//! assert!(walked.set.is_empty() && walked.torn_tail.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Reader`] (here): the walk, and reading on as a gateway appends; the items are the
//!   reader's ([`Item`]).
//! - [`time_travel`]: the running set at a sequence number or a time, or why it is unknowable.
//! - [`stats`]: counts, sizes, run durations and the busiest keys, from the items.
//! - [`verify`]: each finding with its place, and the verdict.

mod read_only;
pub mod stats;
pub mod time_travel;
pub mod verify;

use std::ops::ControlFlow;
use std::time::Duration;

pub use crate::read::{
    DamageKind, DamageSeen, EndSeen, EventSeen, Item, Point, SegmentSeen, SnapshotRole,
    SnapshotSeen, Unknowable,
};
pub use read_only::{ReadOnly, for_each_event, read_only, read_only_from, recover_frozen};
pub use time_travel::{StateAt, state_at};

use crate::damage::{Corruption, TornTail};
use crate::error::Result;
use crate::fold::RunningSet;
use crate::read::core::Next;
use crate::read::files::{LogReader, Start};
use crate::read::progress::Progress;
use crate::read::settle::settle;
#[cfg(doc)]
use crate::store::FileSource;
use crate::store::LogSource;

/// What a walk ends with.
#[derive(Debug)]
#[non_exhaustive]
pub struct Walked {
    /// The running set folded up to where the walk stopped (the log's end, unless stopped).
    pub set: RunningSet,
    /// The last record folded (or the last one the last snapshot met covers; 0 if none).
    pub last_seq: u64,
    /// Its timestamp.
    pub last_ms: Option<u64>,
    /// Events folded from the segments (not those a snapshot holds).
    pub records: u64,
    /// Segment files read.
    pub segments: u64,
    /// Since when the log has been recording, from the snapshots met and the segment headers.
    pub coverage_since_ms: Option<u64>,
    /// Every corruption reported, in log order.
    pub corruption: Vec<Corruption>,
    /// The end of the data, if the last record is incomplete: still being written on a live
    /// log, a torn tail otherwise.
    pub torn_tail: Option<TornTail>,
    /// Whether the visitor (or a time-travel point) stopped the walk before the end.
    pub stopped: bool,
    /// Bytes of segment data scanned: each segment's header, then its frames and damage up to
    /// its reserved space or where the walk stopped (a poll counts again the damage it reads
    /// again).
    pub bytes_read: u64,
    /// How many readings [`Reader::read_settled`] started over because the log changed under
    /// them (a compaction, a rollover, a record being written); 0 for [`Reader::read`].
    pub restarts: u32,
}

/// Reads a log in log order, now and, with [`Reader::poll`] or [`Reader::follow`], as a gateway
/// appends to it. From any [`LogSource`]: a directory ([`FileSource::at`] maps its segments, not
/// copies them; [`FileSource::new`] goes through any [`Storage`](crate::Storage)), or a database.
pub struct Reader<'s> {
    reader: LogReader<'s>,
    restarts: u32,
    progress: Option<Progress<'s>>,
}

impl<'s> Reader<'s> {
    /// A reader of the log `source` holds: a directory ([`FileSource`]) or a store kept
    /// elsewhere (a database), read by the same rules.
    pub fn new(source: impl LogSource + 's) -> Reader<'s> {
        Reader {
            reader: LogReader::over(Box::new(source), Start::Beginning),
            restarts: 0,
            progress: None,
        }
    }

    /// Calls `progress` now and then (every 8 MiB, and at the end) with how far into the
    /// segments' data the items read so far reach, in bytes, counting each segment in full
    /// once its end is reached.
    pub fn on_progress(&mut self, progress: impl FnMut(u64) + 's) {
        self.progress = Some(Progress::new(progress));
    }

    /// `visit`, with the progress noted before it sees each item.
    fn noting<'v, V: FnMut(&Item<'_>) -> ControlFlow<()> + 'v>(
        progress: &'v mut Option<Progress<'s>>,
        mut visit: V,
    ) -> impl FnMut(&Item<'_>) -> ControlFlow<()> + 'v {
        move |item: &Item<'_>| {
            note(progress, item);
            visit(item)
        }
    }

    /// Reads the whole log as it is now, handing every item to `visit` in log order and ending
    /// with [`Item::End`], unless `visit` stops it first. One reading: on a log a gateway is
    /// compacting, a segment removed before it is read is followed to the snapshot that covers
    /// it, but a listing the compaction changed while it was taken can still show as damage;
    /// [`Reader::read_settled`] is exact there.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when `dir` holds no log,
    /// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) for a segment, or the
    /// newest snapshot, written by a newer format, [`Error::Io`](crate::Error::Io) when a file
    /// cannot be read. Damage is never an error: it is an item.
    pub fn read(&mut self, visit: impl FnMut(&Item<'_>) -> ControlFlow<()>) -> Result<()> {
        let names = self.reader.list_log()?;
        let mut visit = Self::noting(&mut self.progress, visit);
        self.reader.read(&names, &mut visit)
    }

    /// Reads the whole log exactly, even while a gateway appends to it and compacts it: a
    /// reading that the log changed under (a file removed before it was read, damage where a
    /// compaction or a rollover changed the files, a record half written at the end) starts
    /// over from a new listing, after a short pause, up to
    /// [`READ_ATTEMPTS_MAX`](crate::limits::READ_ATTEMPTS_MAX) readings; damage in files that
    /// held still is reported as [`Reader::read`] reports it. Each reading builds a fresh value
    /// with `fresh`, handing it every item with `visit`; the value of the reading that held
    /// still is returned, and the reader is left after it ([`Reader::finish`], [`Reader::poll`]).
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use inflight::inspect::{Item, Reader};
    /// use inflight::inspect::verify::{Verdict, Verification};
    /// use inflight::store::FileSource;
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// log.begin_run("agent:main:telegram:dm:4242", "s1", None)?;
    /// let mut reader = Reader::new(FileSource::at(dir.path()));
    /// let verification = reader.read_settled(Verification::new, |v, item: &Item<'_>| {
    ///     v.add(item);
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(verification.verdict(), Verdict::Clean);
    /// assert_eq!(reader.finish().restarts, 0); // nothing changed under it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`Reader::read`], and [`Error::KeptChanging`](crate::Error::KeptChanging) when
    /// no reading held still.
    pub fn read_settled<T>(
        &mut self,
        fresh: impl FnMut() -> T,
        visit: impl FnMut(&mut T, &Item<'_>) -> ControlFlow<()>,
    ) -> Result<T> {
        self.read_settled_before(fresh, visit, |_, _| ControlFlow::Continue(()))
    }

    /// [`Reader::read_settled`], with `before` asked before each state the reading takes in
    /// (time travel).
    pub(crate) fn read_settled_before<T>(
        &mut self,
        fresh: impl FnMut() -> T,
        mut visit: impl FnMut(&mut T, &Item<'_>) -> ControlFlow<()>,
        before: impl FnMut(&mut T, &Next<'_>) -> ControlFlow<()>,
    ) -> Result<T> {
        let progress = &mut self.progress;
        let visit = |value: &mut T, item: &Item<'_>| {
            note(progress, item);
            visit(value, item)
        };
        let settled = settle(&mut self.reader, fresh, visit, before)?;
        self.restarts = settled.restarts;
        Ok(settled.value)
    }

    /// After [`Reader::read`]: reads what was appended since (records, segments, snapshots a
    /// compaction wrote). An incomplete last record is one still being written: it is held
    /// back until a later poll finds it complete. Returns at once when nothing is new.
    pub fn poll(&mut self, visit: impl FnMut(&Item<'_>) -> ControlFlow<()>) -> Result<()> {
        let mut visit = Self::noting(&mut self.progress, visit);
        self.reader.poll(&mut visit)
    }

    /// After [`Reader::read`]: polls every `interval`, like `tail -f`, for as long as
    /// `keep_going` says so and `visit` does not stop it.
    pub fn follow(
        &mut self,
        interval: Duration,
        mut keep_going: impl FnMut() -> bool,
        visit: impl FnMut(&Item<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut visit = Self::noting(&mut self.progress, visit);
        while keep_going() && !self.reader.stopped() {
            self.reader.poll(&mut visit)?;
            std::thread::sleep(interval);
        }
        Ok(())
    }

    /// The running set folded so far.
    pub fn running_set(&self) -> &RunningSet {
        self.reader.set()
    }

    /// The incomplete last record found by the last read or poll, if any.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.reader.torn_tail()
    }

    /// What the reading found.
    pub fn finish(self) -> Walked {
        let restarts = self.restarts;
        let r = self.reader.into_reading();
        Walked {
            set: r.set,
            last_seq: r.last_seq,
            last_ms: r.last_ms,
            records: r.records,
            segments: r.segments,
            coverage_since_ms: r.coverage_since_ms,
            corruption: r.corruption,
            torn_tail: r.torn_tail,
            stopped: r.stopped,
            bytes_read: r.bytes_read,
            restarts,
        }
    }
}

/// Reads the whole log `source` holds once ([`Reader::read`]) and returns what it found. On a
/// live log, [`Reader::read_settled`] is exact.
pub fn walk(
    source: &dyn LogSource,
    visit: impl FnMut(&Item<'_>) -> ControlFlow<()>,
) -> Result<Walked> {
    let mut reader = Reader::new(source);
    reader.read(visit)?;
    Ok(reader.finish())
}

/// Notes `item` in the progress, if a reader follows it.
fn note(progress: &mut Option<Progress<'_>>, item: &Item<'_>) {
    if let Some(progress) = progress {
        progress.note(item);
    }
}
