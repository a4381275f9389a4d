//! The shell around the reading: lists a log directory, checks what each entry with a log name
//! is (only regular files are opened, so that no FIFO or device can block a reader), reads the
//! snapshots and segments through the store's reading side ([`LogSource`]), and feeds them to the pure core in log
//! order; then, for the offline tools, reads on as a gateway appends.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use super::core::{End, Found, LastKind, Reading, Visit};
use super::snapshots::{Book, SnapshotFile, contradicts};
use crate::error::{Error, Result};
use crate::fold::RunningSet;
use crate::frame::{SEGMENT_HEADER_BYTES, SegmentHeader, reserved_start};
use crate::layout::{is_log_file, parse_segment_name, parse_snapshot_name};
use crate::limits::SNAPSHOT_BYTES_MAX;
use crate::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotError};
use crate::storage::{EntryKind, FileBytes};
use crate::store::{LogSource, Part};

/// Where a reading starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the newest valid snapshot: older snapshots and the segments it covers are not read
    /// (replay, and a read-write open).
    Newest,
    /// From the beginning: every snapshot is checked, and each valid one met at its place in
    /// the log; segments a compaction left behind are read (the offline tools).
    Beginning,
}

/// The segment being read, kept so that a later poll reads on where this one stopped.
struct Current {
    number: u64,
    name: String,
    /// Kept open: a compaction may remove the file while it is being read, and an open handle
    /// still reads it.
    file: Box<dyn Part>,
    /// The bytes last read of it, from offset `base`: the whole segment at first, what a poll
    /// read since.
    base: u64,
    bytes: FileBytes,
}

/// What became of one segment the reading met.
enum SegmentRead {
    Read,
    /// The file was removed between the listing and its opening (a compaction).
    Vanished,
    /// Not read: a snapshot still to meet covers it and the records missing before it, so the
    /// reading goes on from that snapshot, at segment `below` (see [`LogReader::covered`]).
    Covered {
        below: u64,
    },
}

/// A reading of one log through its store's reading side.
pub(crate) struct LogReader<'s> {
    source: Box<dyn LogSource + 's>,
    dir: PathBuf,
    start: Start,
    /// Only the segments numbered below this are read (a compaction folding what it covers).
    below: Option<u64>,
    reading: Reading,
    book: Book,
    current: Option<Current>,
    /// Segments numbered below this are done.
    cursor: u64,
    /// A reading that starts over when the log changes under it (see `settle`): a file removed
    /// between the listing and its reading ends it with an error of kind `NotFound`, instead
    /// of being followed to the snapshot that replaced it.
    pub(crate) starts_over: bool,
}

impl<'s> LogReader<'s> {
    /// A reading of the log `source` holds.
    pub(crate) fn over(source: Box<dyn LogSource + 's>, start: Start) -> LogReader<'s> {
        let dir = source.place().to_path_buf();
        LogReader {
            source,
            reading: Reading::new(&dir),
            dir,
            start,
            below: None,
            book: Book::default(),
            current: None,
            cursor: 0,
            starts_over: false,
        }
    }

    /// Forgets everything read, for a new reading of the directory: only where the reading
    /// starts, which segments it reads, the point it stops at and its progress are kept.
    pub(crate) fn start_over(&mut self) {
        self.reading.start_over();
        self.book = Book::default();
        self.current = None;
        self.cursor = 0;
    }

    /// The log directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads only the segments numbered below `segment_no`.
    pub(crate) fn only_below(mut self, segment_no: u64) -> LogReader<'s> {
        self.below = Some(segment_no);
        self
    }

    /// The directory's listing, after checking that it holds a log: a directory with neither a
    /// segment nor a snapshot file is not a log, and must not read as "nothing in flight".
    pub(crate) fn list_log(&self) -> Result<Vec<String>> {
        let names = if self.source.exists()? {
            self.list()?
        } else {
            Vec::new()
        };
        if !names.iter().any(|n| is_log_file(n)) {
            return Err(Error::NotFound {
                dir: self.dir.clone(),
            });
        }
        Ok(names)
    }

    /// The directory's listing.
    pub(crate) fn list(&self) -> Result<Vec<String>> {
        self.source.list()
    }

