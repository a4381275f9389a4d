//! What a walk over a log finds, one item at a time, in log order.

use crate::damage::{Corruption, TornTail};
use crate::event::EventRef;
use crate::fold::Applied;
use crate::frame::SegmentHeader;

/// One thing a walk finds, in log order. Borrowed from the walk for the length of one call to
/// the visitor: copy out what you keep.
#[derive(Debug)]
pub enum Item<'a> {
    /// A snapshot file: a state the walk took over at its place in the log, or damage.
    Snapshot(SnapshotSeen<'a>),
    /// The start of a segment file.
    Segment(SegmentSeen<'a>),
    /// One event of a valid record, after the fold applied it.
    Event(EventSeen<'a>),
    /// A damaged region, or records missing from the log.
    Damage(DamageSeen<'a>),
    /// The end of what the log holds now.
    End(EndSeen<'a>),
}

/// Why the walk met a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotRole {
    /// The newest valid snapshot: the one replay (and an open) starts from.
    Start,
    /// An older valid snapshot, kept by the last compaction as a fallback.
    Older,
    /// A snapshot a compaction wrote while the walk was reading (with `follow`, or a compaction
    /// of a live log during the walk).
    Written,
}

/// A valid snapshot, met at its place in the log: after the record it ends with.
#[derive(Debug)]
pub struct SnapshotSeen<'a> {
    /// The file's name.
    pub file: &'a str,
    /// Its role.
    pub role: SnapshotRole,
    /// The last sequence number it covers.
    pub last_seq: u64,
    /// Segments numbered below this are covered by it.
    pub next_segment_no: u64,
    /// The timestamp of the last record it covers (`None` if none).
    pub last_record_ms: Option<u64>,
    /// When it was written.
    pub created_ms: u64,
    /// The file's length.
    pub bytes: u64,
    /// Runs in flight in it.
    pub running: usize,
    /// High-water marks in it.
    pub marks: usize,
    /// Damage found before it was written, whose segments a compaction removed.
    pub gaps: &'a [Corruption],
    /// Records the log holds only in this snapshot (`first..=last`): their segments were
    /// removed by a compaction, so the walk took the snapshot's state over instead of folding
    /// them. `None` when the walk had read every record up to the snapshot's.
    pub compacted: Option<(u64, u64)>,
    /// When the walk had folded exactly the records the snapshot covers (no jump): whether its
    /// state equals the fold's. `None` otherwise.
    pub matches_records: Option<bool>,
    /// The walk had already read records past the snapshot's last one, so it did not take the
    /// snapshot's state over.
    pub behind: bool,
}

/// The start of a segment file.
#[derive(Debug)]
pub struct SegmentSeen<'a> {
    /// The file's name.
    pub file: &'a str,
    /// Its number.
    pub number: u64,
    /// The length of its data when the walk read it: the file's, less the reserved space at
    /// its end (see [`reserved_start`](crate::frame::reserved_start)).
    pub bytes: u64,
    /// The header, or why it is damaged (a damaged header is also reported as a
    /// [`Item::Damage`] once what follows it is known).
    pub header: Result<SegmentHeader, String>,
}

/// One event of a valid record, as the fold applied it.
#[derive(Debug)]
pub struct EventSeen<'a> {
    /// The record's sequence number (shared by the events of a batch).
    pub seq: u64,
    /// The segment file holding it.
    pub segment: &'a str,
    /// The byte offset of its frame in that file.
    pub offset: u64,
    /// Its place in its frame: 0 for a frame of one event.
    pub index: usize,
    /// How many events the frame holds (1, or a batch's count).
    pub batch: usize,
    /// The event, borrowed from the segment's bytes.
    pub event: EventRef<'a>,
    /// What the fold did with it: a stale start or completion is ignored.
    pub applied: Applied,
    /// For a completion that ended a run: when that run started.
    pub ended_run_started_at_ms: Option<u64>,
}

impl EventSeen<'_> {
    /// Whether the fold ignored the event as stale (rules 1 and 3).
    pub fn is_stale(&self) -> bool {
        matches!(
            self.applied,
            Applied::StaleStart { .. } | Applied::StaleCompletion { .. }
        )
    }
}

/// What kind of damage an [`Item::Damage`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// Corruption: a damaged region (or missing records) with valid records after it, or one
    /// reaching the end of the log that a crash cannot explain. Replay skips it and reports a
    /// gap.
    Corruption,
    /// A damaged snapshot older than the one replay starts from: replay never reads it, so it
    /// costs nothing now, but the fallback it was kept for is gone.
    UnreadSnapshot,
}

/// A damaged region, reported where it lies in the log once what follows it is known.
#[derive(Debug)]
pub struct DamageSeen<'a> {
    /// Its kind.
    pub kind: DamageKind,
    /// Where it is, what it is, and the records on either side of it, as replay reports it.
    pub region: &'a Corruption,
}

/// The end of what the log holds now.
#[derive(Debug)]
pub struct EndSeen<'a> {
    /// The last valid record's sequence number (or the last one a snapshot covers; 0 if none).
    pub last_seq: u64,
    /// Its timestamp.
    pub last_ms: Option<u64>,
    /// An incomplete or invalid last record with nothing after it: on a log a gateway is
    /// appending to, a record still being written; otherwise a torn tail, which the next
    /// read-write open cuts. Never corruption.
    pub torn_tail: Option<&'a TornTail>,
    /// Runs in flight at the end.
    pub running: usize,
}
