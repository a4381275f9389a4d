//! Replay: read every segment, fold its events, and classify whatever is damaged as a torn tail
//! (cut before the next append) or corruption (reported as a gap, or an error under the strict
//! policy). Replay itself changes nothing on disk; it returns a plan that the writer carries out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{Event, Run, decode_event};
use crate::fold::{Counters, Reason, RunningSet};
use crate::frame::{HeaderError, SEGMENT_HEADER_BYTES, Scanned, Scanner, SegmentHeader};
use crate::layout::parse_segment_name;
use crate::storage::{FileBytes, Storage};

/// What to do with a damaged region that has valid records after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Skip the damaged region, replay what follows it, and report it as a gap (the default:
    /// losing the rest of the log to one bad sector would be worse).
    #[default]
    SkipDamaged,
    /// Fail to open with [`Error::Corrupt`].
    Strict,
}

/// A run that was in flight when the log was last written, and why it stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptedRun {
    /// The run as it was started.
    #[serde(flatten)]
    pub run: Run,
    /// `crash`, or `shutdown` when a clean shutdown found it still running.
    pub reason: Reason,
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
    /// The segment file's name.
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

/// What opening (or replaying) a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The runs in flight when the log was last written: resume or suspend exactly these.
    pub running: Vec<InterruptedRun>,
    /// Bytes of torn tail found (0 if none).
    pub torn_tail_bytes: u64,
    /// The torn tail, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Damaged regions skipped, in log order.
    pub corruption: Vec<Corruption>,
    /// Stale starts and completions the fold ignored.
    pub stale_ignored: u64,
    /// True when the last record is a clean shutdown. (A process that opened the log after it
    /// and wrote nothing leaves no record, so its own exit, clean or not, does not show here.)
    pub clean_shutdown: bool,
    /// Since when the log has been recording (milliseconds since the Unix epoch); `None` when
    /// no segment header could be read. Runs that began before this are not covered.
    pub coverage_since_ms: Option<u64>,
    /// Everything the fold counted.
    pub counters: Counters,
    /// Segment files read.
    pub segments: u64,
    /// Valid records replayed.
    pub records: u64,
    /// Sequence number of the last valid record (0 if none).
    pub last_seq: u64,
}

/// Where the writer continues after replay.
#[derive(Debug)]
pub(crate) enum Tail {
    /// The directory holds no segment: start segment 1.
    Fresh,
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
    /// The last segment cannot be appended to (its header is damaged or torn): start segment
    /// `segment_no`, after removing `remove` (a segment whose creation a crash interrupted).
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
}

/// The most bytes a crash can leave unsynced at the end of the last segment: one frame, since
/// every append is synced before the next one starts. Longer damage there is corruption.
pub const UNSYNCED_TAIL_BYTES_MAX: u64 = crate::frame::FRAME_BYTES_MAX as u64;

/// Whether damaged bytes at the end of a segment reach past the one frame a torn append could
/// have left: the frame header at their start is readable, with a length in range, and the bytes
/// go on after the frame it describes. A crash can leave the file no longer than the append it
/// interrupted, so such damage is not the trace of a crash.
fn extends_past_one_frame(damaged: &[u8]) -> bool {
    let Some(len) = damaged.get(..4) else {
        return false;
    };
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    (1..=crate::limits::RECORD_BYTES_MAX).contains(&len)
        && damaged.len() > crate::frame::FRAME_HEADER_BYTES + len
}

/// A damaged region not yet known to be a torn tail or corruption.
struct Damage {
    segment: String,
    start: u64,
    end: u64,
    after_seq: u64,
    after_ms: Option<u64>,
    detail: String,
    /// False where the damage cannot be the trace of a crash: a frame whose checksum holds, a
    /// damaged header, missing records.
    torn_possible: bool,
}

impl Damage {
    fn into_corruption(self, before: Option<(u64, u64)>) -> Corruption {
        Corruption {
            segment: self.segment,
            start_offset: self.start,
            end_offset: self.end,
            after_seq: self.after_seq,
            before_seq: before.map(|b| b.0),
            after_ms: self.after_ms,
            before_ms: before.map(|b| b.1),
            detail: self.detail,
        }
    }
}