    /// Reads the whole log as `names` lists it, ending with [`Item::End`] unless the visitor
    /// or the point stopped it first.
    ///
    /// [`Item::End`]: super::Item::End
    pub(crate) fn read(
        &mut self,
        names: &[String],
        visit: &mut (impl Visit + ?Sized),
    ) -> Result<()> {
        self.offer_snapshots(names, visit)?;
        if self.start == Start::Newest {
            self.cursor = self.book.start_covers_below().unwrap_or(0);
        }
        let mut segments = self.segment_files(names);
        let mut i = 0;
        while i < segments.len() && !self.reading.stopped {
            let (number, name) = segments[i].clone();
            i += 1;
            if number < self.cursor {
                continue;
            }
            self.book.meet_before(number, &mut self.reading, visit);
            if self.reading.stopped {
                break;
            }
            match self.segment(number, &name, i == segments.len(), visit)? {
                SegmentRead::Read => self.cursor = number + 1,
                SegmentRead::Covered { below } => {
                    self.book.meet_before(below, &mut self.reading, visit);
                    self.cursor = below;
                }
                SegmentRead::Vanished if self.start == Start::Newest || self.starts_over => {
                    return Err(removed_while_reading(&self.dir.join(&name)));
                }
                SegmentRead::Vanished => {
                    // A compaction removed it after the listing: the snapshot it wrote first
                    // covers it. Read the directory again and go on from there.
                    self.cursor = number + 1;
                    let names = self.list()?;
                    self.written_snapshots(&names, visit)?;
                    segments = self.segment_files(&names);
                    i = 0;
                }
            }
        }
        self.finish_reading(visit)
    }

    fn finish_reading(&mut self, visit: &mut (impl Visit + ?Sized)) -> Result<()> {
        if !self.reading.stopped {
            self.book.meet_before(u64::MAX, &mut self.reading, visit);
        }
        if !self.reading.stopped {
            self.settle_the_end(visit)?;
        }
        if !self.reading.stopped {
            self.reading.end(visit);
        }
        Ok(())
    }

    /// The segment files among `names` this reading reads, in ascending number.
    fn segment_files(&self, names: &[String]) -> Vec<(u64, String)> {
        let mut segments: Vec<(u64, String)> = names
            .iter()
            .filter_map(|name| parse_segment_name(name).map(|n| (n, name.clone())))
            .filter(|(n, _)| self.below.is_none_or(|below| *n < below))
            .collect();
        segments.sort();
        segments
    }

    /// The snapshots, newest first: the newest valid one that agrees with the segments is the
    /// start; from the newest, older ones are not read.
    fn offer_snapshots(
        &mut self,
        names: &[String],
        visit: &mut (impl Visit + ?Sized),
    ) -> Result<()> {
        let mut snapshots: Vec<(u64, &String)> = names
            .iter()
            .filter_map(|n| parse_snapshot_name(n).map(|seq| (seq, n)))
            .collect();
        snapshots.sort_unstable_by(|a, b| b.cmp(a));
        for (last_seq, name) in snapshots {
            if self.start == Start::Newest && self.book.has_start() {
                break;
            }
            let found = self.read_snapshot(names, name, last_seq)?;
            self.book.offer(name, found, &mut self.reading, visit);
        }
        self.book.offered_all(&mut self.reading, visit);
        Ok(())
    }

