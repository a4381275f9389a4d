//! The walk over a log: start from the newest valid snapshot (or from nothing), then read the
//! segments after it in ascending number: read each header, scan its frames, fold each valid
//! record, and hold every damaged region until what follows it decides whether it is corruption
//! (valid records after it) or, at the very end, possibly a torn tail.

use std::io;
use std::mem;
use std::path::{Path, PathBuf};

use super::damage::{Damage, is_torn_tail, is_unfinished_header};
use super::report::{Policy, RecoveryReport, TornTail};
use crate::error::{Error, Result};
use crate::event::{EventRef, decode_payload_with};
use crate::fold::RunningSet;
use crate::frame::{
    FORMAT_VERSION, HeaderError, SEGMENT_HEADER_BYTES, Scanned, Scanner, reserved_start,
};
use crate::frame::{Frame, SegmentHeader};
use crate::layout::{parse_segment_name, parse_snapshot_name};
use crate::limits::SNAPSHOT_BYTES_MAX;
use crate::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotError};
use crate::storage::{FileBytes, Storage, StorageFile};

/// Where the writer continues after replay.
#[derive(Debug)]
pub(crate) enum Tail {
    /// The directory holds no segment after the snapshot (if any): start segment `segment_no`.
    Fresh { segment_no: u64 },
    /// Append to the last segment after its last valid record; anything past `end` is a torn
    /// tail to cut (and sync) first.
    Append {
        path: PathBuf,
        header: SegmentHeader,
        end: u64,
        /// The segment as replay read it, so the writer need not read it again.
        bytes: FileBytes,
    },
    /// The last segment ends in corruption, which must be kept: make the whole segment durable
    /// as it is and continue in a new segment `next_segment_no`.
    Seal {
        path: PathBuf,
        bytes: FileBytes,
        next_segment_no: u64,
    },
    /// The last segment cannot be appended to (its header is damaged or unfinished): start
    /// segment `segment_no`, after removing `remove` (a segment whose creation a crash
    /// interrupted).
    NewSegment {
        segment_no: u64,
        remove: Option<PathBuf>,
    },
}

/// The outcome of replay: the folded state, the report, and where to continue writing.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub set: RunningSet,
    pub report: RecoveryReport,
    pub tail: Tail,
    pub next_seq: u64,
    /// Timestamp of the last valid record (the snapshot's, if none came after it).
    pub last_ms: Option<u64>,
    /// Bytes of the segment files read (those after the snapshot).
    pub segment_bytes: u64,
}

