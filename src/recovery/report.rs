//! What recovery reports: the runs that were in flight, the torn tail cut, the damaged regions
//! skipped, and the counts a gateway or an operator acts on.

use serde::{Deserialize, Serialize};

use crate::fold::{Counters, InFlightRun};

/// What to do with a damaged region that has valid records after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Skip the damaged region, replay what follows it, and report it as a gap (the default:
    /// losing the rest of the log to one bad sector would be worse).
    #[default]
    SkipDamaged,
    /// Fail to open with [`Error::Corrupt`](crate::Error::Corrupt).
    Strict,
}

/// An incomplete or invalid end of the last segment with nothing valid after it: the normal
/// trace of a crash during an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TornTail {
    /// The segment file's name.
    pub segment: String,
    /// Where the torn bytes begin (the end of the last valid record).
    pub offset: u64,
    /// How many bytes follow the last valid record.
    pub bytes: u64,
    /// True once the bytes were cut off and the cut synced (a read-write open); false when the
    /// replay was read-only and left the file as it was.
    pub cut: bool,
}

/// A damaged region with valid records after it, or a segment that cannot be read at all.
/// Under the default policy the region is skipped and marked as a gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corruption {
    /// The name of the file holding the damage: a segment, or a damaged snapshot (whose whole
    /// file is the region, and whose gap runs from the state replay started from to the next
    /// record read).
    pub segment: String,
    /// First damaged byte.
    pub start_offset: u64,
    /// One past the last damaged byte.
    pub end_offset: u64,
    /// Sequence number of the last valid record before the gap (0 if none).
    pub after_seq: u64,
    /// Sequence number of the first valid record after the gap, if any.
    pub before_seq: Option<u64>,
    /// Timestamp of the last valid record before the gap: the gap's time range starts here.
    pub after_ms: Option<u64>,
    /// Timestamp of the first valid record after the gap: the gap's time range ends here.
    pub before_ms: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

/// The snapshot a replay started from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsed {
    /// The snapshot file's name.
    pub file: String,
    /// The last sequence number it covers.
    pub last_seq: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// What opening (or replaying) a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The runs in flight when the log was last written, ordered by key, each with the reason
    /// it stopped: resume or suspend exactly these.
    pub running: Vec<InFlightRun>,
    /// Bytes of torn tail found (0 if none).
    pub torn_tail_bytes: u64,
    /// The torn tail, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Damaged regions skipped, in log order.
    pub corruption: Vec<Corruption>,
    /// Stale starts plus stale completions: the records the fold ignored. A completion of a
    /// key with no running entry is not stale; it is counted apart, in
    /// [`Counters::unknown_completions`].
    pub stale_ignored: u64,
    /// True when the log ends exactly at a clean shutdown: the last valid record (retention
    /// records aside) is a shutdown, and no torn tail, unfinished segment or damage follows it
    /// (any of those means a process wrote after the shutdown and did not finish). A process
    /// that opened the log after the shutdown and found runs in flight recorded its recovery,
    /// so its own exit shows here; one that found none and wrote nothing leaves no trace.
    pub clean_shutdown: bool,
    /// Since when the log has been recording (milliseconds since the Unix epoch), from the
    /// snapshot replay started from or the segment headers; `None` when neither could be read.
    /// Runs that began before this are not covered.
    pub coverage_since_ms: Option<u64>,
    /// Everything the fold counted.
    pub counters: Counters,
    /// Segment files read.
    pub segments: u64,
    /// Valid records replayed.
    pub records: u64,
    /// Sequence number of the last valid record (0 if none), or of the last one the snapshot
    /// covers if no record follows it.
    pub last_seq: u64,
    /// The snapshot replay started from, if any; `records` and `segments` count only what came
    /// after it.
    pub snapshot: Option<SnapshotUsed>,
    /// Damage found before the snapshot was written, in what it covers (the newest 64): its
    /// bytes are gone with the segments the compaction removed, and the gaps are kept so the
    /// time-window fallback still sees them. Reported here and not in `corruption` (the replay
    /// or compaction that found it reported it then); the strict policy fails on it too.
    pub gaps_before_snapshot: Vec<Corruption>,
    /// The number of consecutive recoveries at which an interrupted run is a crash loop
    /// ([`InFlightRun::recoveries`]); 0 turns the detection off. A read-write open uses
    /// [`Options::crash_loop_threshold`](crate::Options::crash_loop_threshold), a read-only
    /// replay the default, 3.
    pub crash_loop_threshold: u32,
}

impl RecoveryReport {
    /// The interrupted runs that are crash loops: found interrupted by a crash at
    /// `crash_loop_threshold` or more consecutive recoveries. Suspend these rather than
    /// resume them again.
    pub fn crash_loops(&self) -> impl Iterator<Item = &InFlightRun> {
        let threshold = self.crash_loop_threshold;
        self.running.iter().filter(move |r| {
            r.reason == crate::fold::Reason::Crash && threshold > 0 && r.recoveries >= threshold
        })
    }
}