    /// Snapshots that appeared since the last listing: a compaction of the live log wrote them.
    fn written_snapshots(
        &mut self,
        names: &[String],
        visit: &mut (impl Visit + ?Sized),
    ) -> Result<()> {
        for name in names {
            let Some(last_seq) = parse_snapshot_name(name) else {
                continue;
            };
            if self.book.knows(name) {
                continue;
            }
            match self.read_snapshot(names, name, last_seq) {
                Ok(found) => self.book.written(name, found, &mut self.reading, visit),
                // Removed again by a later compaction between the listing and the reading.
                Err(e) if e.io_kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads and checks one snapshot file: valid (and in agreement with the segments), or
    /// damaged with why. An error only when it cannot be read at all, or when it is the start
    /// candidate and of a version this build does not read; an older one of such a version is
    /// never needed, and is damage the offline tools report.
    fn read_snapshot(&self, names: &[String], name: &str, last_seq: u64) -> Result<SnapshotFile> {
        let path = self.dir.join(name);
        let damaged = |bytes, detail| Ok(SnapshotFile::Damaged { bytes, detail });
        let gone = || removed_while_reading(&path);
        match self.source.kind(name)? {
            EntryKind::File => {}
            EntryKind::Missing => return Err(gone()),
            EntryKind::Other(what) => {
                return damaged(0, format!("damaged snapshot: not a regular file: {what}"));
            }
        }
        let file = self.source.open_part(name)?.ok_or_else(gone)?;
        let len = file.len()?;
        if len > SNAPSHOT_BYTES_MAX {
            let detail =
                format!("damaged snapshot: {len} bytes, over the limit of {SNAPSHOT_BYTES_MAX}");
            return damaged(len, detail);
        }
        let bytes = file.read_whole(false)?;
        let snapshot = match Snapshot::decode(&bytes) {
            Ok(s) if s.last_seq != last_seq => {
                let detail = format!(
                    "damaged snapshot: it says it covers records up to {}, its name says {last_seq}",
                    s.last_seq
                );
                return damaged(len, detail);
            }
            Ok(s) => s,
            Err(SnapshotError::UnsupportedVersion(found)) if !self.book.has_start() => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found,
                    supported: SNAPSHOT_VERSION,
                });
            }
            Err(e) => return damaged(len, e.to_string()),
        };
        Ok(match self.contradicted(names, &snapshot)? {
            None => SnapshotFile::Valid {
                snapshot: Box::new(snapshot),
                bytes: len,
            },
            Some(detail) => SnapshotFile::Damaged { bytes: len, detail },
        })
    }

