//! A point in a log's history, and why the state there may be unknowable: what time travel
//! asks the reader for, and what the reader answers when the log no longer holds it. Time
//! travel itself is [`StopAt`], a visitor that stops a reading right before the first state
//! past its point.

use std::ops::ControlFlow;

use super::core::Next;
use crate::damage::Corruption;

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
    pub(crate) fn passed_by(self, seq: u64, at_ms: Option<u64>) -> bool {
        match self {
            Point::Seq(s) => seq > s,
            Point::TimeMs(t) => at_ms.is_some_and(|ms| ms > t),
        }
    }

    /// Whether the point lies strictly between the record `after` (sequence number and
    /// timestamp; `(0, None)` for the start of the log) and the record `before`, over a stretch
    /// of records the log does not hold: there, the state cannot be known.
    pub(crate) fn inside(self, after: (u64, Option<u64>), before: (u64, Option<u64>)) -> bool {
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
            Unknowable::Damaged(c) => write!(f, "the log lost what lies there: {c}"),
            Unknowable::BeforeCoverage { since_ms } => {
                write!(
                    f,
                    "the log began recording at {since_ms} ms; it knows nothing before"
                )
            }
        }
    }
}

/// Time travel, as what a visitor answers before each state a reading takes in
/// ([`Visit::before`](super::core::Visit::before)): it stops the reading right before the first
/// event or snapshot past `point`, noting why the state there cannot be known when the log lost
/// what lies at the point (damage before the record that passed it, or records only a
/// snapshot holds).
#[derive(Clone, Debug)]
pub(crate) struct StopAt {
    point: Point,
    /// Why the state at the point cannot be known, once the reading stopped there (if it
    /// cannot).
    pub unknowable: Option<Unknowable>,
}

impl StopAt {
    pub(crate) fn new(point: Point) -> StopAt {
        StopAt {
            point,
            unknowable: None,
        }
    }

    /// Whether the reading stops before `next`.
    pub(crate) fn before(&mut self, next: &Next<'_>) -> ControlFlow<()> {
        let point = self.point;
        match *next {
            Next::Event {
                seq, at_ms, damage, ..
            } => {
                if !point.passed_by(seq, Some(at_ms)) {
                    return ControlFlow::Continue(());
                }
                let before = (seq, Some(at_ms));
                self.unknowable = damage
                    .iter()
                    .map(|d| d.clone().into_corruption(Some((seq, at_ms))))
                    .find(|c| point.inside((c.after_seq, c.after_ms), before))
                    .map(Unknowable::Damaged);
            }
            Next::Snapshot {
                file,
                last_seq,
                last_record_ms,
                compacted,
                known_before,
            } => {
                if !point.passed_by(last_seq, last_record_ms) {
                    return ControlFlow::Continue(());
                }
                if let Some((first_seq, _)) = compacted
                    && point.inside(known_before, (last_seq + 1, last_record_ms))
                {
                    self.unknowable = Some(Unknowable::Compacted {
                        snapshot: file.to_string(),
                        first_seq,
                        last_seq,
                        known_before,
                        known_after_ms: last_record_ms,
                    });
                }
            }
        }
        ControlFlow::Break(())
    }
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
