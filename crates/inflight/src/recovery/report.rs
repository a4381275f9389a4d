//! What recovery reports: the runs that were in flight, the torn tail cut, the damaged regions
//! skipped, and the counts a gateway or an operator acts on.

use serde::{Deserialize, Serialize};

use crate::damage::{Corruption, TornTail};
use crate::fold::{Counters, InFlightRun, RunningSet, Thresholds};
use crate::read::core::Found;

/// What to do with a damaged region that has valid records after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Skip the damaged region, replay what follows it, and report it as a gap (the default:
    /// losing the rest of the log to one bad sector would be worse).
    #[default]
    SkipDamaged,
    /// Fail to open with [`Error::Corrupt`](crate::Error::Corrupt).
    Strict,
}

pub use crate::snapshot::SnapshotUsed;

/// What opening (or replaying) a log found. Built in one place, from what the reading found
/// and what the open did to the end of the log ([`RecoveryReport::torn_tail`]`.cut`); its
/// derived figures are methods, and its JSON (`inflight replay --json`) holds them as members.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ReportJson", from = "ReportJson")]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The runs in flight when the log was last written, ordered by key, each with the reason
    /// it stopped: resume or suspend exactly these.
    pub running: Vec<InFlightRun>,
    /// The torn tail, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Damaged regions skipped, in log order.
    pub corruption: Vec<Corruption>,
    /// True when the log ends exactly at a clean shutdown: the last valid record (retention
    /// records aside) is a shutdown, and no torn tail, unfinished segment or damage follows it
    /// (any of those means a process wrote after the shutdown and did not finish). A process
    /// that opened the log after the shutdown and found runs in flight recorded its recovery,
    /// so its own exit shows here; one that found none and wrote nothing leaves no trace.
    pub clean_shutdown: bool,
    /// Since when the log has been recording (milliseconds since the Unix epoch), from the
    /// snapshot replay started from or the segment headers; `None` when neither could be read.
    /// Runs that began before this are not covered.
    pub coverage_since_ms: Option<u64>,
    /// Everything the fold counted.
    pub counters: Counters,
    /// Segment files read.
    pub segments: u64,
    /// Valid records replayed.
    pub records: u64,
    /// Sequence number of the last valid record (0 if none), or of the last one the snapshot
    /// covers if no record follows it.
    pub last_seq: u64,
    /// The snapshot replay started from, if any; `records` and `segments` count only what came
    /// after it.
    pub snapshot: Option<SnapshotUsed>,
    /// Damage found before the snapshot was written, in what it covers (the newest 64): its
    /// bytes are gone with the segments the compaction removed, and the gaps are kept so the
    /// time-window fallback still sees them. Reported here and not in `corruption` (the replay
    /// or compaction that found it reported it then); the strict policy fails on it too.
    pub gaps_before_snapshot: Vec<Corruption>,
    /// The number of consecutive recoveries at which an interrupted run is a crash loop
    /// ([`InFlightRun::recoveries`]); 0 turns the detection off. A read-write open uses
    /// [`Options::crash_loop_threshold`](crate::Options::crash_loop_threshold), a read-only
    /// replay the default, 3.
    pub crash_loop_threshold: u32,
    /// The number of consecutive graceful stops at which an interrupted run is a reboot loop
    /// ([`InFlightRun::stops`]); 0 turns the detection off. A read-write open uses
    /// [`Options::stop_loop_threshold`](crate::Options::stop_loop_threshold), a read-only
    /// replay the default, 3.
    pub stop_loop_threshold: u32,
    /// The keys whose runs were running when the log was last written (before this open's
    /// recovery record, if it wrote one), in key order: the turns the last process's stop
    /// interrupted, as they stood before any decision (their `meta` as their latest progress
    /// left it, in [`running`](RecoveryReport::running)). A run that was waiting (pending,
    /// suspended, or interrupted and not resumed) is not among them.
    pub interrupted: Vec<String>,
}

/// A state's runs as a report lists them, sorted by key once: every run in flight, and the
/// keys of those that were running (what a stop then interrupted).
#[derive(Debug)]
pub(crate) struct Runs {
    running: Vec<InFlightRun>,
    interrupted: Vec<String>,
}

impl Runs {
    /// The runs `set` holds now.
    pub(crate) fn of(set: &RunningSet) -> Runs {
        let running: Vec<InFlightRun> = set.entries().cloned().collect();
        let interrupted = running
            .iter()
            .filter(|r| r.running)
            .map(|r| r.run.key.clone())
            .collect();
        Runs {
            running,
            interrupted,
        }
    }

    /// The runs after a recovery record the set folded (each running one interrupted once
    /// more, by the fold's own rule); `interrupted` still names those that were running.
    pub(crate) fn recovered(mut self, set: &RunningSet) -> Runs {
        for run in &mut self.running {
            crate::fold::interrupt(run);
        }
        debug_assert!(
            self.running.iter().eq(set.entries()),
            "a report's runs are the set's"
        );
        self
    }
}

