//! The pure core of reading a log: fed the bytes of snapshots and segments in log order, it
//! checks each header, scans the frames, folds every valid record, holds each damaged region
//! until what follows says whether it is corruption or the end of the data, and hands every
//! [`Item`] to a visitor. No file, no clock, no thread: the shell (`files`) lists the
//! directory, opens and reads the files, and feeds them here; replay, the offline tools and
//! time travel are such shells. What a reading does with its items is its visitors' business:
//! time travel is a visitor that stops the reading before a state ([`Visit::before`]), the
//! offline tools' progress one that counts the bytes the items reach (`progress`).

mod end;

use std::mem;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::item::{
    DamageKind, DamageSeen, EndSeen, EventSeen, Item, SegmentSeen, SnapshotRole, SnapshotSeen,
};
use super::tail::{Damage, UNSYNCED_TAIL_BYTES_MAX, is_torn_tail, is_unfinished_header};
use crate::damage::{Corruption, TornTail};
use crate::error::{Error, Result};
use crate::event::decode_payload_indexed;
use crate::fold::RunningSet;
use crate::frame::{
    FORMAT_VERSION, Frame, HeaderError, SEGMENT_HEADER_BYTES, Scanned, Scanner, SegmentHeader,
    reserved_start,
};
use crate::snapshot::{Snapshot, SnapshotUsed};
use crate::storage::FileBytes;

/// The visitor a reading hands each item to; [`ControlFlow::Break`] stops the reading. Generic
/// (not a `dyn` call per event): replay's visitor, which only passes events on, inlines. A
/// closure over items is a visitor.
pub(crate) trait Visit {
    /// Takes the next item, after the reading took it in (an event folded, a snapshot adopted).
    fn item(&mut self, item: &Item<'_>) -> ControlFlow<()>;

    /// Asked before the reading takes `next` in: [`ControlFlow::Break`] stops the reading right
    /// before it, so that its state is the one before `next` (time travel). Every visitor but
    /// time travel's lets it in.
    #[inline]
    fn before(&mut self, next: &Next<'_>) -> ControlFlow<()> {
        let _ = next;
        ControlFlow::Continue(())
    }
}

impl<F: FnMut(&Item<'_>) -> ControlFlow<()> + ?Sized> Visit for F {
    #[inline]
    fn item(&mut self, item: &Item<'_>) -> ControlFlow<()> {
        self(item)
    }
}

/// What the reading is about to take in ([`Visit::before`]).
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// An event of the valid record `seq`, stamped `at_ms`, before it is folded. Before a
    /// record's first event, `damage` is what the reading held since the last valid record
    /// (where the log lost records before this one; empty before the others): it is settled as
    /// corruption only if the reading goes on, and dropped if it stops here.
    Event {
        seq: u64,
        at_ms: u64,
        damage: &'a [Damage],
    },
    /// A valid snapshot, before the reading adopts its state: the state after its record
    /// `last_seq`, stamped `last_record_ms`. `compacted` names the records only it holds (the
    /// reading is at `known_before`, the last record it folded and its time), if there are any.
    Snapshot {
        file: &'a str,
        last_seq: u64,
        last_record_ms: Option<u64>,
        compacted: Option<(u64, u64)>,
        known_before: (u64, Option<u64>),
    },
}

/// A valid snapshot, to be met at its place in the log.
pub(crate) struct ValidSnapshot {
    pub file: String,
    pub snapshot: Snapshot,
    pub bytes: u64,
    pub role: SnapshotRole,
}

/// The last segment read: where reading goes on, and what a read-write open does with it.
#[derive(Clone, Debug)]
pub(crate) struct Last {
    pub number: u64,
    pub name: String,
    pub kind: LastKind,
}

/// What the last segment read was.
#[derive(Clone, Debug)]
pub(crate) enum LastKind {
    /// Frames were read: reading goes on at `resume`, expecting `resume_seq` there. The header
    /// is `None` when it is damaged (its frames validate only if the salt field survived).
    Frames {
        header: Option<SegmentHeader>,
        salt: u64,
        resume: u64,
        resume_seq: u64,
        /// The damage at its end was corruption: nothing is appended to it again.
        sealed: bool,
    },
    /// A damaged header and nothing after it.
    Short,
    /// Only part of a header, as an older build left a crash while creating it: `len` bytes,
    /// a torn tail, replaced under the same number.
    Unfinished { len: u64 },
    /// Not a regular file (a directory, a FIFO, a dangling link): damage, never opened for
    /// writing.
    NotRegular,
}

