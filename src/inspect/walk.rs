//! The read-only walk over a log directory, in log order, by the rules of the README's
//! "Reading a log": snapshots, segment headers, frames, the fold, and damage held until what
//! follows it says whether it is corruption or the end of the data. Unlike replay, it starts
//! from nothing and meets every valid snapshot at its place in the log (taking its state over
//! where the records it covers are gone), reads segments a compaction left behind, and can go
//! on reading as a gateway appends ([`Walker::poll`]).

use std::collections::HashSet;
use std::io;
use std::mem;
use std::path::{Path, PathBuf};

use super::end::{TailVerdict, classify_tail};
use super::item::{
    DamageKind, DamageSeen, EndSeen, EventSeen, Item, SegmentSeen, SnapshotRole, SnapshotSeen,
};
use super::time_travel::{Point, Unknowable};
use super::{Visit, Walked};
use crate::error::{Error, Result};
use crate::event::{EventRef, decode_payload_with};
use crate::fold::{Applied, RunningSet};
use crate::frame::{Frame, SEGMENT_HEADER_BYTES, Scanned, Scanner, SegmentHeader, reserved_start};
use crate::layout::{is_log_file, parse_segment_name, parse_snapshot_name};
use crate::recovery::{
    Corruption, Damage, DamagedHeader, TornTail, UNSYNCED_TAIL_BYTES_MAX, check_header,
    is_unfinished_header, read_segment_file, read_snapshot, uncovered_segment,
};
use crate::snapshot::Snapshot;
use crate::storage::{FileBytes, Storage, StorageFile, read_exact_at};

/// How often, in bytes read, the walk reports its progress.
const PROGRESS_EVERY_BYTES: u64 = 8 << 20;

/// A valid snapshot not yet met.
struct ValidSnapshot {
    file: String,
    snapshot: Snapshot,
    bytes: u64,
    role: SnapshotRole,
}

/// The snapshots of the directory: those still to meet, in ascending order, and the damaged
/// ones newer than the start, which become damage right after it (as in replay).
#[derive(Default)]
struct SnapshotBook {
    seen: HashSet<String>,
    ahead: Vec<ValidSnapshot>,
    damaged_after_start: Vec<(String, u64, String)>,
}

/// The segment being read, kept so that a later poll reads on where this one stopped.
struct Current {
    number: u64,
    name: String,
    /// Kept open: a compaction may remove the file while it is being read, and an open handle
    /// still reads it.
    file: Box<dyn StorageFile>,
    header: Option<SegmentHeader>,
    salt: u64,
    /// Just past the last valid record (or the header, or damage already reported): where a
    /// later read goes on, with `resume_seq` expected there.
    resume: u64,
    resume_seq: u64,
}

/// The walk's state between items.
pub(crate) struct Walker<'s> {
    storage: &'s dyn Storage,
    dir: PathBuf,
    set: RunningSet,
    next_seq: u64,
    last_seq: u64,
    last_ms: Option<u64>,
    records: u64,
    segments: u64,
    /// Damaged regions since the last valid record.
    pending: Vec<Damage>,
    coverage_since_ms: Option<u64>,
    book: SnapshotBook,
    current: Option<Current>,
    /// Segments numbered below this are done.
    cursor: u64,
    /// A last segment holding an unfinished header (left by an older build), and its length:
    /// a writer replaces it under the same number.
    unfinished: Option<(u64, u64)>,
    point: Option<Point>,
    unknowable: Option<Unknowable>,
    stopped: bool,
    corruption: Vec<Corruption>,
    torn_tail: Option<TornTail>,
    bytes_read: u64,
    progress: Option<Box<dyn FnMut(u64) + 's>>,
    progress_at: u64,
}

enum Read {
    Done,
    /// The file was removed between the listing and its opening (a compaction).
    Vanished,
}

