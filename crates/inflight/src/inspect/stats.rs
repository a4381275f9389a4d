//! Statistics of a log, gathered from the items of a walk: events by kind, what the fold did
//! with them, bytes, segments and snapshots, how long completed runs ran, the runs in flight
//! longest, and the busiest keys. Pure: items in, figures out.

use crate::percentile::{MAX, P50, P99, percentile_or_zero};
use std::collections::HashMap;

use serde::Serialize;

use crate::event::EventRef;
use crate::fold::{Applied, InFlightRun, RunningSet};
use crate::read::Item;

/// Events by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// `Started` events.
    pub started: u64,
    /// `Completed` events.
    pub completed: u64,
    /// `Shutdown` events.
    pub shutdown: u64,
    /// `Recovered` records (the log's own).
    pub recovered: u64,
    /// `Retention` records (the log's own).
    pub retention: u64,
    /// `Finished` events (exact completions, by a run's token).
    pub finished: u64,
    /// `Promoted` events (to resume-pending).
    pub promoted: u64,
    /// `Suspended` events.
    pub suspended: u64,
    /// `Cleared` events (a resume-pending state ended).
    pub cleared: u64,
    /// `Progress` events.
    pub progress: u64,
    /// `Adopted` events (runs taken over from another log).
    pub adopted: u64,
}

/// What the fold did with the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FoldCounts {
    /// Starts below their key's high-water mark, ignored.
    pub stale_starts: u64,
    /// Completions of a run older than the key's running one, ignored.
    pub stale_completions: u64,
    /// Completions of a key with no run in flight: no-ops.
    pub unknown_completions: u64,
    /// Starts that replaced a run still in flight on their key.
    pub superseded: u64,
}

/// Percentiles of completed runs' durations, in milliseconds (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Durations {
    /// Completed runs measured.
    pub count: u64,
    /// The median.
    pub p50_ms: u64,
    /// The 99th percentile.
    pub p99_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

/// The figures of a walk. Feed it every item with [`Stats::add`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Events by kind (those the segments hold; not those only a snapshot holds).
    pub events: EventCounts,
    /// What the fold did with them.
    pub fold: FoldCounts,
    /// Valid records (frames); a batch is one record of several events.
    pub records: u64,
    /// Records holding a batch of events.
    pub batches: u64,
    /// Segment files read.
    pub segments: u64,
    /// Their bytes.
    pub segment_bytes: u64,
    /// Valid snapshot files met.
    pub snapshots: u64,
    /// Their bytes.
    pub snapshot_bytes: u64,
    /// Records a snapshot alone holds (their segments were compacted away).
    pub compacted_records: u64,
    /// Damaged regions (corruption, damaged snapshots).
    pub damaged_regions: u64,
    /// Their bytes.
    pub damaged_bytes: u64,
    /// Bytes of an incomplete last record (still being written, or a torn tail).
    pub torn_tail_bytes: u64,
    /// The first and last event timestamps seen.
    pub first_ms: Option<u64>,
    /// See `first_ms`.
    pub last_ms: Option<u64>,
    durations_ms: Vec<u64>,
    key_events: HashMap<String, u64>,
}

impl Stats {
    /// Empty figures.
    pub fn new() -> Stats {
        Stats::default()
    }

