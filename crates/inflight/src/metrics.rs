//! What the log reports to the `metrics` facade (feature `metrics`): with the feature off every
//! function here is empty and inlined away, so an uninstrumented build pays nothing. The names
//! and labels follow Prometheus's conventions; docs/METRICS.md lists each with its unit.
//!
//! Nothing here decides anything: the log calls these after the fact, with figures it already
//! has (a sync's duration, a batch's size, what the fold did).

use std::time::Duration;

use serde::Serialize;

use crate::fold::Applied;

/// The same figures as the series, kept by the handle whatever the features
/// ([`Log::figures`](crate::Log::figures)): for a gateway with no metrics recorder, and for
/// the Python package's `Log.metrics()`. Counts are since the handle was opened.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Starts that became their key's running run.
    pub started: u64,
    /// Starts that replaced a run of their key still in flight.
    pub superseded: u64,
    /// Starts below their key's mark, ignored.
    pub stale_starts: u64,
    /// Completions that ended a run.
    pub completed: u64,
    /// Completions of a run a newer one replaced, ignored.
    pub stale_completions: u64,
    /// Completions of a key with no run in flight.
    pub unknown_completions: u64,
    /// The log's own records (shutdown, recovery, retention).
    pub log_records: u64,
    /// Group commits: one frame, one write and one fdatasync each.
    pub syncs: u64,
    /// Seconds the syncs took in all (their write and fdatasync).
    pub sync_seconds: f64,
    /// The longest sync, in seconds.
    pub sync_seconds_max: f64,
    /// Bytes of frames written.
    pub written_bytes: u64,
    /// Events accepted and not yet durable, after the last commit.
    pub queue_events: u64,
    /// Compactions finished.
    pub compactions: u64,
    /// Seconds the compactions took in all.
    pub compaction_seconds: f64,
    /// Bytes of the newest snapshot (0 if none).
    pub snapshot_bytes: u64,
    /// Runs the open found in flight.
    pub recovered_runs: u64,
    /// Runs the open found in a crash loop.
    pub crash_loops: u64,
    /// Whether a failed write or sync poisoned the handle.
    pub poisoned: bool,
    /// Whether the handle was refused because its log was taken over (a fleet's fencing).
    pub fenced: bool,
}

impl Figures {
    /// The figures of a handle just opened on a log whose open found `report`; a recorder is
    /// told too. The one place the log's figures start from.
    pub(crate) fn at_open(report: &crate::RecoveryReport) -> Figures {
        let figures = Figures {
            recovered_runs: report.running.len() as u64,
            crash_loops: report.crash_loops().count() as u64,
            snapshot_bytes: report.snapshot.as_ref().map_or(0, |s| s.bytes),
            ..Figures::default()
        };
        let crashed = report
            .running
            .iter()
            .any(|r| r.reason == crate::fold::Reason::Crash);
        opened(figures.recovered_runs, crashed, figures.crash_loops);
        figures
    }

    /// One group commit: its duration, what the fold did with each of its events, its bytes,
    /// and the events still waiting after it. Counted here and told to a recorder.
    pub(crate) fn commit(
        &mut self,
        took: Duration,
        applied: &[Applied],
        bytes: usize,
        waiting: usize,
    ) {
        for a in applied {
            let counter = match a {
                Applied::Started { superseded: None } => &mut self.started,
                Applied::Started {
                    superseded: Some(_),
                } => &mut self.superseded,
                Applied::StaleStart { .. } => &mut self.stale_starts,
                Applied::Completed => &mut self.completed,
                Applied::StaleCompletion { .. } => &mut self.stale_completions,
                Applied::UnknownCompletion => &mut self.unknown_completions,
                _ => &mut self.log_records,
            };
            *counter += 1;
        }
        let seconds = took.as_secs_f64();
        self.syncs += 1;
        self.sync_seconds += seconds;
        self.sync_seconds_max = self.sync_seconds_max.max(seconds);
        self.written_bytes += bytes as u64;
        self.queue_events = waiting as u64;
        committed(took, applied, bytes, waiting);
    }

    /// A compaction done: how long it took and its snapshot's size.
    pub(crate) fn compacted(&mut self, took: Duration, snapshot_bytes: u64) {
        self.compactions += 1;
        self.compaction_seconds += took.as_secs_f64();
        self.snapshot_bytes = snapshot_bytes;
        compacted(took, snapshot_bytes);
    }

    /// The handle poisoned by a failed write or sync.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
        poisoned();
    }

    /// The handle refused because its log was taken over.
    pub(crate) fn fence(&mut self) {
        self.fenced = true;
        fenced();
    }
}