/// Replays the log in `dir`, handing every valid record after the snapshot it starts from to
/// `visit` in log order. Reads only; see [`Tail`] for what the caller must repair.
///
/// `names` is the directory's listing (the caller has usually just read it). With
/// `segments_below`, only the segments numbered below it are read (a compaction folding the
/// segments it covers while appends go on in later ones).
pub(crate) fn replay(
    storage: &dyn Storage,
    dir: &Path,
    names: Vec<String>,
    policy: Policy,
    segments_below: Option<u64>,
    visit: &mut dyn FnMut(u64, EventRef<'_>),
) -> Result<Replayed> {
    let mut walk = Walk::new();
    walk.snapshot(storage, dir, &names)?;
    let first = walk.first_segment;
    let segments: Vec<(u64, String)> = segment_files(names)
        .into_iter()
        .filter(|(n, _)| *n >= first && segments_below.is_none_or(|below| *n < below))
        .collect();
    for (i, (number, name)) in segments.iter().enumerate() {
        let path = dir.join(name);
        let is_last = i + 1 == segments.len();
        let bytes = read_segment(storage, &path, is_last)?;
        walk.segment(*number, name, path, bytes, is_last, visit)?;
    }
    walk.settle_the_end();
    walk.enforce(policy, dir)?;
    Ok(walk.finish())
}

/// The snapshot files among `names`, newest (highest sequence number) first.
fn snapshot_files(names: &[String]) -> Vec<(u64, &str)> {
    let mut snapshots: Vec<(u64, &str)> = names
        .iter()
        .filter_map(|name| parse_snapshot_name(name).map(|n| (n, name.as_str())))
        .collect();
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    snapshots
}

/// A snapshot says the segments numbered below its `next_segment_no` hold nothing after its
/// last record, and replay skips them. Checks that claim against their headers: a segment there
/// whose intact header starts after the snapshot's next record, or at it with bytes after the
/// header, means the snapshot does not belong with these segments (restored from elsewhere, or
/// crafted), and trusting it would skip records. Returns why, if so.
pub(crate) fn uncovered_segment(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    snapshot: &Snapshot,
) -> Result<Option<String>> {
    for name in names {
        let Some(number) = parse_segment_name(name).filter(|&n| n < snapshot.next_segment_no)
        else {
            continue;
        };
        let path = dir.join(name);
        let file = storage
            .open(&path, false)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        if crate::storage::read_exact_at(&*file, &mut header, 0).is_err() {
            continue; // too short to hold records: nothing skipped
        }
        // A segment starting right after the snapshot is covered only while it holds no record
        // (a cut's new segment, left empty, then cut again): nothing after its header but its
        // reserved space.
        let next = snapshot.last_seq + 1;
        let holds_records = || -> Result<bool> {
            let bytes = file.read_all().map_err(|e| Error::io("read", &path, e))?;
            Ok(reserved_start(&bytes) > SEGMENT_HEADER_BYTES)
        };
        if let Ok(h) = SegmentHeader::decode(&header)
            && h.segment_no == number
            && (h.base_seq > next || (h.base_seq == next && holds_records()?))
        {
            return Ok(Some(format!(
                "damaged snapshot: it covers the segments below {} and records up to {}, but \
                 segment {name} starts at record {}",
                snapshot.next_segment_no, snapshot.last_seq, h.base_seq
            )));
        }
    }
    Ok(None)
}

/// Reads and checks one snapshot file: the outer error is fatal (it cannot be read at all, or
/// its version is one this build does not read), the inner one says why it is damaged.
pub(crate) fn read_snapshot(
    storage: &dyn Storage,
    path: &Path,
    last_seq: u64,
) -> Result<std::result::Result<(Snapshot, u64), String>> {
    let file = storage
        .open(path, false)
        .map_err(|e| Error::io("open", path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    if len > SNAPSHOT_BYTES_MAX {
        return Ok(Err(format!(
            "damaged snapshot: {len} bytes, over the limit of {SNAPSHOT_BYTES_MAX}"
        )));
    }
    let bytes = file.read_all().map_err(|e| Error::io("read", path, e))?;
    Ok(match Snapshot::decode(&bytes) {
        Ok(s) if s.last_seq != last_seq => Err(format!(
            "damaged snapshot: it says it covers records up to {}, its name says {last_seq}",
            s.last_seq
        )),
        Ok(s) => Ok((s, len)),
        Err(SnapshotError::UnsupportedVersion(found)) => {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: SNAPSHOT_VERSION,
            });
        }
        Err(e @ SnapshotError::Damaged(_)) => Err(e.to_string()),
    })
}

/// The segment files among `names`, in ascending number; other names are ignored.
fn segment_files(names: Vec<String>) -> Vec<(u64, String)> {
    let mut segments: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|n| (n, name)))
        .collect();
    segments.sort();
    segments
}

/// Reads a segment whole. The last one is copied, never mapped: on a live log the writer fills
/// its reserved space in place, and mapped bytes must not change under the map. Every other
/// segment is sealed: nothing writes to it again.
fn read_segment(storage: &dyn Storage, path: &Path, last: bool) -> Result<FileBytes> {
    let file = storage
        .open(path, false)
        .map_err(|e| Error::io("open", path, e))?;
    read_segment_file(&*file, last).map_err(|e| Error::io("read", path, e))
}

/// [`read_segment`] of a file already open (the offline walk keeps it, to read on).
pub(crate) fn read_segment_file(file: &dyn StorageFile, last: bool) -> io::Result<FileBytes> {
    if last {
        crate::storage::read_to_vec(file).map(FileBytes::Owned)
    } else {
        file.read_all()
    }
}

/// Why a segment header was rejected.
pub(crate) struct DamagedHeader {
    pub detail: String,
    /// The bytes do not form a header at all (too short, no magic, checksum fails: checks 1
    /// and 2), as opposed to a whole header that fails a later check. Only such bytes can be an
    /// unfinished header.
    pub unreadable: bool,
}