    /// Whether a segment the snapshot says it covers contradicts it (see [`contradicts`]).
    fn contradicted(&self, names: &[String], snapshot: &Snapshot) -> Result<Option<String>> {
        for name in names {
            let Some(number) = parse_segment_name(name).filter(|&n| n < snapshot.next_segment_no)
            else {
                continue;
            };
            if self.source.kind(name)? != EntryKind::File {
                continue; // holds no record
            }
            let Some(file) = self.source.open_part(name)? else {
                return Err(removed_while_reading(&self.dir.join(name)));
            };
            let mut header = [0u8; SEGMENT_HEADER_BYTES];
            let Ok(header) = file.read_exact_at(&mut header, 0).map(|()| header) else {
                continue; // too short to hold records: nothing skipped
            };
            let Ok(header) = SegmentHeader::decode(&header) else {
                continue;
            };
            let mut read_failed = None;
            let holds_records = || match file.read_whole(false) {
                Ok(bytes) => reserved_start(&bytes) > SEGMENT_HEADER_BYTES,
                Err(e) => {
                    read_failed = Some(e);
                    false
                }
            };
            let found = contradicts(snapshot, number, name, &header, holds_records);
            if let Some(e) = read_failed {
                return Err(e);
            }
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Reads segment `number` whole (the last one copied, never mapped: on a live log the
    /// writer fills its reserved space in place, and mapped bytes must not change under the
    /// map; every other segment is sealed).
    fn segment(
        &mut self,
        number: u64,
        name: &str,
        is_last: bool,
        visit: &mut (impl Visit + ?Sized),
    ) -> Result<SegmentRead> {
        match self.source.kind(name)? {
            EntryKind::File => {}
            EntryKind::Missing => return Ok(SegmentRead::Vanished),
            EntryKind::Other(what) => {
                self.reading.not_regular(number, name, &what);
                self.current = None;
                return Ok(SegmentRead::Read);
            }
        }
        let Some(file) = self.source.open_part(name)? else {
            return Ok(SegmentRead::Vanished);
        };
        let bytes = file.read_whole(is_last)?;
        if let Some(below) = self.covered(number, &bytes) {
            return Ok(SegmentRead::Covered { below });
        }
        #[cfg(unix)]
        if let FileBytes::Mapped(map) = &bytes {
            // Read once, front to back: let the kernel read ahead. Only a hint.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        self.reading.segment(number, name, &bytes, is_last, visit)?;
        self.current = Some(Current {
            number,
            name: name.to_string(),
            file,
            base: 0,
            bytes,
        });
        Ok(SegmentRead::Read)
    }

    /// Whether segment `number` (its bytes) is one that a compaction had not removed yet (still
    /// at work, or stopped by a crash) after removing some before it: its records do not
    /// follow the ones read, and a snapshot still to meet covers it and every record before
    /// it. Then those records are in that snapshot, not missing, and the reading goes on from
    /// it, skipping the segments it covers as replay does: returns the segment number it goes
    /// on at. (When every segment a snapshot covers is still there, they are read, and the
    /// snapshot is checked against their fold.)
    fn covered(&self, number: u64, bytes: &[u8]) -> Option<u64> {
        if self.start != Start::Beginning {
            return None;
        }
        let header = SegmentHeader::decode(bytes).ok()?;
        if header.segment_no != number || header.base_seq <= self.reading.next_seq() {
            return None;
        }
        self.book.covering(number, header.base_seq)
    }

    /// Settles the damage with nothing valid after it, showing the core the bytes of the
    /// damage at the end of the last segment it asks for.
    fn settle_the_end(&mut self, visit: &mut (impl Visit + ?Sized)) -> Result<()> {
        let bytes = match self.reading.tail_damage() {
            Some((start, end)) => Some(bytes_of(self.current.as_ref(), start, end)?),
            None => None,
        };
        self.reading.settle_the_end(bytes.as_deref(), visit);
        Ok(())
    }

    /// The name of the last segment read, if any.
    pub(crate) fn last_segment(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.name.as_str())
    }

    /// Whether the last segment read changed since it was read (a writer appended to it in
    /// place, or a read-write open replaced it) or is gone, looking at it again after each of
    /// `pauses`: a record being written when it was read is whole a moment later.
    pub(crate) fn last_segment_changed(&self, pauses: &[std::time::Duration]) -> Result<bool> {
        let Some(current) = &self.current else {
            return Ok(false);
        };
        for pause in pauses {
            if !pause.is_zero() {
                std::thread::sleep(*pause);
            }
            let Some(file) = self.source.open_part(&current.name)? else {
                return Ok(true);
            };
            let len = file.len()?;
            let read = current.base + current.bytes.len() as u64;
            if len != read {
                return Ok(true);
            }
            let mut now = vec![0u8; current.bytes.len()];
            file.read_exact_at(&mut now, current.base)?;
            if now[..] != current.bytes[..] {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What the reading found, the folded state, and the end of the log for a read-write open
    /// (with the last segment's bytes as read, so the writer need not read them again).
    pub(crate) fn finish(self) -> (Found, RunningSet, End) {
        let end = self.reading.end_of_log(self.current.map(|c| c.bytes));
        let (found, set) = self.reading.finish();
        (found, set, end)
    }

    /// What the reading found and the folded state, for a reading that writes nothing.
    pub(crate) fn found(self) -> (Found, RunningSet) {
        self.reading.finish()
    }

    /// Whether the reading stopped (a visitor said so, or a point was reached).
    pub(crate) fn stopped(&self) -> bool {
        self.reading.stopped
    }

    /// The state folded so far.
    pub(crate) fn set(&self) -> &RunningSet {
        &self.reading.set
    }

    /// The incomplete last record the last read or poll found, if any.
    pub(crate) fn torn_tail(&self) -> Option<&crate::damage::TornTail> {
        self.reading.torn_tail.as_ref()
    }

    /// The reading itself, for a walk's figures.
    pub(crate) fn into_reading(self) -> Reading {
        self.reading
    }

    // ---------------------------------------------------------------------------------------
    // Reading on.

    /// After [`LogReader::read`]: reads what a gateway appended since (new bytes in the last
    /// segment, new segments, new snapshots). An incomplete last record is a record still
    /// being written: it waits for the next poll.
    pub(crate) fn poll(&mut self, visit: &mut (impl Visit + ?Sized)) -> Result<()> {
        let names = self.list()?;
        self.written_snapshots(&names, visit)?;
        self.book.meet_read(&mut self.reading, visit);
        let segments = self.segment_files(&names);
        if let Some((number, len)) = self.reading.unfinished()
            && self.file_len(&segments, number) != Some(len)
        {
            // A writer replaced the unfinished segment: read it again.
            self.reading.forget_last();
            self.current = None;
            self.cursor = number;
        }
        loop {
            if self.reading.stopped {
                return Ok(());
            }
            if self.current.is_none() {
                let Some((number, name)) =
                    segments.iter().find(|(n, _)| *n >= self.cursor).cloned()
                else {
                    return Ok(());
                };
                self.book.meet_before(number, &mut self.reading, visit);
                self.reading.torn_tail = None;
                let read = self.segment(number, &name, true, visit)?;
                self.cursor = number + 1;
                if let SegmentRead::Covered { below } = read {
                    self.book.meet_before(below, &mut self.reading, visit);
                    self.cursor = below;
                }
                let frames = matches!(
                    self.reading.last.as_ref().map(|l| &l.kind),
                    Some(LastKind::Frames { .. })
                );
                if matches!(read, SegmentRead::Vanished | SegmentRead::Covered { .. }) || !frames {
                    self.current = None;
                    continue;
                }
            }
            let number = self.current.as_ref().map_or(0, |c| c.number);
            let newer = segments.iter().any(|(n, _)| *n > number);
            let finished = self.read_on(newer, visit)?;
            self.book.meet_read(&mut self.reading, visit);
            if !finished {
                return Ok(());
            }
            self.current = None;
        }
    }

    fn file_len(&self, segments: &[(u64, String)], number: u64) -> Option<u64> {
        let (_, name) = segments.iter().find(|(n, _)| *n == number)?;
        self.source.open_part(name).ok()??.len().ok()
    }

    /// Reads what was appended to the current segment since it was last read. Returns whether
    /// the segment is finished: a newer one exists (`newer`, from a listing made before this
    /// read) or the file was removed, so nothing more will be appended to it. An unfinished
    /// last record of a segment that is not finished is a record still being written: held
    /// back, and read again at the next poll.
    fn read_on(&mut self, newer: bool, visit: &mut (impl Visit + ?Sized)) -> Result<bool> {
        let Some(mut current) = self.current.take() else {
            return Ok(true);
        };
        let mut removed = false;
        match self.source.open_part(&current.name)? {
            // A read-write open may have replaced the file with a copy (cutting a torn tail).
            Some(file) => current.file = file,
            None => removed = true,
        }
        let len = current.file.len()?;
        if let Some(resume) = self.reading.rewind()
            && len > resume
        {
            let mut body = vec![0u8; (len - resume) as usize];
            current.file.read_exact_at(&mut body, resume)?;
            // Up to the reserved space the writer has not filled yet.
            body.truncate(reserved_start(&body));
            self.reading.scan(&body, visit);
            current.base = resume;
            current.bytes = FileBytes::Owned(body);
        }
        let finished = newer || removed;
        self.current = Some(current);
        if !finished && !self.reading.stopped {
            self.settle_the_end(visit)?;
        }
        Ok(finished)
    }
}

/// The error of a part the listing named that was gone when it was opened (a compaction
/// removed it): of kind `NotFound`, which a reading that starts over reads as a change.
fn removed_while_reading(path: &Path) -> Error {
    let gone = io::Error::new(io::ErrorKind::NotFound, "removed while reading");
    Error::io("open", path, gone)
}

/// Bytes `start..end` of the current segment: from what was read, or from the file.
fn bytes_of(current: Option<&Current>, start: u64, end: u64) -> Result<Cow<'_, [u8]>> {
    let Some(current) = current else {
        return Ok(Cow::Borrowed(&[]));
    };
    if start >= current.base && end - current.base <= current.bytes.len() as u64 {
        let (from, to) = (
            (start - current.base) as usize,
            (end - current.base) as usize,
        );
        return Ok(Cow::Borrowed(&current.bytes[from..to]));
    }
    let mut bytes = vec![0u8; (end - start) as usize];
    current.file.read_exact_at(&mut bytes, start)?;
    Ok(Cow::Owned(bytes))
}
