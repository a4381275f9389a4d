//! How to open a log: a builder, so that new settings never break a caller.

use std::fmt;
use std::sync::Arc;

use crate::environment::{Environment, SystemEnvironment};
use crate::error::{Error, Result};
use crate::limits::{
    COMPACT_AFTER_BYTES_DEFAULT, CRASH_LOOP_THRESHOLD_DEFAULT, RETENTION_MS_DEFAULT,
    SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MIN, STOP_LOOP_THRESHOLD_DEFAULT,
};
use crate::recovery::Policy;

/// How to open a log. Start from [`Options::default`] and change what you need:
///
/// ```
/// use inflight::Options;
///
/// let options = Options::default().strict().segment_bytes_max(64 << 20);
/// assert!(format!("{options:?}").contains("Strict"));
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) policy: Policy,
    pub(crate) segment_bytes_max: u64,
    pub(crate) environment: Arc<dyn Environment>,
    pub(crate) compact_after_bytes: Option<u64>,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) crash_loop_threshold: u32,
    pub(crate) stop_loop_threshold: u32,
    /// Whether a read-write open that finds runs in flight records a recovery (false for the
    /// offline compaction, which is not a gateway's restart).
    pub(crate) record_recovery: bool,
    pub(crate) prepare_segments: bool,
    pub(crate) record_stale_starts: bool,
}

impl Default for Options {
    /// Skip and report corruption, 1 MiB segments, compact in the background after 64 MiB of
    /// segments, keep idle keys' marks 7 days, a crash loop at 3 consecutive recoveries, the
    /// system clock and random salts.
    fn default() -> Options {
        Options {
            policy: Policy::default(),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            environment: Arc::new(SystemEnvironment),
            compact_after_bytes: Some(COMPACT_AFTER_BYTES_DEFAULT),
            retention_ms: Some(RETENTION_MS_DEFAULT),
            crash_loop_threshold: CRASH_LOOP_THRESHOLD_DEFAULT,
            stop_loop_threshold: STOP_LOOP_THRESHOLD_DEFAULT,
            record_recovery: true,
            prepare_segments: true,
            record_stale_starts: false,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("policy", &self.policy)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("compact_after_bytes", &self.compact_after_bytes)
            .field("retention_ms", &self.retention_ms)
            .field("crash_loop_threshold", &self.crash_loop_threshold)
            .field("stop_loop_threshold", &self.stop_loop_threshold)
            .field("record_recovery", &self.record_recovery)
            .field("prepare_segments", &self.prepare_segments)
            .field("record_stale_starts", &self.record_stale_starts)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Corruption makes opening fail with [`Error::Corrupt`] instead of being skipped and
    /// reported ([`Policy::Strict`]).
    pub fn strict(self) -> Options {
        self.policy(Policy::Strict)
    }

    /// What to do with corruption.
    pub fn policy(mut self, policy: Policy) -> Options {
        self.policy = policy;
        self
    }

    /// The size at which the writer starts a new segment, between
    /// [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_LIMIT`] (checked when the log is opened).
    pub fn segment_bytes_max(mut self, bytes: u64) -> Options {
        self.segment_bytes_max = bytes;
        self
    }

    /// The clock and salt source (the system's by default); see [`Environment`].
    pub fn environment(mut self, environment: impl Environment + 'static) -> Options {
        self.environment = Arc::new(environment);
        self
    }

    /// When the log compacts on its own, in a background thread: once the segments written
    /// since the last snapshot reach `bytes`, or twice the last snapshot's size if that is
    /// larger (so a large running set is not rewritten over and over). `None` turns automatic
    /// compaction off; [`Log::compact`](crate::Log::compact) still works. Default 64 MiB.
    pub fn compact_after_bytes(mut self, bytes: Option<u64>) -> Options {
        self.compact_after_bytes = bytes;
        self
    }

    /// How long a key with no running run and no event keeps its high-water mark: a
    /// compaction forgets the marks idle for longer, so memory and snapshots follow the live
    /// keys, not the log's whole history. `None` keeps every mark forever. Default 7 days.
    ///
    /// A forgotten mark cannot recognise a stale record: a start for that key arriving after
    /// the retention, with a generation below the forgotten mark, is taken as a new run. Keep
    /// the retention well above the longest time a late record can take to arrive.
    pub fn retention(mut self, retention: Option<std::time::Duration>) -> Options {
        self.retention_ms = retention.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// How many consecutive crashes that interrupt a key's run while it runs make it a crash
    /// loop ([`RecoveryReport::crash_loops`](crate::RecoveryReport::crash_loops), and the
    /// fallback's `crash-loop` flag). 0 turns the detection off. Default 3.
    pub fn crash_loop_threshold(mut self, recoveries: u32) -> Options {
        self.crash_loop_threshold = recoveries;
        self
    }

    /// How many consecutive graceful stops (shutdowns whose drain timed out) that interrupt a
    /// key's run while it runs make it a reboot loop
    /// ([`RecoveryReport::stop_loops`](crate::RecoveryReport::stop_loops), and the fallback's
    /// `reboot-loop` flag). 0 turns the detection off. Default 3.
    pub fn stop_loop_threshold(mut self, stops: u32) -> Options {
        self.stop_loop_threshold = stops;
        self
    }

    /// Whether an open that finds runs in flight records a recovery (each run that was running
    /// counts one more interruption, and is interrupted from then on). Default on. Off for a
    /// process that reopens its own log after a failed write: its runs are still running, and
    /// no restart interrupted them.
    pub fn record_recovery(mut self, on: bool) -> Options {
        self.record_recovery = on;
        self
    }

    /// Whether the next segment is prepared in a background thread (created with its space
    /// reserved and synced, its header left for the rollover) once the current one is half
    /// full, so that a rollover writes and syncs only the header, and renames it. Default on.
    /// Off, each segment is created when it is needed, with every storage call on the caller's
    /// thread: for a simulated storage whose tests replay a deterministic order of calls.
    pub fn prepare_segments(mut self, on: bool) -> Options {
        self.prepare_segments = on;
        self
    }

    /// Whether a start below its key's high-water mark is written (as a record the fold
    /// ignores, returning [`Applied::StaleStart`](crate::Applied::StaleStart)) instead of
    /// refused with [`Error::StaleGeneration`]. Default off: a live call never returns `Ok` for
    /// a start the log does not track. On, for tools that copy events recorded elsewhere as
    /// they are, and for crash tests of the fold's stale rule.
    pub fn record_stale_starts(mut self, on: bool) -> Options {
        self.record_stale_starts = on;
        self
    }

    /// The loop thresholds these options set.
    pub(crate) fn thresholds(&self) -> crate::fold::Thresholds {
        crate::fold::Thresholds {
            crashes: self.crash_loop_threshold,
            stops: self.stop_loop_threshold,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.compact_after_bytes == Some(0) {
            return Err(Error::InvalidInput {
                field: "compact_after_bytes",
                reason: "is 0; use None to turn automatic compaction off".into(),
                key: None,
            });
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return Err(Error::InvalidInput {
                field: "segment_bytes_max",
                reason: format!(
                    "is {}, outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                    self.segment_bytes_max
                ),
                key: None,
            });
        }
        Ok(())
    }
}