impl<'s> Walker<'s> {
    pub(crate) fn new(storage: &'s dyn Storage, dir: &Path) -> Walker<'s> {
        Walker {
            storage,
            dir: dir.to_path_buf(),
            set: RunningSet::new(),
            next_seq: 1,
            last_seq: 0,
            last_ms: None,
            records: 0,
            segments: 0,
            pending: Vec::new(),
            coverage_since_ms: None,
            book: SnapshotBook::default(),
            current: None,
            cursor: 0,
            unfinished: None,
            point: None,
            unknowable: None,
            stopped: false,
            corruption: Vec::new(),
            torn_tail: None,
            bytes_read: 0,
            progress: None,
            progress_at: 0,
        }
    }

    /// Stop right before the first record past `point`, or refuse if the log cannot know it.
    pub(crate) fn stop_at(&mut self, point: Point) {
        self.point = Some(point);
    }

    /// Calls `progress` with the bytes read so far, now and then.
    pub(crate) fn on_progress(&mut self, progress: Box<dyn FnMut(u64) + 's>) {
        self.progress = Some(progress);
    }

    pub(crate) fn into_walked(self) -> Walked {
        Walked {
            set: self.set,
            last_seq: self.last_seq,
            last_ms: self.last_ms,
            records: self.records,
            segments: self.segments,
            coverage_since_ms: self.coverage_since_ms,
            corruption: self.corruption,
            torn_tail: self.torn_tail,
            stopped: self.stopped,
            unknowable: self.unknowable,
            bytes_read: self.bytes_read,
        }
    }

    /// Reads the whole log as it is now, ending with [`Item::End`] (unless the visitor or the
    /// point stopped it first).
    pub(crate) fn walk(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let names = self.list_log()?;
        self.plan_snapshots(&names, visit)?;
        let mut segments = segment_files(&names);
        let mut i = 0;
        while i < segments.len() && !self.stopped {
            let (number, name) = segments[i].clone();
            i += 1;
            if number < self.cursor {
                continue;
            }
            self.meet_snapshots_before(number, visit)?;
            if self.stopped {
                break;
            }
            let is_last = i == segments.len();
            match self.segment(number, &name, is_last, visit)? {
                Read::Done => self.cursor = number + 1,
                Read::Vanished => {
                    // A compaction removed it after the listing: the snapshot it wrote first
                    // covers it. Read the directory again and go on from there.
                    self.cursor = number + 1;
                    let names = self.list()?;
                    self.add_written_snapshots(&names)?;
                    segments = segment_files(&names);
                    i = 0;
                }
            }
        }
        if !self.stopped {
            self.meet_snapshots_before(u64::MAX, visit)?;
        }
        if !self.stopped {
            self.settle_the_end(visit)?;
        }
        if !self.stopped {
            self.end(visit);
        }
        Ok(())
    }

    /// After [`Walker::walk`]: reads what a gateway appended since (new bytes in the last
    /// segment, new segments, new snapshots), emitting items as the walk does. An incomplete
    /// last record is a record still being written: it waits for the next poll.
    pub(crate) fn poll(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let names = self.list()?;
        self.add_written_snapshots(&names)?;
        self.meet_snapshots_read(visit);
        let segments = segment_files(&names);
        if let Some((number, len)) = self.unfinished
            && self.file_len(&names, number) != Some(len)
        {
            // A writer replaced the unfinished segment: read it again.
            self.unfinished = None;
            self.torn_tail = None;
            self.cursor = number;
        }
        loop {
            if self.stopped {
                return Ok(());
            }
            if self.current.is_none() {
                let Some((number, name)) =
                    segments.iter().find(|(n, _)| *n >= self.cursor).cloned()
                else {
                    return Ok(());
                };
                self.meet_snapshots_before(number, visit)?;
                self.torn_tail = None;
                let read = self.segment(number, &name, true, visit)?;
                self.cursor = number + 1;
                if matches!(read, Read::Vanished) || self.current.is_none() {
                    continue;
                }
            }
            let number = self.current.as_ref().map_or(0, |c| c.number);
            let newer = segments.iter().any(|(n, _)| *n > number);
            let finished = self.read_on(newer, visit)?;
            self.meet_snapshots_read(visit);
            if !finished {
                return Ok(());
            }
            self.current = None;
        }
    }

    /// The directory's listing, after checking that it holds a log.
    fn list_log(&self) -> Result<Vec<String>> {
        let dir = &self.dir;
        if !self
            .storage
            .is_dir(dir)
            .map_err(|e| Error::io("stat", dir, e))?
        {
            return Err(Error::NotFound { dir: dir.clone() });
        }
        let names = self.list()?;
        if !names.iter().any(|n| is_log_file(n)) {
            return Err(Error::NotFound { dir: dir.clone() });
        }
        Ok(names)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.storage
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))
    }

    fn file_len(&self, names: &[String], number: u64) -> Option<u64> {
        let name = names
            .iter()
            .find(|n| parse_segment_name(n) == Some(number))?;
        self.storage
            .open(&self.dir.join(name), false)
            .and_then(|f| f.len())
            .ok()
    }

    fn advance_progress(&mut self, bytes: u64) {
        self.bytes_read += bytes;
        if let Some(progress) = &mut self.progress
            && self.bytes_read >= self.progress_at
        {
            progress(self.bytes_read);
            self.progress_at = self.bytes_read + PROGRESS_EVERY_BYTES;
        }
    }

    /// Hands `item` to the visitor; a visitor that breaks stops the walk.
    fn emit(stopped: &mut bool, visit: &mut Visit<'_>, item: &Item<'_>) {
        if visit(item).is_break() {
            *stopped = true;
        }
    }

    /// Step 0 of "Reading a log": the snapshots, newest first. The newest valid one that agrees
    /// with the segments is the start; damaged ones newer than it become damage right after it
    /// (or at the very beginning, with no start); damaged ones older than it are reported now.
    fn plan_snapshots(&mut self, names: &[String], visit: &mut Visit<'_>) -> Result<()> {
        let mut snapshots: Vec<(u64, &String)> = names
            .iter()
            .filter_map(|n| parse_snapshot_name(n).map(|seq| (seq, n)))
            .collect();
        snapshots.sort_unstable_by(|a, b| b.cmp(a));
        let mut start_found = false;
        for (last_seq, name) in snapshots {
            self.book.seen.insert(name.clone());
            match self.read_snapshot(names, name, last_seq)? {
                Ok((snapshot, bytes)) => {
                    let role = if start_found {
                        SnapshotRole::Older
                    } else {
                        SnapshotRole::Start
                    };
                    start_found = true;
                    self.book.ahead.push(ValidSnapshot {
                        file: name.clone(),
                        snapshot,
                        bytes,
                        role,
                    });
                }
                Err((bytes, detail)) if !start_found => {
                    self.book
                        .damaged_after_start
                        .push((name.clone(), bytes, detail));
                }
                Err((bytes, detail)) => {
                    let region = self.damage(name, 0, bytes, detail).into_corruption(None);
                    let item = Item::Damage(DamageSeen {
                        kind: DamageKind::UnreadSnapshot,
                        region: &region,
                    });
                    Self::emit(&mut self.stopped, visit, &item);
                }
            }
        }
        self.book.ahead.reverse();
        self.book.damaged_after_start.reverse();
        if !start_found {
            self.damaged_snapshots_pending();
        }
        Ok(())
    }

    /// Reads one snapshot: `Ok` if valid and in agreement with the segments, otherwise its
    /// length and what is wrong. A version this build does not read is an error.
    #[allow(clippy::type_complexity)]
    fn read_snapshot(
        &self,
        names: &[String],
        name: &str,
        last_seq: u64,
    ) -> Result<std::result::Result<(Snapshot, u64), (u64, String)>> {
        let path = self.dir.join(name);
        let len = || {
            self.storage
                .open(&path, false)
                .and_then(|f| f.len())
                .unwrap_or(0)
        };
        Ok(match read_snapshot(self.storage, &path, last_seq)? {
            Ok((snapshot, bytes)) => {
                match uncovered_segment(self.storage, &self.dir, names, &snapshot)? {
                    None => Ok((snapshot, bytes)),
                    Some(detail) => Err((bytes, detail)),
                }
            }
            Err(detail) => Err((len(), detail)),
        })
    }

    /// Snapshots that appeared since the listing before: a compaction of the live log wrote
    /// them. Damaged ones are reported once a valid record follows, like any damage.
    fn add_written_snapshots(&mut self, names: &[String]) -> Result<()> {
        for name in names {
            let Some(last_seq) = parse_snapshot_name(name) else {
                continue;
            };
            if !self.book.seen.insert(name.clone()) {
                continue;
            }
            match self.read_snapshot(names, name, last_seq) {
                Ok(Ok((snapshot, bytes))) => self.book.ahead.push(ValidSnapshot {
                    file: name.clone(),
                    snapshot,
                    bytes,
                    role: SnapshotRole::Written,
                }),
                Ok(Err((bytes, detail))) => {
                    let damage = self.damage(name, 0, bytes, detail);
                    self.pending.push(damage);
                }
                // Removed again by a later compaction between the listing and the reading.
                Err(e) if e.io_kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.book
            .ahead
            .sort_by_key(|s| (s.snapshot.last_seq, s.snapshot.next_segment_no));
        Ok(())
    }

    fn damaged_snapshots_pending(&mut self) {
        for (name, bytes, detail) in mem::take(&mut self.book.damaged_after_start) {
            let damage = self.damage(&name, 0, bytes, detail);
            self.pending.push(damage);
        }
    }

    /// Meets every snapshot that covers the segments below `number`, oldest first.
    fn meet_snapshots_before(&mut self, number: u64, visit: &mut Visit<'_>) -> Result<()> {
        while !self.stopped
            && self
                .book
                .ahead
                .first()
                .is_some_and(|s| s.snapshot.next_segment_no <= number)
        {
            let s = self.book.ahead.remove(0);
            self.meet_snapshot(s, visit);
        }
        Ok(())
    }

    /// Meets every snapshot that covers no record the walk has not read yet: one a compaction
    /// wrote while the walk follows the log, met as soon as the walk has read up to it.
    fn meet_snapshots_read(&mut self, visit: &mut Visit<'_>) {
        while !self.stopped
            && self
                .book
                .ahead
                .first()
                .is_some_and(|s| s.snapshot.last_seq < self.next_seq)
        {
            let s = self.book.ahead.remove(0);
            self.meet_snapshot(s, visit);
        }
    }

    /// A valid snapshot at its place: the walk takes its state over, after checking it against
    /// the fold when the walk read exactly the records it covers.
    fn meet_snapshot(&mut self, s: ValidSnapshot, visit: &mut Visit<'_>) {
        let snapshot = s.snapshot;
        let last_seq = snapshot.last_seq;
        let read_to = self.next_seq - 1;
        let behind = read_to > last_seq;
        let compacted = (read_to < last_seq).then_some((self.next_seq, last_seq));
        if let Some(point) = self.point
            && !behind
            && point.passed_by(last_seq, snapshot.last_record_ms)
        {
            let known_before = (read_to, self.last_ms);
            if compacted.is_some()
                && point.inside(known_before, (last_seq + 1, snapshot.last_record_ms))
            {
                self.unknowable = Some(Unknowable::Compacted {
                    snapshot: s.file.clone(),
                    first_seq: self.next_seq,
                    last_seq,
                    known_before,
                    known_after_ms: snapshot.last_record_ms,
                });
            }
            self.stopped = true;
            return;
        }
        let running = snapshot.running.len();
        let marks = snapshot.marks.len();
        let gaps = snapshot.gaps.clone();
        let (last_record_ms, created_ms, next_segment_no, coverage) = (
            snapshot.last_record_ms,
            snapshot.created_ms,
            snapshot.next_segment_no,
            snapshot.coverage_since_ms,
        );
        let mut matches_records = None;
        if !behind {
            let set = snapshot.into_set();
            if compacted.is_none() && self.pending.is_empty() {
                matches_records = Some(set == self.set);
            }
            self.set = set;
            self.next_seq = last_seq + 1;
            self.last_seq = last_seq;
            self.last_ms = last_record_ms;
            let since = &mut self.coverage_since_ms;
            *since = Some(since.map_or(coverage, |c| c.min(coverage)));
        }
        let item = Item::Snapshot(SnapshotSeen {
            file: &s.file,
            role: s.role,
            last_seq,
            next_segment_no,
            last_record_ms,
            created_ms,
            bytes: s.bytes,
            running,
            marks,
            gaps: &gaps,
            compacted,
            matches_records,
            behind,
        });
        Self::emit(&mut self.stopped, visit, &item);
        if s.role == SnapshotRole::Start {
            self.damaged_snapshots_pending();
        }
    }

    /// A damaged region of `segment` starting after the last valid record.
    fn damage(&self, segment: &str, start: u64, end: u64, detail: String) -> Damage {
        Damage {
            segment: segment.to_string(),
            start,
            end,
            after_seq: self.next_seq - 1,
            after_ms: self.last_ms,
            detail,
            torn_possible: false,
        }
    }

    /// Steps 1 to 4 for one segment: its header, then its frames.
    fn segment(
        &mut self,
        number: u64,
        name: &str,
        is_last: bool,
        visit: &mut Visit<'_>,
    ) -> Result<Read> {
        let path = self.dir.join(name);
        let file = match self.storage.open(&path, false) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Vanished),
            Err(e) => return Err(Error::io("open", &path, e)),
            Ok(file) => file,
        };
        // As replay reads it: the last segment copied, the sealed ones mapped.
        let bytes = read_segment_file(&*file, is_last).map_err(|e| Error::io("read", &path, e))?;
        if let FileBytes::Mapped(map) = &bytes {
            // Read once, front to back: let the kernel read ahead. Only a hint.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        self.segments += 1;
        let len = bytes.len() as u64;
        // The segment's data ends where its reserved space (the run of 0xFF that ends it)
        // begins.
        let data_end = reserved_start(&bytes).max(SEGMENT_HEADER_BYTES);
        let checked = check_header(number, self.next_seq, &path, &bytes)?;
        let item = Item::Segment(SegmentSeen {
            file: name,
            number,
            bytes: data_end.min(bytes.len()) as u64,
            header: checked.as_ref().map(|h| *h).map_err(|d| d.detail.clone()),
        });
        Self::emit(&mut self.stopped, visit, &item);
        self.advance_progress(len.min(SEGMENT_HEADER_BYTES as u64));
        let header = match checked {
            Ok(header) => {
                self.begin_segment(name, &header);
                Some(header)
            }
            Err(DamagedHeader { unreadable, .. })
                if is_last && unreadable && is_unfinished_header(&bytes, number) =>
            {
                // Left by an older build that wrote headers in place: nothing in it was ever
                // acknowledged; a torn tail.
                self.torn_tail = Some(TornTail {
                    segment: name.to_string(),
                    offset: 0,
                    bytes: len,
                    cut: false,
                });
                self.unfinished = Some((number, len));
                return Ok(Read::Done);
            }
            Err(DamagedHeader { detail, .. }) => {
                let header_end = len.min(SEGMENT_HEADER_BYTES as u64);
                let damage = self.damage(name, 0, header_end, detail);
                self.pending.push(damage);
                None
            }
        };
        if header.is_none() && len <= SEGMENT_HEADER_BYTES as u64 {
            return Ok(Read::Done);
        }
        let salt = header.map_or_else(|| salt_field(&bytes), |h| h.salt);
        let mut current = Current {
            number,
            name: name.to_string(),
            file,
            header,
            salt,
            resume: SEGMENT_HEADER_BYTES as u64,
            resume_seq: self.next_seq,
        };
        self.scan(&mut current, &bytes[SEGMENT_HEADER_BYTES..data_end], visit);
        self.current = Some(current);
        Ok(Read::Done)
    }

    /// A valid header: it extends the coverage; a base sequence above the next expected one
    /// means records are missing (once: not when damage already accounts for them).
    fn begin_segment(&mut self, name: &str, header: &SegmentHeader) {
        let since = &mut self.coverage_since_ms;
        *since = Some(since.map_or(header.log_created_ms, |c| c.min(header.log_created_ms)));
        if header.base_seq > self.next_seq && self.pending.is_empty() {
            let detail = format!(
                "records {}..{} are missing: no segment holds them",
                self.next_seq,
                header.base_seq - 1
            );
            let damage = self.damage(name, 0, 0, detail);
            self.pending.push(damage);
        }
        self.next_seq = header.base_seq;
    }

    /// Scans `body`, the bytes of `current` from its `resume` offset on, folding and emitting
    /// each valid record and holding damage in `pending`.
    fn scan(&mut self, current: &mut Current, body: &[u8], visit: &mut Visit<'_>) {
        let base = current.resume;
        let mut scanner = Scanner::new(body, base, current.salt, self.next_seq);
        let mut reported = base;
        while !self.stopped
            && let Some(scanned) = scanner.next()
        {
            match scanned {
                Scanned::Frame(frame) => {
                    if self.accept(&current.name, frame, visit) {
                        current.resume = frame.end();
                        current.resume_seq = self.next_seq;
                    }
                    let end = frame.end();
                    self.advance_progress(end - reported);
                    reported = end;
                }
                Scanned::Damaged { start, end } => {
                    let detail = if start == end {
                        format!(
                            "records {}..{} are missing",
                            self.next_seq,
                            scanner.next_seq() - 1
                        )
                    } else {
                        "no valid record here".to_string()
                    };
                    let damage = Damage {
                        // Nothing in a segment with a damaged header is the trace of a crash.
                        torn_possible: current.header.is_some(),
                        ..self.damage(&current.name, start, end, detail)
                    };
                    self.pending.push(damage);
                    self.advance_progress(end - reported);
                    reported = end;
                }
            }
        }
    }

    /// A frame whose checksum holds: settle the damage before it, then fold and emit its
    /// events; or hold it as damage if its payload is not valid. Returns whether it was a valid
    /// record.
    fn accept(&mut self, segment: &str, frame: Frame<'_>, visit: &mut Visit<'_>) -> bool {
        // Most records hold one event: the vector allocates only for a batch's second.
        let mut events: Vec<EventRef<'_>> = Vec::new();
        let mut first_event = None;
        let valid = decode_payload_with(frame.payload, |event, _| match first_event {
            None => first_event = Some(event),
            Some(_) => events.push(event),
        });
        let Some(first_event) = first_event.filter(|_| valid) else {
            let detail = format!(
                "record {} has a valid checksum but is not a valid event",
                frame.seq
            );
            let damage = self.damage(segment, frame.offset, frame.end(), detail);
            self.pending.push(damage);
            // Its checksum holds, so its sequence number is real: it is used.
            self.next_seq = frame.seq + 1;
            return false;
        };
        let first = (frame.seq, first_event.at_ms());
        if let Some(point) = self.point
            && point.passed_by(first.0, Some(first.1))
        {
            // The state at the point is the one before this record, unless the point lies in
            // the damage before it: then the log cannot know it.
            let inside = mem::take(&mut self.pending)
                .into_iter()
                .map(|d| d.into_corruption(Some(first)))
                .find(|c| point.inside((c.after_seq, c.after_ms), (first.0, Some(first.1))));
            self.unknowable = inside.map(Unknowable::Damaged);
            self.stopped = true;
            return true;
        }
        self.settle_pending(Some(first), visit);
        let batch = 1 + events.len();
        for (index, event) in std::iter::once(first_event).chain(events).enumerate() {
            if self.stopped {
                break;
            }
            if let Some(point) = self.point
                && point.passed_by(frame.seq, Some(event.at_ms()))
            {
                self.stopped = true;
                break;
            }
            let ended = match event {
                EventRef::Completed { key, .. } => self.set.get(key).map(|r| r.run.started_at_ms),
                _ => None,
            };
            let applied = self.set.apply(event);
            self.records += 1;
            self.last_seq = frame.seq;
            self.last_ms = Some(event.at_ms());
            let item = Item::Event(EventSeen {
                seq: frame.seq,
                segment,
                offset: frame.offset,
                index,
                batch,
                event,
                applied,
                ended_run_started_at_ms: ended.filter(|_| applied == Applied::Completed),
            });
            Self::emit(&mut self.stopped, visit, &item);
        }
        self.next_seq = frame.seq + 1;
        true
    }

    /// The damage held so far, followed by a valid record (`before`) or reaching the end of the
    /// log (`None`): corruption, reported where it lies.
    fn settle_pending(&mut self, before: Option<(u64, u64)>, visit: &mut Visit<'_>) {
        for damage in mem::take(&mut self.pending) {
            let region = damage.into_corruption(before);
            let item = Item::Damage(DamageSeen {
                kind: DamageKind::Corruption,
                region: &region,
            });
            Self::emit(&mut self.stopped, visit, &item);
            self.corruption.push(region);
        }
    }

    /// The end of the walk: damage at the end of the last segment is the end of the data
    /// (a record still being written, or a torn tail) or corruption; elsewhere, corruption.
    fn settle_the_end(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let tail_segment = self
            .current
            .as_ref()
            .filter(|c| c.header.is_some())
            .map(|c| c.name.clone());
        let (at_tail, elsewhere): (Vec<Damage>, Vec<Damage>) = mem::take(&mut self.pending)
            .into_iter()
            .partition(|d| tail_segment.as_deref() == Some(d.segment.as_str()));
        self.pending = elsewhere;
        self.settle_pending(None, visit);
        if at_tail.is_empty() {
            return Ok(());
        }
        match self.classify(&at_tail)? {
            TailVerdict::Unfinished => {
                let first = &at_tail[0];
                self.torn_tail = Some(TornTail {
                    segment: first.segment.clone(),
                    offset: first.start,
                    bytes: at_tail.iter().map(|d| d.end - d.start).sum(),
                    cut: false,
                });
            }
            TailVerdict::Corrupt => {
                let end = at_tail.last().map_or(0, |d| d.end);
                self.pending = at_tail;
                self.settle_pending(None, visit);
                // Reported: a later poll reads on after it.
                if let Some(current) = &mut self.current {
                    current.resume = current.resume.max(end);
                    current.resume_seq = self.next_seq;
                }
            }
        }
        Ok(())
    }

    /// Reads the bytes of the damaged regions at the end of the current segment and classifies
    /// them (see `end`).
    fn classify(&self, at_tail: &[Damage]) -> Result<TailVerdict> {
        let (Some(current), Some(first), Some(last)) =
            (&self.current, at_tail.first(), at_tail.last())
        else {
            return Ok(TailVerdict::Corrupt);
        };
        // Longer than one frame: corruption without reading a byte.
        if last.end - first.start > UNSYNCED_TAIL_BYTES_MAX {
            return Ok(TailVerdict::Corrupt);
        }
        let mut bytes = vec![0u8; (last.end - first.start) as usize];
        read_exact_at(&*current.file, &mut bytes, first.start)
            .map_err(|e| Error::io("read", self.dir.join(&current.name), e))?;
        Ok(classify_tail(at_tail, &bytes, current.salt))
    }

    /// Reads what was appended to the current segment since it was last read. Returns whether
    /// the segment is finished: a newer one exists (`newer`, from a listing made before this
    /// read) or the file was removed, so nothing more will be appended to it. An unfinished
    /// last record of a segment that is not finished is a record still being written: held
    /// back, and read again at the next poll.
    fn read_on(&mut self, newer: bool, visit: &mut Visit<'_>) -> Result<bool> {
        let Some(mut current) = self.current.take() else {
            return Ok(true);
        };
        let path = self.dir.join(&current.name);
        let mut removed = false;
        match self.storage.open(&path, false) {
            // A read-write open may have replaced the file with a copy (cutting a torn tail).
            Ok(file) => current.file = file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => removed = true,
            Err(e) => return Err(Error::io("open", &path, e)),
        }
        let len = current
            .file
            .len()
            .map_err(|e| Error::io("stat", &path, e))?;
        // Whatever was held back at the end is read again from the last valid record.
        let name = current.name.clone();
        let resume = current.resume;
        self.pending
            .retain(|d| !(d.segment == name && d.start >= resume));
        self.torn_tail = None;
        if len > current.resume {
            self.next_seq = current.resume_seq;
            let mut body = vec![0u8; (len - current.resume) as usize];
            read_exact_at(&*current.file, &mut body, current.resume)
                .map_err(|e| Error::io("read", &path, e))?;
            // Up to the reserved space the writer has not filled yet.
            body.truncate(reserved_start(&body));
            self.scan(&mut current, &body, visit);
        }
        let finished = newer || removed;
        self.current = Some(current);
        if !finished && !self.stopped {
            self.settle_the_end(visit)?;
        }
        Ok(finished)
    }

    /// The end item: where the log ends now.
    fn end(&mut self, visit: &mut Visit<'_>) {
        let torn_tail = self.torn_tail.clone();
        let item = Item::End(EndSeen {
            last_seq: self.last_seq,
            last_ms: self.last_ms,
            torn_tail: torn_tail.as_ref(),
            running: self.set.len(),
        });
        Self::emit(&mut self.stopped, visit, &item);
    }

    /// The torn tail found at the end of the last read, if any.
    pub(crate) fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// Whether the visitor or the point stopped the walk.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// The state folded so far.
    pub(crate) fn set(&self) -> &RunningSet {
        &self.set
    }
}

/// The segment files among `names`, in ascending number.
fn segment_files(names: &[String]) -> Vec<(u64, String)> {
    let mut segments: Vec<(u64, String)> = names
        .iter()
        .filter_map(|name| parse_segment_name(name).map(|n| (n, name.clone())))
        .collect();
    segments.sort();
    segments
}

/// The salt field of a segment whose header is damaged, as found.
fn salt_field(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"))
}
