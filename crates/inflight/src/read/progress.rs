//! Progress as a visitor over a reading's items: how far into the segment files the items
//! reach, reported now and then (the offline tools' progress bars). It reads nothing and
//! changes nothing: the reading's own count of bytes scanned is its
//! [`Walked::bytes_read`](crate::inspect::Walked::bytes_read).

use super::item::Item;
use crate::frame::SEGMENT_HEADER_BYTES;

/// How often, in bytes reached, progress is reported.
const PROGRESS_EVERY_BYTES: u64 = 8 << 20;

/// Follows a reading's items and reports the bytes of segment data they reached: at the first
/// item, every [`PROGRESS_EVERY_BYTES`] after, and at the end of the log.
pub(crate) struct Progress<'p> {
    report: Box<dyn FnMut(u64) + 'p>,
    /// The data of the segments met before the current one.
    before: u64,
    /// The data of the current segment, as its item said.
    current: u64,
    /// The furthest byte reached (never goes back).
    at: u64,
    /// Reported again once `at` reaches this (the last report, plus the interval).
    next_report: u64,
}

impl<'p> Progress<'p> {
    pub(crate) fn new(report: impl FnMut(u64) + 'p) -> Progress<'p> {
        Progress {
            report: Box::new(report),
            before: 0,
            current: 0,
            at: 0,
            next_report: 0,
        }
    }

    /// Notes how far `item` reaches, and reports it if it is far enough past the last report.
    pub(crate) fn note(&mut self, item: &Item<'_>) {
        let at_end = matches!(item, Item::End(_));
        let reached = match item {
            Item::Segment(s) => {
                self.before += self.current;
                self.current = s.bytes;
                self.before + s.bytes.min(SEGMENT_HEADER_BYTES as u64)
            }
            Item::Event(e) => self.before + e.offset,
            Item::End(_) => self.before + self.current,
            Item::Snapshot(_) | Item::Damage(_) => return,
        };
        let last_report = self.next_report.checked_sub(PROGRESS_EVERY_BYTES);
        self.at = self.at.max(reached);
        if self.at >= self.next_report || (at_end && Some(self.at) != last_report) {
            (self.report)(self.at);
            self.next_report = self.at + PROGRESS_EVERY_BYTES;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventRef;
    use crate::fold::Applied;
    use crate::read::item::{EndSeen, EventSeen, SegmentSeen};

    fn segment(number: u64, bytes: u64) -> SegmentSeen<'static> {
        SegmentSeen {
            file: "s",
            number,
            bytes,
            header: Err(String::new()),
        }
    }

    #[test]
    fn progress_reaches_the_end_of_every_segment_and_reports_every_8_mib() {
        let mut reports = Vec::new();
        let mut progress = Progress::new(|at| reports.push(at));
        let mib = 1 << 20;
        progress.note(&Item::Segment(segment(1, 20 * mib)));
        let shutdown = EventRef::Shutdown { at_ms: 1 };
        for offset in (1..20).map(|m| m * mib) {
            progress.note(&Item::Event(EventSeen {
                seq: offset,
                segment: "s",
                offset,
                index: 0,
                batch: 1,
                event: shutdown,
                applied: Applied::Completed,
                ended_run_started_at_ms: None,
            }));
        }
        progress.note(&Item::Segment(segment(2, 10 * mib)));
        progress.note(&Item::End(EndSeen {
            last_seq: 19,
            last_ms: Some(1),
            torn_tail: None,
            running: 0,
        }));
        drop(progress);
        assert_eq!(
            reports,
            [64, 9 * mib, 17 * mib, 30 * mib],
            "the header, then every 8 MiB, then the end of both segments"
        );
    }
}