/// What a read-write open does to the end of the log: decided by the reading alone, and
/// carried out by the writer (`Writer::resume`), which needs nothing else.
#[derive(Debug)]
pub(crate) enum End {
    /// No segment after the snapshot (if any): start segment `segment_no`.
    Fresh { segment_no: u64 },
    /// Append to the last segment after its last valid record, at `end`; anything after it is
    /// a torn tail to cut (and sync) first.
    Append {
        /// The segment's name.
        name: String,
        header: SegmentHeader,
        end: u64,
        /// The segment as the reading read it, so the writer need not read it again.
        bytes: FileBytes,
    },
    /// The last segment ends in corruption (or its header is damaged), which must be kept:
    /// make the whole segment durable as it is and go on in `next_segment_no`.
    Seal {
        /// The segment's name.
        name: String,
        bytes: FileBytes,
        next_segment_no: u64,
    },
    /// The last segment cannot be appended to: start `segment_no`, after removing `remove` (a
    /// segment whose creation a crash interrupted).
    NewSegment {
        segment_no: u64,
        remove: Option<String>,
    },
}

/// The reading's state between items.
pub(crate) struct Reading {
    /// The log directory, only to name files in errors.
    dir: PathBuf,
    pub(crate) set: RunningSet,
    next_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) last_ms: Option<u64>,
    pub(crate) records: u64,
    pub(crate) segments: u64,
    /// Bytes of segment data read (their reserved space left out).
    pub(crate) segment_bytes: u64,
    /// Bytes of segment data scanned: headers, then frames and damage up to where each scan
    /// stopped (a poll's rescan of held damage counts again).
    pub(crate) bytes_read: u64,
    /// Damaged regions since the last valid record.
    pending: Vec<Damage>,
    pub(crate) coverage_since_ms: Option<u64>,
    pub(crate) corruption: Vec<Corruption>,
    pub(crate) torn_tail: Option<TornTail>,
    /// The snapshot the reading started from, and the gaps it kept.
    pub(crate) started_from: Option<SnapshotUsed>,
    pub(crate) gaps_before_snapshot: Vec<Corruption>,
    /// The segment a fresh log goes on in: above the newest snapshot met.
    fresh_segment_no: u64,
    pub(crate) last: Option<Last>,
    /// A visitor stopped the reading (or time travel's point did, before a state).
    pub(crate) stopped: bool,
}

impl Reading {
    pub(crate) fn new(dir: &Path) -> Reading {
        Reading {
            dir: dir.to_path_buf(),
            set: RunningSet::new(),
            next_seq: 1,
            last_seq: 0,
            last_ms: None,
            records: 0,
            segments: 0,
            segment_bytes: 0,
            bytes_read: 0,
            pending: Vec::new(),
            coverage_since_ms: None,
            corruption: Vec::new(),
            torn_tail: None,
            started_from: None,
            gaps_before_snapshot: Vec::new(),
            fresh_segment_no: 1,
            last: None,
            stopped: false,
        }
    }

    /// A new reading of the same directory: everything read is forgotten.
    pub(crate) fn start_over(&mut self) {
        *self = Reading::new(&self.dir);
    }

    /// The sequence number the next record must carry.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hands `item` to the visitor; a visitor that breaks stops the reading.
    fn emit(stopped: &mut bool, visit: &mut (impl Visit + ?Sized), item: &Item<'_>) {
        if visit.item(item).is_break() {
            *stopped = true;
        }
    }