/// Events made durable, by `kind` and `outcome`.
pub const EVENTS_TOTAL: &str = "inflight_events_total";
/// Seconds each group commit's write and fdatasync took.
pub const SYNC_SECONDS: &str = "inflight_sync_seconds";
/// Events per group commit (one frame).
pub const BATCH_EVENTS: &str = "inflight_batch_events";
/// Bytes of frames written to segments.
pub const WRITTEN_BYTES_TOTAL: &str = "inflight_written_bytes_total";
/// Events accepted and not yet durable, after each commit.
pub const QUEUE_EVENTS: &str = "inflight_queue_events";
/// Segments created (at open and at every rollover).
pub const SEGMENTS_CREATED_TOTAL: &str = "inflight_segments_created_total";
/// Compactions completed.
pub const COMPACTIONS_TOTAL: &str = "inflight_compactions_total";
/// Seconds each compaction took.
pub const COMPACTION_SECONDS: &str = "inflight_compaction_seconds";
/// Bytes of the last snapshot written.
pub const SNAPSHOT_BYTES: &str = "inflight_snapshot_bytes";
/// Read-write opens that found runs a crash interrupted (recoveries).
pub const RECOVERIES_TOTAL: &str = "inflight_recoveries_total";
/// Runs found in flight by the last open.
pub const RECOVERED_RUNS: &str = "inflight_recovered_runs";
/// Runs found in a crash loop by an open.
pub const CRASH_LOOPS_TOTAL: &str = "inflight_crash_loops_total";
/// Handles poisoned by a failed write or sync.
pub const POISONINGS_TOTAL: &str = "inflight_poisonings_total";
/// Handles refused because their log was taken over (a fleet's fencing: this process is the
/// zombie).
pub const FENCINGS_TOTAL: &str = "inflight_fencings_total";
/// Takeovers of another instance's log this process made.
pub const TAKEOVERS_TOTAL: &str = "inflight_takeovers_total";

/// What kind of series a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of observations (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// Every series: its name, kind, unit and help text (docs/METRICS.md shows the same table).
pub const SERIES: [(&str, Kind, &str, &str); 15] = [
    (
        EVENTS_TOTAL,
        Kind::Counter,
        "events",
        "Events made durable, by kind and outcome.",
    ),
    (
        SYNC_SECONDS,
        Kind::Histogram,
        "seconds",
        "Seconds each group commit's write and fdatasync took.",
    ),
    (
        BATCH_EVENTS,
        Kind::Histogram,
        "events",
        "Events per group commit (one frame).",
    ),
    (
        WRITTEN_BYTES_TOTAL,
        Kind::Counter,
        "bytes",
        "Bytes of frames written to segments.",
    ),
    (
        QUEUE_EVENTS,
        Kind::Gauge,
        "events",
        "Events accepted and not yet durable, after each commit.",
    ),
    (
        SEGMENTS_CREATED_TOTAL,
        Kind::Counter,
        "segments",
        "Segments created.",
    ),
    (
        COMPACTIONS_TOTAL,
        Kind::Counter,
        "compactions",
        "Compactions completed.",
    ),
    (
        COMPACTION_SECONDS,
        Kind::Histogram,
        "seconds",
        "Seconds each compaction took.",
    ),
    (
        SNAPSHOT_BYTES,
        Kind::Gauge,
        "bytes",
        "Bytes of the last snapshot written.",
    ),
    (
        RECOVERIES_TOTAL,
        Kind::Counter,
        "opens",
        "Read-write opens that found runs a crash interrupted.",
    ),
    (
        RECOVERED_RUNS,
        Kind::Gauge,
        "runs",
        "Runs found in flight by the last open.",
    ),
    (
        CRASH_LOOPS_TOTAL,
        Kind::Counter,
        "runs",
        "Runs an open found in a crash loop.",
    ),
    (
        POISONINGS_TOTAL,
        Kind::Counter,
        "handles",
        "Handles poisoned by a failed write or sync.",
    ),
    (
        FENCINGS_TOTAL,
        Kind::Counter,
        "handles",
        "Handles refused because their log was taken over by another instance.",
    ),
    (
        TAKEOVERS_TOTAL,
        Kind::Counter,
        "takeovers",
        "Takeovers of another instance's log made by this process.",
    ),
];