    /// Counts one item.
    pub fn add(&mut self, item: &Item<'_>) {
        match item {
            Item::Segment(s) => {
                self.segments += 1;
                self.segment_bytes += s.bytes;
            }
            Item::Snapshot(s) => {
                self.snapshots += 1;
                self.snapshot_bytes += s.bytes;
                if let Some((first, last)) = s.compacted {
                    self.compacted_records += last + 1 - first;
                }
            }
            Item::Damage(d) => {
                self.damaged_regions += 1;
                self.damaged_bytes += d.region.end_offset - d.region.start_offset;
            }
            Item::End(end) => {
                self.torn_tail_bytes = end.torn_tail.map_or(0, |t| t.bytes);
            }
            Item::Event(e) => {
                if e.index == 0 {
                    self.records += 1;
                    if e.batch > 1 {
                        self.batches += 1;
                    }
                }
                let at = e.event.at_ms();
                self.first_ms = Some(self.first_ms.map_or(at, |f| f.min(at)));
                self.last_ms = Some(self.last_ms.map_or(at, |l| l.max(at)));
                self.count_kind(e.event);
                self.count_fold(e.applied);
                if let Some(started) = e.ended_run_started_at_ms {
                    self.durations_ms.push(at.saturating_sub(started));
                }
                if let Some(key) = e.event.key() {
                    match self.key_events.get_mut(key) {
                        Some(n) => *n += 1,
                        None => {
                            self.key_events.insert(key.to_string(), 1);
                        }
                    }
                }
            }
        }
    }

    fn count_kind(&mut self, event: EventRef<'_>) {
        let counts = &mut self.events;
        match event {
            EventRef::Started(_) => counts.started += 1,
            EventRef::Completed { .. } => counts.completed += 1,
            EventRef::Shutdown { .. } => counts.shutdown += 1,
            EventRef::Recovered { .. } => counts.recovered += 1,
            EventRef::Retention { .. } => counts.retention += 1,
            EventRef::Finished { .. } => counts.finished += 1,
            EventRef::Promoted { .. } => counts.promoted += 1,
            EventRef::Suspended { .. } => counts.suspended += 1,
            EventRef::Cleared { .. } => counts.cleared += 1,
            EventRef::Progress { .. } => counts.progress += 1,
            EventRef::Adopted(_) => counts.adopted += 1,
        }
    }

    fn count_fold(&mut self, applied: Applied) {
        let fold = &mut self.fold;
        match applied {
            Applied::StaleStart { .. } => fold.stale_starts += 1,
            Applied::StaleCompletion { .. } => fold.stale_completions += 1,
            Applied::UnknownCompletion => fold.unknown_completions += 1,
            Applied::Started {
                superseded: Some(_),
            } => fold.superseded += 1,
            _ => {}
        }
    }

    /// The distribution of completed runs' durations (from start to the completion that ended
    /// the run, both as the gateway stamped them), or `None` if no run completed.
    pub fn durations(&mut self) -> Option<Durations> {
        let d = &mut self.durations_ms;
        if d.is_empty() {
            return None;
        }
        d.sort_unstable();
        let rank = |p| percentile_or_zero(d, p);
        Some(Durations {
            count: d.len() as u64,
            p50_ms: rank(P50),
            p99_ms: rank(P99),
            max_ms: rank(MAX),
        })
    }

    /// The `n` keys with the most events, most first (ties by key).
    pub fn busiest_keys(&self, n: usize) -> Vec<(String, u64)> {
        let mut keys: Vec<(&String, &u64)> = self.key_events.iter().collect();
        keys.sort_unstable_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        keys.into_iter()
            .take(n)
            .map(|(k, c)| (k.clone(), *c))
            .collect()
    }

    /// Distinct keys seen in events.
    pub fn keys(&self) -> usize {
        self.key_events.len()
    }
}

/// The `n` runs in flight in `set` that started longest ago, oldest first.
pub fn longest_running(set: &RunningSet, n: usize) -> Vec<InFlightRun> {
    let mut runs: Vec<&InFlightRun> = set.entries().collect();
    runs.sort_by(|a, b| (a.run.started_at_ms, &a.run.key).cmp(&(b.run.started_at_ms, &b.run.key)));
    runs.into_iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut stats = Stats::new();
        stats.durations_ms = (1..=100).rev().collect();
        let d = stats.durations().unwrap();
        assert_eq!((d.count, d.p50_ms, d.p99_ms, d.max_ms), (100, 50, 99, 100));
        stats.durations_ms = vec![7];
        let d = stats.durations().unwrap();
        assert_eq!((d.p50_ms, d.p99_ms, d.max_ms), (7, 7, 7));
        assert_eq!(Stats::new().durations(), None);
    }
}
