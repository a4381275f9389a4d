//! Time travel: the running set as it was at a sequence number or a time, or a clear refusal
//! where the log no longer holds the records that would say. Never a guess.

use std::path::Path;

use super::walk::Walker;
use super::{Item, Walked};
use crate::error::Result;
use crate::fold::InFlightRun;
use crate::recovery::Corruption;
use crate::storage::Storage;

/// A point in a log's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Just after the record with this sequence number (every event of a batch included):
    /// records up to it folded, none after. `Seq(0)` is before the first record.
    Seq(u64),
    /// At this time, in milliseconds since the Unix epoch: every record in log order up to the
    /// first one stamped after it. (Timestamps come from the gateway's clock, in the order the
    /// log accepted the events.)
    TimeMs(u64),
}

impl Point {
    /// Whether an event with sequence number `seq` and timestamp `at_ms` lies after the point.
    pub(super) fn passed_by(self, seq: u64, at_ms: Option<u64>) -> bool {
        match self {
            Point::Seq(s) => seq > s,
            Point::TimeMs(t) => at_ms.is_some_and(|ms| ms > t),
        }
    }

    /// Whether the point lies strictly between the record `after` (sequence number and
    /// timestamp; `(0, None)` for the start of the log) and the record `before`, over a stretch
    /// of records the log does not hold: there, the state cannot be known.
    pub(super) fn inside(self, after: (u64, Option<u64>), before: (u64, Option<u64>)) -> bool {
        match self {
            Point::Seq(s) => after.0 < s && s < before.0,
            Point::TimeMs(t) => {
                after.1.is_none_or(|ms| ms <= t) && before.1.is_some_and(|ms| t < ms)
            }
        }
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Seq(s) => write!(f, "record {s}"),
            Point::TimeMs(ms) => write!(f, "{ms} ms"),
        }
    }
}

/// Why the log cannot say what was in flight at a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknowable {
    /// The records around the point were folded into a snapshot and their segments removed:
    /// the log knows the state after record `known_before` and after record `known_after`
    /// (the snapshot's), nothing in between.
    Compacted {
        /// The snapshot that holds them.
        snapshot: String,
        /// The first record it alone holds.
        first_seq: u64,
        /// The last record it covers.
        last_seq: u64,
        /// The last record the log still holds before them (0: none), and its timestamp.
        known_before: (u64, Option<u64>),
        /// The timestamp of the snapshot's last record.
        known_after_ms: Option<u64>,
    },
    /// The point lies in a damaged region, or among records missing from the log.
    Damaged(Corruption),
    /// The point is before the log began recording.
    BeforeCoverage {
        /// Since when the log has been recording.
        since_ms: u64,
    },
}

impl std::fmt::Display for Unknowable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |ms: Option<u64>| ms.map_or(String::new(), |ms| format!(" ({ms} ms)"));
        match self {
            Unknowable::Compacted {
                snapshot,
                first_seq,
                last_seq,
                known_before,
                known_after_ms,
            } => {
                write!(
                    f,
                    "records {first_seq}..={last_seq} are no longer in the log: a compaction \
                     folded them into {snapshot} and removed their segments; the log knows the \
                     running set "
                )?;
                if known_before.0 == 0 {
                    write!(f, "only from record {last_seq}{} on", at(*known_after_ms))
                } else {
                    write!(
                        f,
                        "after record {}{} and from record {last_seq}{} on",
                        known_before.0,
                        at(known_before.1),
                        at(*known_after_ms)
                    )
                }
            }
            Unknowable::Damaged(c) => {
                write!(
                    f,
                    "the log lost what lies there: {} bytes {}..{} ({}), after record {}{}",
                    c.segment,
                    c.start_offset,
                    c.end_offset,
                    c.detail,
                    c.after_seq,
                    at(c.after_ms)
                )?;
                match c.before_seq {
                    Some(seq) => write!(f, " and before record {seq}{}", at(c.before_ms)),
                    None => write!(f, ", up to the end of the log"),
                }
            }
            Unknowable::BeforeCoverage { since_ms } => {
                write!(
                    f,
                    "the log began recording at {since_ms} ms; it knows nothing before"
                )
            }
        }
    }
}