impl RecoveryReport {
    /// The report of a reading (`found`), with `runs` (the state's runs in key order, the
    /// open's recovery record folded, if it wrote one: see [`Runs`]), the counters of the
    /// state, whether the open cut the torn tail, and `coverage_since_ms` (a read-write
    /// open's, which a new segment may have started).
    pub(crate) fn of(
        found: Found,
        runs: Runs,
        counters: Counters,
        torn_tail_cut: bool,
        coverage_since_ms: Option<u64>,
        thresholds: Thresholds,
    ) -> RecoveryReport {
        RecoveryReport {
            running: runs.running,
            torn_tail: found.torn_tail.map(|t| TornTail {
                cut: torn_tail_cut,
                ..t
            }),
            corruption: found.corruption,
            clean_shutdown: found.clean_shutdown,
            coverage_since_ms,
            counters,
            segments: found.segments,
            records: found.records,
            last_seq: found.last_seq,
            snapshot: found.started_from,
            gaps_before_snapshot: found.gaps_before_snapshot,
            crash_loop_threshold: thresholds.crashes,
            stop_loop_threshold: thresholds.stops,
            interrupted: runs.interrupted,
        }
    }

    /// Bytes of torn tail found (0 if none).
    pub fn torn_tail_bytes(&self) -> u64 {
        self.torn_tail.as_ref().map_or(0, |t| t.bytes)
    }

    /// Stale starts plus stale completions: the records the fold ignored. A completion of a
    /// key with no running entry is not stale; it is counted apart, in
    /// [`Counters::unknown_completions`].
    pub fn stale_ignored(&self) -> u64 {
        self.counters.stale_ignored()
    }

    /// The runs that are crash loops: a crash interrupted each while it was running at
    /// `crash_loop_threshold` or more consecutive recoveries, with no completion in between.
    /// Suspend these rather than resume them again.
    pub fn crash_loops(&self) -> impl Iterator<Item = &InFlightRun> {
        let threshold = self.crash_loop_threshold;
        self.running
            .iter()
            .filter(move |r| r.is_crash_loop(threshold))
    }

    /// The runs that are reboot loops: a graceful stop (a drain that timed out) interrupted each
    /// while it was running at `stop_loop_threshold` or more consecutive restarts, with no
    /// completion in between: typically a run whose tool restarts the gateway.
    pub fn stop_loops(&self) -> impl Iterator<Item = &InFlightRun> {
        let threshold = self.stop_loop_threshold;
        self.running
            .iter()
            .filter(move |r| r.is_stop_loop(threshold))
    }

    /// This report's loop thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            crashes: self.crash_loop_threshold,
            stops: self.stop_loop_threshold,
        }
    }

    /// Whether `run` is a loop of either kind by this report's thresholds.
    pub fn is_loop(&self, run: &InFlightRun) -> bool {
        self.thresholds().is_loop(run)
    }
}

/// The report as JSON: its fields, and its derived figures as members of their own, in the
/// order `inflight replay --json` has always written them.
#[derive(Serialize, Deserialize)]
struct ReportJson {
    running: Vec<InFlightRun>,
    #[serde(default)]
    torn_tail_bytes: u64,
    torn_tail: Option<TornTail>,
    corruption: Vec<Corruption>,
    #[serde(default)]
    stale_ignored: u64,
    clean_shutdown: bool,
    coverage_since_ms: Option<u64>,
    counters: Counters,
    segments: u64,
    records: u64,
    last_seq: u64,
    snapshot: Option<SnapshotUsed>,
    gaps_before_snapshot: Vec<Corruption>,
    crash_loop_threshold: u32,
    #[serde(default = "stop_loop_threshold_default")]
    stop_loop_threshold: u32,
    #[serde(default)]
    interrupted: Vec<String>,
}

fn stop_loop_threshold_default() -> u32 {
    crate::limits::STOP_LOOP_THRESHOLD_DEFAULT
}

impl From<RecoveryReport> for ReportJson {
    fn from(r: RecoveryReport) -> ReportJson {
        ReportJson {
            torn_tail_bytes: r.torn_tail_bytes(),
            stale_ignored: r.stale_ignored(),
            running: r.running,
            torn_tail: r.torn_tail,
            corruption: r.corruption,
            clean_shutdown: r.clean_shutdown,
            coverage_since_ms: r.coverage_since_ms,
            counters: r.counters,
            segments: r.segments,
            records: r.records,
            last_seq: r.last_seq,
            snapshot: r.snapshot,
            gaps_before_snapshot: r.gaps_before_snapshot,
            crash_loop_threshold: r.crash_loop_threshold,
            stop_loop_threshold: r.stop_loop_threshold,
            interrupted: r.interrupted,
        }
    }
}

impl From<ReportJson> for RecoveryReport {
    /// The derived members are derived again, not trusted.
    fn from(j: ReportJson) -> RecoveryReport {
        RecoveryReport {
            running: j.running,
            torn_tail: j.torn_tail,
            corruption: j.corruption,
            clean_shutdown: j.clean_shutdown,
            coverage_since_ms: j.coverage_since_ms,
            counters: j.counters,
            segments: j.segments,
            records: j.records,
            last_seq: j.last_seq,
            snapshot: j.snapshot,
            gaps_before_snapshot: j.gaps_before_snapshot,
            crash_loop_threshold: j.crash_loop_threshold,
            stop_loop_threshold: j.stop_loop_threshold,
            interrupted: j.interrupted,
        }
    }
}