/// Describes every series to the installed recorder, and registers the counters and gauges at
/// 0, so that a scrape shows them before anything happened (a poisoning counter that is
/// absent cannot be told from one that is not exported). Call it once, after installing a
/// recorder. Does nothing without the `metrics` feature.
pub fn describe() {
    #[cfg(feature = "metrics")]
    for (name, kind, unit, help) in SERIES {
        let unit = metrics::Unit::from_string(unit);
        match kind {
            Kind::Counter => {
                match unit {
                    Some(u) => metrics::describe_counter!(name, u, help),
                    None => metrics::describe_counter!(name, help),
                }
                if name != EVENTS_TOTAL {
                    metrics::counter!(name).absolute(0);
                }
            }
            Kind::Gauge => match unit {
                Some(u) => metrics::describe_gauge!(name, u, help),
                None => metrics::describe_gauge!(name, help),
            },
            Kind::Histogram => match unit {
                Some(u) => metrics::describe_histogram!(name, u, help),
                None => metrics::describe_histogram!(name, help),
            },
        }
    }
}

/// The `kind` and `outcome` labels of an event the fold applied.
pub fn labels(applied: &Applied) -> (&'static str, &'static str) {
    match applied {
        Applied::Started { superseded: None } => ("start", "started"),
        Applied::Started {
            superseded: Some(_),
        } => ("start", "superseded"),
        Applied::StaleStart { .. } => ("start", "stale"),
        Applied::Completed => ("completion", "completed"),
        Applied::StaleCompletion { .. } => ("completion", "stale"),
        Applied::UnknownCompletion => ("completion", "unknown"),
        Applied::Shutdown { .. } => ("shutdown", "recorded"),
        Applied::Recovered { .. } => ("recovery", "recorded"),
        Applied::Retention { .. } => ("retention", "recorded"),
        Applied::Promoted => ("promotion", "recorded"),
        Applied::Suspended => ("suspension", "recorded"),
        Applied::Cleared { .. } => ("clear", "recorded"),
        Applied::Progressed => ("progress", "recorded"),
        Applied::Adopted { superseded: None } => ("adoption", "adopted"),
        Applied::Adopted {
            superseded: Some(_),
        } => ("adoption", "superseded"),
        Applied::Unmatched { .. } => ("decision", "unmatched"),
    }
}

/// A group commit: its duration, its events (what the fold did with each), its bytes, and the
/// events still waiting after it.
#[inline]
fn committed(took: Duration, applied: &[Applied], bytes: usize, waiting: usize) {
    #[cfg(feature = "metrics")]
    {
        let mut events = 0u64;
        for a in applied {
            let (kind, outcome) = labels(a);
            metrics::counter!(EVENTS_TOTAL, "kind" => kind, "outcome" => outcome).increment(1);
            events += 1;
        }
        metrics::histogram!(SYNC_SECONDS).record(took.as_secs_f64());
        metrics::histogram!(BATCH_EVENTS).record(events as f64);
        metrics::counter!(WRITTEN_BYTES_TOTAL).increment(bytes as u64);
        metrics::gauge!(QUEUE_EVENTS).set(waiting as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (took, applied, bytes, waiting);
}

/// A segment created.
#[inline]
pub(crate) fn segment_created() {
    #[cfg(feature = "metrics")]
    metrics::counter!(SEGMENTS_CREATED_TOTAL).increment(1);
}

/// A compaction done: how long it took and its snapshot's size.
#[inline]
fn compacted(took: Duration, snapshot_bytes: u64) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(COMPACTIONS_TOTAL).increment(1);
        metrics::histogram!(COMPACTION_SECONDS).record(took.as_secs_f64());
        metrics::gauge!(SNAPSHOT_BYTES).set(snapshot_bytes as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (took, snapshot_bytes);
}

/// A read-write open: the runs it found in flight, whether a crash interrupted them (a
/// recovery), and how many are in a crash loop.
#[inline]
fn opened(in_flight: u64, recovery: bool, crash_loops: u64) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!(RECOVERED_RUNS).set(in_flight as f64);
        if recovery {
            metrics::counter!(RECOVERIES_TOTAL).increment(1);
        }
        metrics::counter!(CRASH_LOOPS_TOTAL).increment(crash_loops);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (in_flight, recovery, crash_loops);
}

/// A handle fenced.
#[inline]
fn fenced() {
    #[cfg(feature = "metrics")]
    metrics::counter!(FENCINGS_TOTAL).increment(1);
}

/// Counts a takeover ([`TAKEOVERS_TOTAL`]): a fleet's store calls it once per takeover made.
/// Nothing without the feature `metrics`.
#[inline]
pub fn taken_over() {
    #[cfg(feature = "metrics")]
    metrics::counter!(TAKEOVERS_TOTAL).increment(1);
}

/// A handle poisoned.
#[inline]
fn poisoned() {
    #[cfg(feature = "metrics")]
    metrics::counter!(POISONINGS_TOTAL).increment(1);
}