/// The running set at a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateAt {
    /// The point asked for.
    pub point: Point,
    /// The last record folded (0 if none) and its timestamp: the state is the one right after
    /// it.
    pub last_seq: u64,
    /// The timestamp of that record.
    pub last_ms: Option<u64>,
    /// The runs in flight then, ordered by key.
    pub running: Vec<InFlightRun>,
    /// Damaged regions before the point that replay skipped: the state is the one replay would
    /// have reported then, and these are its gaps.
    pub gaps: Vec<Corruption>,
    /// Whether the point lies past the log's last record (the state is the one at its end).
    pub past_the_end: bool,
}

/// The running set at `point`, or why the log cannot know it (the outer error is a log that
/// could not be read at all). Read-only: takes no lock and changes no byte, so it works on a
/// live log.
///
/// ```
/// use inflight::inspect::{Point, state_at};
/// use inflight::{FsStorage, Log, Options};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), Options::default())?.log;
/// let run = log.begin_run("agent:main:http:c-5", "s1", None)?; // record 1
/// log.mark_completed(&run.key, run.generation)?; // record 2
/// let at_1 = state_at(&FsStorage::default(), dir.path(), Point::Seq(1))?.unwrap();
/// assert_eq!(at_1.running.len(), 1);
/// let at_2 = state_at(&FsStorage::default(), dir.path(), Point::Seq(2))?.unwrap();
/// assert!(at_2.running.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn state_at(
    storage: &dyn Storage,
    dir: &Path,
    point: Point,
) -> Result<std::result::Result<StateAt, Unknowable>> {
    let mut walker = Walker::new(storage, dir);
    walker.stop_at(point);
    let mut gaps = Vec::new();
    walker.walk(&mut |item| {
        if let Item::Damage(d) = item {
            gaps.push(d.region.clone());
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let walked: Walked = walker.into_walked();
    if let Some(why) = walked.unknowable {
        return Ok(Err(why));
    }
    if let (Point::TimeMs(t), Some(since_ms)) = (point, walked.coverage_since_ms)
        && t < since_ms
    {
        return Ok(Err(Unknowable::BeforeCoverage { since_ms }));
    }
    let past_the_end = !walked.stopped;
    if past_the_end
        && let Some(c) = walked.corruption.iter().find(|c| c.before_seq.is_none())
        && point.passed_by(walked.last_seq, walked.last_ms)
    {
        // Damage reaches the end of the log: records after the last valid one may be in it.
        return Ok(Err(Unknowable::Damaged(c.clone())));
    }
    Ok(Ok(StateAt {
        point,
        last_seq: walked.last_seq,
        last_ms: walked.last_ms,
        running: walked.set.entries().cloned().collect(),
        gaps,
        past_the_end,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_inside_a_stretch_of_missing_records_is_unknowable() {
        let after = (4, Some(100));
        let before = (9, Some(200));
        assert!(Point::Seq(5).inside(after, before));
        assert!(Point::Seq(8).inside(after, before));
        assert!(
            !Point::Seq(4).inside(after, before),
            "the state after 4 is known"
        );
        assert!(
            !Point::Seq(9).inside(after, before),
            "the state after 9 is known"
        );
        assert!(Point::TimeMs(150).inside(after, before));
        assert!(
            Point::TimeMs(100).inside(after, before),
            "lost records may share the time"
        );
        assert!(!Point::TimeMs(200).inside(after, before));
        assert!(
            Point::TimeMs(1).inside((0, None), before),
            "before the first known state"
        );
    }

    #[test]
    fn a_point_is_passed_by_the_first_later_record() {
        assert!(!Point::Seq(3).passed_by(3, Some(10)));
        assert!(Point::Seq(3).passed_by(4, Some(1)));
        assert!(!Point::TimeMs(10).passed_by(99, Some(10)));
        assert!(Point::TimeMs(10).passed_by(1, Some(11)));
    }
}