/// Replays the log in `dir`, handing every valid record to `visit` in log order. Reads only;
/// see [`Tail`] for what the caller must repair.
///
/// `names` is the directory's listing (the caller has usually just read it).
pub(crate) fn replay(
    storage: &dyn Storage,
    dir: &Path,
    names: Vec<String>,
    policy: Policy,
    visit: &mut dyn FnMut(u64, &Event),
) -> Result<Replayed> {
    let mut segments: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|n| (n, name)))
        .collect();
    segments.sort();

    let mut set = RunningSet::new();
    let mut report = RecoveryReport::default();
    let mut pending: Vec<Damage> = Vec::new();
    let mut next_seq = 1u64;
    let mut last_ms: Option<u64> = None;
    let mut tail = Tail::Fresh;

    for (i, (number, name)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let path = dir.join(name);
        let file = storage
            .open(&path, false)
            .map_err(|e| Error::io("open", &path, e))?;
        let bytes = file.read_all().map_err(|e| Error::io("read", &path, e))?;
        report.segments += 1;
        let damage = |start: u64, end: u64, next_seq: u64, after_ms, detail: String| Damage {
            segment: name.clone(),
            start,
            end,
            after_seq: next_seq - 1,
            after_ms,
            detail,
            torn_possible: false,
        };

        let header = match SegmentHeader::decode(&bytes) {
            Ok(h) if h.segment_no != *number => Err(format!(
                "segment header says segment {}, the file name says {number}",
                h.segment_no
            )),
            Ok(h) if h.base_seq < next_seq => Err(format!(
                "segment starts at sequence {} but records up to {} were already read: it overlaps an earlier segment",
                h.base_seq,
                next_seq - 1
            )),
            Ok(h) => Ok(h),
            Err(HeaderError::UnsupportedVersion(found)) => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found,
                    supported: crate::frame::FORMAT_VERSION,
                });
            }
            Err(e) => Err(e.to_string()),
        };
        let len = bytes.len() as u64;
        let (header, salvaged) = match header {
            Ok(h) => (h, false),
            Err(_) if is_last && len <= SEGMENT_HEADER_BYTES as u64 => {
                // A crash while the segment was being created: its header was never synced, so
                // no record in it was ever acknowledged.
                report.torn_tail_bytes = len;
                report.torn_tail = Some(TornTail {
                    segment: name.clone(),
                    offset: 0,
                    bytes: len,
                    cut: false,
                });
                tail = Tail::NewSegment {
                    segment_no: *number,
                    remove: Some(path),
                };
                continue;
            }
            Err(detail) => {
                let header_end = len.min(SEGMENT_HEADER_BYTES as u64);
                pending.push(damage(0, header_end, next_seq, last_ms, detail));
                if len <= SEGMENT_HEADER_BYTES as u64 {
                    tail = Tail::NewSegment {
                        segment_no: number + 1,
                        remove: None,
                    };
                    continue;
                }
                // The frames may still be readable: each checksum covers the salt, so if the
                // header's salt field survived they validate, and if it did not none does.
                let salt = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"));
                let salvage = SegmentHeader {
                    segment_no: *number,
                    base_seq: next_seq,
                    salt,
                    log_created_ms: 0,
                    segment_created_ms: 0,
                };
                (salvage, true)
            }
        };
        if !salvaged {
            report.coverage_since_ms = Some(
                report
                    .coverage_since_ms
                    .map_or(header.log_created_ms, |c| c.min(header.log_created_ms)),
            );
            if header.base_seq > next_seq && pending.is_empty() {
                let detail = format!(
                    "records {next_seq}..{} are missing: no segment holds them",
                    header.base_seq - 1
                );
                pending.push(damage(0, 0, next_seq, last_ms, detail));
            }
            next_seq = header.base_seq;
        }

        let body = &bytes[SEGMENT_HEADER_BYTES..];
        let mut end = SEGMENT_HEADER_BYTES as u64;
        for scanned in Scanner::new(body, SEGMENT_HEADER_BYTES as u64, header.salt, next_seq) {
            let frame = match scanned {
                Scanned::Frame(frame) => frame,
                Scanned::Damaged { start, end } => {
                    let detail = "no valid record here".to_string();
                    pending.push(Damage {
                        // Nothing in a segment with a damaged header is the trace of a crash.
                        torn_possible: !salvaged,
                        ..damage(start, end, next_seq, last_ms, detail)
                    });
                    continue;
                }
            };
            let Some(event) = decode_event(frame.payload) else {
                let detail = format!(
                    "record {} has a valid checksum but is not a valid event",
                    frame.seq
                );
                pending.push(damage(frame.offset, frame.end(), next_seq, last_ms, detail));
                // Its checksum holds, so its sequence number is real: it is used.
                next_seq = frame.seq + 1;
                continue;
            };
            for d in pending.drain(..) {
                report
                    .corruption
                    .push(d.into_corruption(Some((frame.seq, event.at_ms()))));
            }
            set.apply(&event);
            visit(frame.seq, &event);
            report.records += 1;
            report.last_seq = frame.seq;
            next_seq = frame.seq + 1;
            last_ms = Some(event.at_ms());
            end = frame.end();
        }
        tail = if salvaged {
            // Never append to a segment whose header is damaged.
            Tail::Seal {
                path,
                bytes,
                next_segment_no: number + 1,
            }
        } else {
            Tail::Append {
                path,
                header,
                end,
                bytes,
            }
        };
    }

    // Damage with nothing valid after it. Every append is synced before the next one starts, so
    // a crash can leave at most one unsynced frame, at the end of the last segment: damage there,
    // no longer than that and holding no frame whose checksum holds, is a torn tail. Anything
    // else cannot be the trace of a crash, so it is corruption, and its bytes are kept.
    let last_segment = match &tail {
        Tail::Append { path, .. } => path.file_name().map(|n| n.to_string_lossy().into_owned()),
        _ => None,
    };
    let (at_tail, elsewhere): (Vec<Damage>, Vec<Damage>) = pending
        .into_iter()
        .partition(|d| last_segment.as_deref() == Some(d.segment.as_str()));
    for d in elsewhere {
        report.corruption.push(d.into_corruption(None));
    }
    let tail_bytes: u64 = at_tail.iter().map(|d| d.end - d.start).sum();
    if let (Some(first), Tail::Append { bytes, .. }) = (at_tail.first(), &tail) {
        let torn = tail_bytes <= UNSYNCED_TAIL_BYTES_MAX
            && at_tail.iter().all(|d| d.torn_possible)
            && !extends_past_one_frame(&bytes[first.start as usize..]);
        if torn {
            report.torn_tail_bytes = tail_bytes;
            report.torn_tail = Some(TornTail {
                segment: at_tail[0].segment.clone(),
                offset: at_tail[0].start,
                bytes: tail_bytes,
                cut: false,
            });
        } else {
            for d in at_tail {
                report.corruption.push(d.into_corruption(None));
            }
            if let Tail::Append {
                path,
                header,
                bytes,
                ..
            } = tail
            {
                tail = Tail::Seal {
                    path,
                    bytes,
                    next_segment_no: header.segment_no + 1,
                };
            }
        }
    }

    if policy == Policy::Strict
        && let Some(c) = report.corruption.first()
    {
        let after = c
            .after_ms
            .map_or(String::new(), |ms| format!(" at {ms} ms"));
        let before = match (c.before_seq, c.before_ms) {
            (Some(seq), Some(ms)) => format!("record {seq} at {ms} ms"),
            _ => "the end of the log".to_string(),
        };
        return Err(Error::Corrupt {
            segment: dir.join(&c.segment),
            offset: c.start_offset,
            detail: format!(
                "{} (bytes {}..{}; a gap between record {}{after} and {before})",
                c.detail, c.start_offset, c.end_offset, c.after_seq
            ),
        });
    }

    let counters = set.counters();
    report.counters = counters;
    report.stale_ignored = counters.stale_ignored();
    report.clean_shutdown = set.ended_with_shutdown();
    report.running = set
        .entries()
        .map(|e| InterruptedRun {
            run: e.run.clone(),
            reason: e.reason(),
        })
        .collect();
    Ok(Replayed {
        set,
        report,
        tail,
        next_seq,
    })
}