    /// A damaged region of `file` starting after the last valid record.
    fn damage(&self, file: &str, start: u64, end: u64, detail: String) -> Damage {
        Damage {
            segment: file.to_string(),
            start,
            end,
            after_seq: self.next_seq - 1,
            after_ms: self.last_ms,
            detail,
            torn_possible: false,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Snapshots.

    /// A snapshot that cannot be read as one (`len` bytes; `detail` says why). Newer than the
    /// start, it is a region from the state the reading is at, settled by what follows; older
    /// (`unread`), it is reported at once: the reading never needs it.
    pub(crate) fn damaged_snapshot(
        &mut self,
        file: &str,
        len: u64,
        detail: String,
        unread: bool,
        visit: &mut (impl Visit + ?Sized),
    ) {
        let damage = self.damage(file, 0, len, detail);
        if !unread {
            self.pending.push(damage);
            return;
        }
        let region = damage.into_corruption(None);
        let item = Item::Damage(DamageSeen {
            kind: DamageKind::UnreadSnapshot,
            region: &region,
        });
        Self::emit(&mut self.stopped, visit, &item);
    }

    /// A valid snapshot at its place: the reading takes its state over (checking it against
    /// the fold when it read exactly the records the snapshot covers), unless it has read past
    /// it already.
    pub(crate) fn meet_snapshot(&mut self, s: ValidSnapshot, visit: &mut (impl Visit + ?Sized)) {
        let last_seq = s.snapshot.last_seq;
        let read_to = self.next_seq - 1;
        let behind = read_to > last_seq;
        let compacted = (read_to < last_seq).then_some((self.next_seq, last_seq));
        if !behind {
            let next = Next::Snapshot {
                file: &s.file,
                last_seq,
                last_record_ms: s.snapshot.last_record_ms,
                compacted,
                known_before: (read_to, self.last_ms),
            };
            if visit.before(&next).is_break() {
                self.stopped = true;
                return;
            }
        }
        let snapshot = s.snapshot;
        let (running, marks) = (snapshot.running.len(), snapshot.marks.len());
        let (last_record_ms, created_ms, next_segment_no) = (
            snapshot.last_record_ms,
            snapshot.created_ms,
            snapshot.next_segment_no,
        );
        let gaps = snapshot.gaps.clone();
        let mut matches_records = None;
        if !behind {
            if s.role == SnapshotRole::Start {
                self.started_from = Some(SnapshotUsed {
                    file: s.file.clone(),
                    last_seq,
                    bytes: s.bytes,
                    created_ms,
                });
                self.gaps_before_snapshot = gaps.clone();
            }
            matches_records = self.adopt_snapshot(snapshot, compacted.is_none());
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
    }

    /// The snapshot's state becomes the reading's; returns whether it equals the fold's, when
    /// `compare` (the reading folded exactly the records it covers, with no damage between).
    fn adopt_snapshot(&mut self, snapshot: Snapshot, compare: bool) -> Option<bool> {
        self.next_seq = snapshot.last_seq + 1;
        self.last_seq = snapshot.last_seq;
        self.last_ms = snapshot.last_record_ms;
        self.fresh_segment_no = snapshot.next_segment_no;
        let coverage = snapshot.coverage_since_ms;
        let since = &mut self.coverage_since_ms;
        *since = Some(since.map_or(coverage, |c| c.min(coverage)));
        let set = snapshot.into_set();
        let matches = (compare && self.pending.is_empty()).then(|| set == self.set);
        self.set = set;
        matches
    }

    // ---------------------------------------------------------------------------------------
    // Segments.

    /// A file named as segment `number` that is not a regular file (`what` it is instead):
    /// damage the size of nothing, after the last valid record. Never read, never written.
    pub(crate) fn not_regular(&mut self, number: u64, name: &str, what: &str) {
        let detail = format!("not a regular file: {what}; only regular files are read");
        let damage = self.damage(name, 0, 0, detail);
        self.pending.push(damage);
        self.last = Some(Last {
            number,
            name: name.to_string(),
            kind: LastKind::NotRegular,
        });
    }

    /// Reads segment `number` (file `name`) whole: its header, then its frames up to its
    /// reserved space. `is_last`: nothing follows it in the listing (so an unfinished header
    /// can be a crash's trace).
    pub(crate) fn segment(
        &mut self,
        number: u64,
        name: &str,
        bytes: &[u8],
        is_last: bool,
        visit: &mut (impl Visit + ?Sized),
    ) -> Result<()> {
        self.segments += 1;
        let len = bytes.len() as u64;
        // The segment's data ends where its reserved space (the run of 0xFF that ends it)
        // begins: no frame ends inside it.
        let data_end = reserved_start(bytes).max(SEGMENT_HEADER_BYTES);
        self.segment_bytes += reserved_start(bytes) as u64;
        let checked = self.check_header(number, name, bytes)?;
        let item = Item::Segment(SegmentSeen {
            file: name,
            number,
            bytes: data_end.min(bytes.len()) as u64,
            header: checked.as_ref().map(|h| *h).map_err(|d| d.detail.clone()),
        });
        Self::emit(&mut self.stopped, visit, &item);
        self.bytes_read += len.min(SEGMENT_HEADER_BYTES as u64);
        let last = |kind| Last {
            number,
            name: name.to_string(),
            kind,
        };
        let header = match checked {
            Ok(header) => {
                self.begin_segment(name, &header);
                Some(header)
            }
            Err(damaged)
                if is_last && damaged.unreadable && is_unfinished_header(bytes, number) =>
            {
                // Left by an older build that wrote headers in place: nothing in it was ever
                // acknowledged; a torn tail, replaced under the same number.
                self.torn_tail = Some(TornTail {
                    segment: name.to_string(),
                    offset: 0,
                    bytes: len,
                    cut: false,
                });
                self.last = Some(last(LastKind::Unfinished { len }));
                return Ok(());
            }
            Err(damaged) => {
                let header_end = len.min(SEGMENT_HEADER_BYTES as u64);
                let damage = self.damage(name, 0, header_end, damaged.detail);
                self.pending.push(damage);
                None
            }
        };
        if header.is_none() && len <= SEGMENT_HEADER_BYTES as u64 {
            self.last = Some(last(LastKind::Short));
            return Ok(());
        }
        // A segment whose header is damaged may still have readable frames: each checksum covers
        // the salt, so if the header's salt field survived they validate, and if not none does.
        let salt = header.map_or_else(|| salt_field(bytes), |h| h.salt);
        self.last = Some(last(LastKind::Frames {
            header,
            salt,
            resume: SEGMENT_HEADER_BYTES as u64,
            resume_seq: self.next_seq,
            sealed: false,
        }));
        self.scan(&bytes[SEGMENT_HEADER_BYTES..data_end], visit);
        Ok(())
    }

    /// Checks the header of segment `number`: the outer error is fatal (a version this build
    /// does not read), the inner one says why the header is damaged.
    fn check_header(
        &self,
        number: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<std::result::Result<SegmentHeader, DamagedHeader>> {
        let next_seq = self.next_seq;
        let checked = |detail: String| DamagedHeader {
            detail,
            unreadable: false,
        };
        Ok(match SegmentHeader::decode(bytes) {
            Ok(h) if h.segment_no != number => Err(checked(format!(
                "segment header says segment {}, the file name says {number}",
                h.segment_no
            ))),
            Ok(h) if h.base_seq < next_seq => Err(checked(format!(
                "segment starts at sequence {} but records up to {} were already read: it \
                 overlaps an earlier segment",
                h.base_seq,
                next_seq - 1
            ))),
            Ok(h) => Ok(h),
            Err(HeaderError::UnsupportedVersion(found)) => {
                return Err(Error::UnsupportedVersion {
                    path: self.dir.join(name),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Err(e) => Err(DamagedHeader {
                detail: e.to_string(),
                unreadable: matches!(
                    e,
                    HeaderError::Short | HeaderError::BadMagic | HeaderError::BadChecksum
                ),
            }),
        })
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

    /// Before reading on in the last segment: whatever was held back at its end (damage, a
    /// torn tail) is read again from its last valid record. Returns the offset to read from,
    /// or `None` if no segment with frames is open.
    pub(crate) fn rewind(&mut self) -> Option<u64> {
        let Some(Last {
            name,
            kind: LastKind::Frames {
                resume, resume_seq, ..
            },
            ..
        }) = &self.last
        else {
            return None;
        };
        let (name, resume) = (name.clone(), *resume);
        self.next_seq = *resume_seq;
        self.pending
            .retain(|d| !(d.segment == name && d.start >= resume));
        self.torn_tail = None;
        Some(resume)
    }

    /// Scans `body`, the bytes of the last segment from its resume offset on (up to its
    /// reserved space), folding and emitting each valid record and holding damage.
    pub(crate) fn scan(&mut self, body: &[u8], visit: &mut (impl Visit + ?Sized)) {
        let Some(Last {
            name,
            kind:
                LastKind::Frames {
                    header,
                    salt,
                    resume,
                    ..
                },
            ..
        }) = &self.last
        else {
            return;
        };
        let (name, base, salt, torn_possible) = (name.clone(), *resume, *salt, header.is_some());
        let mut scanner = Scanner::new(body, base, salt, self.next_seq);
        let mut reported = base;
        // Where reading goes on, kept here and written back once (not per record).
        let mut resume_at = None;
        while !self.stopped
            && let Some(scanned) = scanner.next()
        {
            let end = match scanned {
                Scanned::Frame(frame) => {
                    if self.accept(&name, frame, visit) {
                        resume_at = Some((frame.end(), self.next_seq));
                    }
                    frame.end()
                }
                Scanned::Damaged { start, end } => {
                    let detail = if start == end {
                        let upto = scanner.next_seq() - 1;
                        format!("records {}..{upto} are missing", self.next_seq)
                    } else {
                        "no valid record here".to_string()
                    };
                    let damage = Damage {
                        // Nothing in a segment with a damaged header is the trace of a crash.
                        torn_possible,
                        ..self.damage(&name, start, end, detail)
                    };
                    self.pending.push(damage);
                    end
                }
            };
            self.bytes_read += end - reported;
            reported = end;
        }
        if let Some((end, next_seq)) = resume_at {
            self.resume_at(end, next_seq);
        }
    }

    /// The last valid record read ends at `end`: reading goes on there, expecting `next_seq`.
    fn resume_at(&mut self, end: u64, next_seq: u64) {
        if let Some(Last {
            kind: LastKind::Frames {
                resume, resume_seq, ..
            },
            ..
        }) = &mut self.last
        {
            *resume = end;
            *resume_seq = next_seq;
        }
    }

    /// A frame whose checksum holds: settle the damage before it, then fold and emit its
    /// events; or hold it as damage if its payload is not valid. Returns whether it was a valid
    /// record. One pass: a payload is checked whole before its first event is handed out.
    #[inline]
    fn accept(
        &mut self,
        segment: &str,
        frame: Frame<'_>,
        visit: &mut (impl Visit + ?Sized),
    ) -> bool {
        let mut before_record = false;
        let valid = decode_payload_indexed(frame.payload, |event, _, place| {
            if self.stopped {
                return;
            }
            let first = place.index == 0;
            let next = Next::Event {
                seq: frame.seq,
                at_ms: event.at_ms(),
                damage: if first { &self.pending } else { &[] },
            };
            if visit.before(&next).is_break() {
                self.stopped = true;
                if first {
                    // The state is the one before this record; the damage before it is what
                    // the visitor was told of, never settled.
                    self.pending.clear();
                    before_record = true;
                }
                return;
            }
            if first {
                self.settle_pending(Some((frame.seq, event.at_ms())), visit);
            }
            if self.stopped {
                return;
            }
            let (applied, ended) = self.set.apply_ending(event);
            self.records += 1;
            self.last_seq = frame.seq;
            self.last_ms = Some(event.at_ms());
            let item = Item::Event(EventSeen {
                seq: frame.seq,
                segment,
                offset: frame.offset,
                index: place.index,
                batch: place.count,
                event,
                applied,
                ended_run_started_at_ms: ended,
            });
            Self::emit(&mut self.stopped, visit, &item);
        });
        if !valid {
            let detail = format!(
                "record {} has a valid checksum but is not a valid event",
                frame.seq
            );
            let damage = self.damage(segment, frame.offset, frame.end(), detail);
            self.pending.push(damage);
            // Its checksum holds, so its sequence number is real: it is used.
            self.next_seq = frame.seq + 1;
            return false;
        }
        if !before_record {
            self.next_seq = frame.seq + 1;
        }
        true
    }

    /// The damage held so far, followed by a valid record (`before`) or reaching the end of the
    /// log (`None`): corruption, reported where it lies.
    fn settle_pending(&mut self, before: Option<(u64, u64)>, visit: &mut (impl Visit + ?Sized)) {
        if self.pending.is_empty() {
            return; // the common case, at every record
        }
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
}

/// What a reading found, for the recovery report and the writer.
#[derive(Debug)]
pub(crate) struct Found {
    pub torn_tail: Option<TornTail>,
    pub corruption: Vec<Corruption>,
    pub coverage_since_ms: Option<u64>,
    pub segments: u64,
    pub records: u64,
    pub last_seq: u64,
    /// Timestamp of the last valid record (the snapshot's, if none came after it).
    pub last_ms: Option<u64>,
    /// The sequence number the next record gets.
    pub next_seq: u64,
    pub started_from: Option<SnapshotUsed>,
    pub gaps_before_snapshot: Vec<Corruption>,
    /// The log ends exactly at a clean shutdown (see `RecoveryReport::clean_shutdown`).
    pub clean_shutdown: bool,
    /// Bytes of segment data read (their reserved space left out).
    pub segment_bytes: u64,
}

impl Reading {
    /// What the reading found, and the state it folded.
    pub(crate) fn finish(self) -> (Found, RunningSet) {
        let damage_after_last_record =
            self.torn_tail.is_some() || self.corruption.iter().any(|c| c.before_seq.is_none());
        let found = Found {
            clean_shutdown: self.set.ended_with_shutdown() && !damage_after_last_record,
            torn_tail: self.torn_tail,
            corruption: self.corruption,
            coverage_since_ms: self.coverage_since_ms,
            segments: self.segments,
            records: self.records,
            last_seq: self.last_seq,
            last_ms: self.last_ms,
            next_seq: self.next_seq,
            started_from: self.started_from,
            gaps_before_snapshot: self.gaps_before_snapshot,
            segment_bytes: self.segment_bytes,
        };
        (found, self.set)
    }
}

/// Why a segment header was rejected.
pub(crate) struct DamagedHeader {
    pub detail: String,
    /// The bytes do not form a header at all (too short, no magic, checksum fails), as opposed
    /// to a whole header that fails a later check. Only such bytes can be an unfinished header.
    pub unreadable: bool,
}

/// The salt field of a segment whose header is damaged, as found.
fn salt_field(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"))
}