/// Decodes and checks the header of segment `number` (its file `path`) when records up to
/// `next_seq - 1` were read: the outer error is fatal (a version this build does not read), the
/// inner one says why the header is damaged. Replay and the offline walk both use it.
pub(crate) fn check_header(
    number: u64,
    next_seq: u64,
    path: &Path,
    bytes: &[u8],
) -> Result<std::result::Result<SegmentHeader, DamagedHeader>> {
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
                path: path.to_path_buf(),
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

/// The state of a replay between segments.
struct Walk {
    set: RunningSet,
    report: RecoveryReport,
    /// Damaged regions since the last valid record: corruption once a valid record follows.
    pending: Vec<Damage>,
    next_seq: u64,
    /// Timestamp of the last valid record.
    last_ms: Option<u64>,
    tail: Tail,
    /// Segments numbered below this are covered by the snapshot the walk started from.
    first_segment: u64,
    /// Bytes of the segment files read, their reserved space left out.
    segment_bytes: u64,
    /// Where the data of the segment in `tail` ends (its reserved space begins).
    tail_data_end: usize,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            set: RunningSet::new(),
            report: RecoveryReport::default(),
            pending: Vec::new(),
            next_seq: 1,
            last_ms: None,
            tail: Tail::Fresh { segment_no: 1 },
            first_segment: 0,
            segment_bytes: 0,
            tail_data_end: 0,
        }
    }

    /// Step 0: start from the newest snapshot that reads, if any. Each newer one that is
    /// damaged is a pending region from the state the walk starts at (so it becomes the gap
    /// between that state and the next record read, or reaches the end of the log).
    fn snapshot(&mut self, storage: &dyn Storage, dir: &Path, names: &[String]) -> Result<()> {
        let mut damaged = Vec::new();
        for (last_seq, name) in snapshot_files(names) {
            let read = match read_snapshot(storage, &dir.join(name), last_seq)? {
                Ok((snapshot, len)) => match uncovered_segment(storage, dir, names, &snapshot)? {
                    None => Ok((snapshot, len)),
                    Some(detail) => Err(detail),
                },
                Err(detail) => Err(detail),
            };
            match read {
                Ok((snapshot, len)) => {
                    self.start_from(name, snapshot, len);
                    break;
                }
                Err(detail) => damaged.push((name.to_string(), detail)),
            }
        }
        for (name, detail) in damaged.into_iter().rev() {
            let len = storage
                .open(&dir.join(&name), false)
                .and_then(|f| f.len())
                .unwrap_or(0);
            self.pending.push(self.damage(&name, 0, len, detail));
        }
        Ok(())
    }

    fn start_from(&mut self, name: &str, mut snapshot: Snapshot, len: u64) {
        self.next_seq = snapshot.last_seq + 1;
        self.last_ms = snapshot.last_record_ms;
        self.first_segment = snapshot.next_segment_no;
        self.tail = Tail::Fresh {
            segment_no: snapshot.next_segment_no,
        };
        let report = &mut self.report;
        report.coverage_since_ms = Some(snapshot.coverage_since_ms);
        report.last_seq = snapshot.last_seq;
        report.snapshot = Some(crate::recovery::SnapshotUsed {
            file: name.to_string(),
            last_seq: snapshot.last_seq,
            bytes: len,
            created_ms: snapshot.created_ms,
        });
        report.gaps_before_snapshot = mem::take(&mut snapshot.gaps);
        self.set = snapshot.into_set();
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

    /// Step 1 to 3 for one segment: its header, its frames, and where a writer could go on.
    fn segment(
        &mut self,
        number: u64,
        name: &str,
        path: PathBuf,
        bytes: FileBytes,
        is_last: bool,
        visit: &mut dyn FnMut(u64, EventRef<'_>),
    ) -> Result<()> {
        self.report.segments += 1;
        let len = bytes.len() as u64;
        // The segment's data ends where its reserved space begins (no frame ends inside it).
        let data_end = reserved_start(&bytes);
        self.segment_bytes += data_end as u64;
        let header = match check_header(number, self.next_seq, &path, &bytes)? {
            Ok(header) => {
                self.begin_segment(name, &header);
                Some(header)
            }
            Err(damaged)
                if is_last && damaged.unreadable && is_unfinished_header(&bytes, number) =>
            {
                self.unfinished_header(number, name, path, len);
                return Ok(());
            }
            Err(damaged) => {
                let header_end = len.min(SEGMENT_HEADER_BYTES as u64);
                self.pending
                    .push(self.damage(name, 0, header_end, damaged.detail));
                None
            }
        };
        if header.is_none() && len <= SEGMENT_HEADER_BYTES as u64 {
            self.tail = Tail::NewSegment {
                segment_no: number + 1,
                remove: None,
            };
            return Ok(());
        }
        // A segment whose header is damaged may still have readable frames: each checksum covers
        // the salt, so if the header's salt field survived they validate, and if not none does.
        let salt = header.map_or_else(|| salt_field(&bytes), |h| h.salt);
        let data_end = data_end.max(SEGMENT_HEADER_BYTES);
        let end = self.scan_frames(name, &bytes[..data_end], salt, header.is_some(), visit);
        self.tail_data_end = data_end;
        self.tail = match header {
            Some(header) => Tail::Append {
                path,
                header,
                end,
                bytes,
            },
            // Never append to a segment whose header is damaged.
            None => Tail::Seal {
                path,
                bytes,
                next_segment_no: number + 1,
            },
        };
        Ok(())
    }

    /// A valid header: it extends the log's coverage, and a base sequence above the next
    /// expected one means records are missing (reported once: not again when damage since the
    /// last valid record already accounts for them).
    fn begin_segment(&mut self, name: &str, header: &SegmentHeader) {
        let since = &mut self.report.coverage_since_ms;
        *since = Some(since.map_or(header.log_created_ms, |c| c.min(header.log_created_ms)));
        if header.base_seq > self.next_seq && self.pending.is_empty() {
            let detail = format!(
                "records {}..{} are missing: no segment holds them",
                self.next_seq,
                header.base_seq - 1
            );
            self.pending.push(self.damage(name, 0, 0, detail));
        }
        self.next_seq = header.base_seq;
    }

    /// The last segment holds only part of a header, written in place by a build that did not
    /// create segments atomically, and a crash stopped it: nothing in it was ever acknowledged.
    /// It is a torn tail, and the writer replaces it.
    fn unfinished_header(&mut self, number: u64, name: &str, path: PathBuf, len: u64) {
        self.report.torn_tail_bytes = len;
        self.report.torn_tail = Some(TornTail {
            segment: name.to_string(),
            offset: 0,
            bytes: len,
            cut: false,
        });
        self.tail = Tail::NewSegment {
            segment_no: number,
            remove: Some(path),
        };
    }

    /// Reads the frames after the header up to the end of `bytes` (the segment's data, its
    /// reserved space left out), folding each valid record; returns the offset just
    /// past the last valid frame. Damage is held in `pending` until a valid record follows it.
    fn scan_frames(
        &mut self,
        name: &str,
        bytes: &[u8],
        salt: u64,
        header_valid: bool,
        visit: &mut dyn FnMut(u64, EventRef<'_>),
    ) -> u64 {
        let body = &bytes[SEGMENT_HEADER_BYTES..];
        let mut end = SEGMENT_HEADER_BYTES as u64;
        let mut scanner = Scanner::new(body, SEGMENT_HEADER_BYTES as u64, salt, self.next_seq);
        while let Some(scanned) = scanner.next() {
            match scanned {
                Scanned::Frame(frame) => {
                    if self.accept(name, frame, visit) {
                        end = frame.end();
                    }
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
                    self.pending.push(Damage {
                        // Nothing in a segment with a damaged header is the trace of a crash.
                        torn_possible: header_valid,
                        ..self.damage(name, start, end, detail)
                    });
                }
            }
        }
        end
    }

    /// A frame whose checksum holds: fold its events (settling the damage before it as
    /// corruption), or, if its payload is not one event or a batch of them, hold it as damage.
    /// Returns whether the frame was a valid record.
    fn accept(
        &mut self,
        name: &str,
        frame: Frame<'_>,
        visit: &mut dyn FnMut(u64, EventRef<'_>),
    ) -> bool {
        let mut first = true;
        let valid = decode_payload_with(frame.payload, |event, _| {
            if first {
                // A valid record follows the damage held so far: it is corruption, a gap that
                // ends here.
                first = false;
                for d in self.pending.drain(..) {
                    let corruption = d.into_corruption(Some((frame.seq, event.at_ms())));
                    self.report.corruption.push(corruption);
                }
            }
            self.set.apply(event);
            visit(frame.seq, event);
            self.report.records += 1;
            self.last_ms = Some(event.at_ms());
        });
        if !valid {
            let detail = format!(
                "record {} has a valid checksum but is not a valid event",
                frame.seq
            );
            let damage = self.damage(name, frame.offset, frame.end(), detail);
            self.pending.push(damage);
            // Its checksum holds, so its sequence number is real: it is used.
            self.next_seq = frame.seq + 1;
            return false;
        }
        self.report.last_seq = frame.seq;
        self.next_seq = frame.seq + 1;
        true
    }

    /// Damage with nothing valid after it. At the end of a last segment the writer could append
    /// to, it may be a torn tail (see [`is_torn_tail`]); anything else is corruption, its bytes
    /// are kept, and the writer continues in a new segment.
    fn settle_the_end(&mut self) {
        let pending = mem::take(&mut self.pending);
        let last_segment = match &self.tail {
            Tail::Append { path, .. } => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            _ => None,
        };
        let (at_tail, elsewhere): (Vec<Damage>, Vec<Damage>) = pending
            .into_iter()
            .partition(|d| last_segment.as_deref() == Some(d.segment.as_str()));
        for d in elsewhere {
            self.report.corruption.push(d.into_corruption(None));
        }
        let Some(first) = at_tail.first() else {
            return;
        };
        let Tail::Append { header, bytes, .. } = &self.tail else {
            unreachable!("damage at the tail is only held for a segment the writer appends to");
        };
        if is_torn_tail(
            &at_tail,
            &bytes[first.start as usize..self.tail_data_end],
            header.salt,
        ) {
            let bytes: u64 = at_tail.iter().map(|d| d.end - d.start).sum();
            self.report.torn_tail_bytes = bytes;
            self.report.torn_tail = Some(TornTail {
                segment: first.segment.clone(),
                offset: first.start,
                bytes,
                cut: false,
            });
            return;
        }
        for d in at_tail {
            self.report.corruption.push(d.into_corruption(None));
        }
        if let Tail::Append {
            path,
            header,
            bytes,
            ..
        } = mem::replace(&mut self.tail, Tail::Fresh { segment_no: 0 })
        {
            self.tail = Tail::Seal {
                path,
                bytes,
                next_segment_no: header.segment_no + 1,
            };
        }
    }

    /// Under the strict policy, the first corruption is an error: the first damaged region this
    /// replay found, or else the first gap the snapshot kept (damage found before the snapshot
    /// was written, whose bytes a compaction removed).
    fn enforce(&self, policy: Policy, dir: &Path) -> Result<()> {
        let report = &self.report;
        let Some(c) = report
            .corruption
            .first()
            .or(report.gaps_before_snapshot.first())
        else {
            return Ok(());
        };
        if policy != Policy::Strict {
            return Ok(());
        }
        let after = c
            .after_ms
            .map_or(String::new(), |ms| format!(" at {ms} ms"));
        let before = match (c.before_seq, c.before_ms) {
            (Some(seq), Some(ms)) => format!("record {seq} at {ms} ms"),
            _ => "the end of the log".to_string(),
        };
        Err(Error::Corrupt {
            segment: dir.join(&c.segment),
            offset: c.start_offset,
            detail: format!(
                "{} (bytes {}..{}; a gap between record {}{after} and {before})",
                c.detail, c.start_offset, c.end_offset, c.after_seq
            ),
        })
    }

    /// The report's summary fields, from the fold.
    fn finish(mut self) -> Replayed {
        let report = &mut self.report;
        let counters = self.set.counters();
        report.counters = counters;
        report.stale_ignored = counters.stale_ignored();
        let damage_after_last_record =
            report.torn_tail.is_some() || report.corruption.iter().any(|c| c.before_seq.is_none());
        report.clean_shutdown = self.set.ended_with_shutdown() && !damage_after_last_record;
        report.crash_loop_threshold = crate::limits::CRASH_LOOP_THRESHOLD_DEFAULT;
        report.running = self.set.entries().cloned().collect();
        Replayed {
            set: self.set,
            report: self.report,
            tail: self.tail,
            next_seq: self.next_seq,
            last_ms: self.last_ms,
            segment_bytes: self.segment_bytes,
        }
    }
}

/// The salt field of a segment whose header is damaged, as found.
fn salt_field(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"))
}
