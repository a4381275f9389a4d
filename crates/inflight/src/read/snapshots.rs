//! The snapshots of a log directory, as the reading meets them: which one the log starts from,
//! which are older fallbacks, which are damaged, and when each is met. Pure: the shell reads
//! each file and says what it found; the book decides.

use std::collections::HashSet;

use super::core::{Reading, ValidSnapshot, Visit};
use super::item::SnapshotRole;
use crate::frame::SegmentHeader;
use crate::snapshot::Snapshot;

/// One snapshot file as the shell read it: valid, or damaged and why.
pub(crate) enum SnapshotFile {
    /// A valid snapshot, `bytes` long, that agrees with the segments.
    Valid {
        /// Boxed: a snapshot's state is far larger than the other variant.
        snapshot: Box<Snapshot>,
        bytes: u64,
    },
    /// Not a valid snapshot (`bytes` long): why.
    Damaged { bytes: u64, detail: String },
}

/// The snapshots still to meet, in ascending order, and the damaged ones newer than the start,
/// which become damage right after it.
#[derive(Default)]
pub(crate) struct Book {
    seen: HashSet<String>,
    ahead: Vec<ValidSnapshot>,
    damaged_after_start: Vec<(String, u64, String)>,
    start_found: bool,
}

impl Book {
    /// Whether `name` was offered already.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.seen.contains(name)
    }

    /// Whether the start (the newest valid snapshot) has been found.
    pub(crate) fn has_start(&self) -> bool {
        self.start_found
    }

    /// The segment number the start covers up to (segments below it are in it), if found.
    pub(crate) fn start_covers_below(&self) -> Option<u64> {
        self.ahead
            .iter()
            .find(|s| s.role == SnapshotRole::Start)
            .map(|s| s.snapshot.next_segment_no)
    }

    /// The `next_segment_no` of the first snapshot still to meet that covers segment `number`
    /// and every record before `base_seq` (the segment's first), if any.
    pub(crate) fn covering(&self, number: u64, base_seq: u64) -> Option<u64> {
        self.ahead
            .iter()
            .find(|s| s.snapshot.next_segment_no > number && s.snapshot.last_seq >= base_seq - 1)
            .map(|s| s.snapshot.next_segment_no)
    }

    /// At the first reading: a snapshot file, offered newest first. The first valid one is the
    /// start; damaged ones before it are regions right after it; later ones are older: valid,
    /// fallbacks met at their place, damaged, reported at once (the log never needs them).
    pub(crate) fn offer(
        &mut self,
        name: &str,
        found: SnapshotFile,
        reading: &mut Reading,
        visit: &mut (impl Visit + ?Sized),
    ) {
        self.seen.insert(name.to_string());
        match found {
            SnapshotFile::Valid { snapshot, bytes } => {
                let snapshot = *snapshot;
                let role = if self.start_found {
                    SnapshotRole::Older
                } else {
                    SnapshotRole::Start
                };
                self.start_found = true;
                self.ahead.push(ValidSnapshot {
                    file: name.to_string(),
                    snapshot,
                    bytes,
                    role,
                });
            }
            SnapshotFile::Damaged { bytes, detail } if !self.start_found => {
                self.damaged_after_start
                    .push((name.to_string(), bytes, detail));
            }
            SnapshotFile::Damaged { bytes, detail } => {
                reading.damaged_snapshot(name, bytes, detail, true, visit);
            }
        }
    }

    /// After every snapshot was offered: in ascending order from now on; with no start, the
    /// damaged ones are regions from the very beginning.
    pub(crate) fn offered_all(&mut self, reading: &mut Reading, visit: &mut (impl Visit + ?Sized)) {
        self.ahead.reverse();
        self.damaged_after_start.reverse();
        if !self.start_found {
            self.damaged_pending(reading, visit);
        }
    }

    /// A snapshot that appeared after the first listing: a compaction of the live log wrote it.
    /// Damaged ones are regions like any damage.
    pub(crate) fn written(
        &mut self,
        name: &str,
        found: SnapshotFile,
        reading: &mut Reading,
        visit: &mut (impl Visit + ?Sized),
    ) {
        self.seen.insert(name.to_string());
        match found {
            SnapshotFile::Valid { snapshot, bytes } => {
                let snapshot = *snapshot;
                self.ahead.push(ValidSnapshot {
                    file: name.to_string(),
                    snapshot,
                    bytes,
                    role: SnapshotRole::Written,
                });
                self.ahead
                    .sort_by_key(|s| (s.snapshot.last_seq, s.snapshot.next_segment_no));
            }
            SnapshotFile::Damaged { bytes, detail } => {
                reading.damaged_snapshot(name, bytes, detail, false, visit)
            }
        }
    }

    fn damaged_pending(&mut self, reading: &mut Reading, visit: &mut (impl Visit + ?Sized)) {
        for (name, bytes, detail) in std::mem::take(&mut self.damaged_after_start) {
            reading.damaged_snapshot(&name, bytes, detail, false, visit);
        }
    }

    /// Meets every snapshot that covers the segments below `number`, oldest first.
    pub(crate) fn meet_before(
        &mut self,
        number: u64,
        reading: &mut Reading,
        visit: &mut (impl Visit + ?Sized),
    ) {
        while !reading.stopped
            && self
                .ahead
                .first()
                .is_some_and(|s| s.snapshot.next_segment_no <= number)
        {
            let s = self.ahead.remove(0);
            self.meet(s, reading, visit);
        }
    }

    /// Meets every snapshot that covers no record the reading has not read yet: one a
    /// compaction wrote while the reading follows the log, met once the reading is there.
    pub(crate) fn meet_read(&mut self, reading: &mut Reading, visit: &mut (impl Visit + ?Sized)) {
        while !reading.stopped
            && self
                .ahead
                .first()
                .is_some_and(|s| s.snapshot.last_seq < reading.next_seq())
        {
            let s = self.ahead.remove(0);
            self.meet(s, reading, visit);
        }
    }

    fn meet(&mut self, s: ValidSnapshot, reading: &mut Reading, visit: &mut (impl Visit + ?Sized)) {
        let start = s.role == SnapshotRole::Start;
        reading.meet_snapshot(s, visit);
        if start && !reading.stopped {
            self.damaged_pending(reading, visit);
        }
    }
}

/// Whether a segment numbered below a snapshot's `next_segment_no` contradicts it: a snapshot
/// says those segments hold nothing after its last record, and a reading skips or overtakes
/// them. A segment there whose intact header (`header`, decoded from its first bytes, for file
/// `name`) starts after the snapshot's next record, or at it with records after the header
/// (`holds_records`), means the snapshot does not belong with these segments (restored from
/// elsewhere, or crafted): trusting it would skip records. Returns why, if so.
pub(crate) fn contradicts(
    snapshot: &Snapshot,
    number: u64,
    name: &str,
    header: &SegmentHeader,
    holds_records: impl FnOnce() -> bool,
) -> Option<String> {
    let next = snapshot.last_seq + 1;
    // A segment starting right after the snapshot is covered only while it holds no record (a
    // cut's new segment, left empty, then cut again).
    let contradicts = header.segment_no == number
        && (header.base_seq > next || (header.base_seq == next && holds_records()));
    contradicts.then(|| {
        format!(
            "damaged snapshot: it covers the segments below {} and records up to {}, but \
             segment {name} starts at record {}",
            snapshot.next_segment_no, snapshot.last_seq, header.base_seq
        )
    })
}
