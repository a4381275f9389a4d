//! The values the binding hands to Python: a run, a run in flight, the recovery report, a key
//! the fallback flags. Plain, frozen data; their fields are read with PyO3's own getters.

use std::collections::HashMap;

use pyo3::prelude::*;

use inflight::fallback::{Flag, Flagged};
use inflight::{InFlightRun, RecoveryReport, Run, Thresholds};

use crate::convert::{json_to_py, to_ms, to_u64};

/// One agent run: what a gateway needs back after a crash to resume or suspend it.
#[pyclass(frozen, eq, get_all, name = "Run", module = "inflight")]
#[derive(Clone, PartialEq)]
pub(crate) struct PyRun {
    key: String,
    session_id: String,
    generation: u64,
    started_at_ms: u64,
    meta: Option<String>,
    nonce: u64,
}

impl From<Run> for PyRun {
    fn from(run: Run) -> PyRun {
        PyRun {
            key: run.key,
            session_id: run.session_id,
            generation: run.generation,
            started_at_ms: run.started_at_ms,
            meta: run.meta,
            nonce: run.nonce,
        }
    }
}

impl PyRun {
    pub(crate) fn to_run(&self) -> Run {
        Run {
            key: self.key.clone(),
            session_id: self.session_id.clone(),
            generation: self.generation,
            started_at_ms: self.started_at_ms,
            meta: self.meta.clone(),
            nonce: self.nonce,
        }
    }
}

#[pymethods]
impl PyRun {
    #[new]
    #[pyo3(signature = (key, session_id, generation, started_at_ms, meta = None))]
    fn new(
        key: String,
        session_id: String,
        generation: &Bound<'_, PyAny>,
        started_at_ms: &Bound<'_, PyAny>,
        meta: Option<String>,
    ) -> PyResult<PyRun> {
        let generation = to_u64(generation, "generation", Some(&key))?;
        let started_at_ms = to_ms(started_at_ms, "started_at_ms", Some(&key))?;
        Ok(PyRun {
            key,
            session_id,
            generation,
            started_at_ms,
            meta,
            nonce: 0,
        })
    }

    /// The start time in seconds since the Unix epoch, as `time.time()` gives it.
    #[getter]
    fn started_at(&self) -> f64 {
        self.started_at_ms as f64 / 1000.0
    }

    /// The run's token: 32 hex digits that name this run of this key in this log and nothing
    /// else (`Log.complete_token` completes exactly it).
    #[getter]
    fn token(&self) -> String {
        self.to_run().token().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "Run(key={:?}, session_id={:?}, generation={}, started_at_ms={}, meta={}, token={:?})",
            self.key,
            self.session_id,
            self.generation,
            self.started_at_ms,
            self.meta
                .as_ref()
                .map_or("None".to_string(), |m| format!("{m:?}")),
            self.token()
        )
    }
}

/// A run in flight: reported by recovery, or in the live set; with where it stands
/// (`state`: "running", "interrupted", "pending" or "suspended"), its loop counts and flags.
#[pyclass(frozen, eq, name = "InterruptedRun", module = "inflight")]
#[derive(Clone, PartialEq)]
pub(crate) struct PyInterrupted {
    #[pyo3(get)]
    key: String,
    #[pyo3(get)]
    session_id: String,
    #[pyo3(get)]
    generation: u64,
    #[pyo3(get)]
    started_at_ms: u64,
    #[pyo3(get)]
    meta: Option<String>,
    #[pyo3(get)]
    token: String,
    #[pyo3(get)]
    reason: &'static str,
    #[pyo3(get)]
    recoveries: u32,
    #[pyo3(get)]
    stops: u32,
    #[pyo3(get)]
    state: &'static str,
    #[pyo3(get)]
    running: bool,
    #[pyo3(get)]
    pending_reason: Option<String>,
    #[pyo3(get)]
    pending_at_ms: Option<u64>,
    #[pyo3(get)]
    suspended_at_ms: Option<u64>,
    #[pyo3(get)]
    crash_loop: bool,
    #[pyo3(get)]
    stop_loop: bool,
    /// Kept to hand the run to `Log.adopt` as it is.
    inner: InFlightRun,
}

impl PyInterrupted {
    pub(crate) fn new(r: &InFlightRun, thresholds: Thresholds) -> PyInterrupted {
        PyInterrupted {
            key: r.run.key.clone(),
            session_id: r.run.session_id.clone(),
            generation: r.run.generation,
            started_at_ms: r.run.started_at_ms,
            meta: r.run.meta.clone(),
            token: r.run.token().to_string(),
            reason: r.reason.as_str(),
            recoveries: r.recoveries,
            stops: r.stops,
            state: r.state().as_str(),
            running: r.running,
            pending_reason: r.pending.as_ref().map(|p| p.reason.clone()),
            pending_at_ms: r.pending.as_ref().map(|p| p.at_ms),
            suspended_at_ms: r.suspended_at_ms,
            crash_loop: r.is_crash_loop(thresholds.crashes),
            stop_loop: r.is_stop_loop(thresholds.stops),
            inner: r.clone(),
        }
    }

    pub(crate) fn inner(&self) -> &InFlightRun {
        &self.inner
    }
}

#[pymethods]
impl PyInterrupted {
    /// The start time in seconds since the Unix epoch.
    #[getter]
    fn started_at(&self) -> f64 {
        self.started_at_ms as f64 / 1000.0
    }

    /// When it was promoted to resume-pending, in seconds since the Unix epoch, or None.
    #[getter]
    fn pending_at(&self) -> Option<f64> {
        self.pending_at_ms.map(|ms| ms as f64 / 1000.0)
    }

    /// A loop of either kind: suspend it rather than resume it again.
    #[getter]
    fn is_loop(&self) -> bool {
        self.crash_loop || self.stop_loop
    }

    /// The run itself.
    #[getter]
    fn run(&self) -> PyRun {
        PyRun::from(self.inner.run.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "InterruptedRun(key={:?}, session_id={:?}, generation={}, started_at_ms={}, state={:?}, reason={:?}, recoveries={}, stops={}, pending_reason={:?}, crash_loop={}, stop_loop={})",
            self.key,
            self.session_id,
            self.generation,
            self.started_at_ms,
            self.state,
            self.reason,
            self.recoveries,
            self.stops,
            self.pending_reason,
            if self.crash_loop { "True" } else { "False" },
            if self.stop_loop { "True" } else { "False" }
        )
    }
}

/// What opening (or reading) a log found. Its fields are built once, when the log is opened.
#[pyclass(frozen, name = "RecoveryReport", module = "inflight")]
pub(crate) struct PyReport {
    /// The runs in flight when the log was last written, ordered by key.
    #[pyo3(get)]
    running: Vec<PyInterrupted>,
    /// The runs that are crash loops: suspend these rather than resume them.
    #[pyo3(get)]
    crash_loops: Vec<PyInterrupted>,
    /// The runs that are reboot loops (graceful stops): suspend these too.
    #[pyo3(get)]
    stop_loops: Vec<PyInterrupted>,
    #[pyo3(get)]
    crash_loop_threshold: u32,
    #[pyo3(get)]
    stop_loop_threshold: u32,
    /// The keys whose runs were running when the log was last written: the turns the last
    /// process's stop interrupted, before any decision.
    #[pyo3(get)]
    interrupted: Vec<String>,
    #[pyo3(get)]
    torn_tail: PyObject,
    #[pyo3(get)]
    torn_tail_bytes: u64,
    #[pyo3(get)]
    corruption: PyObject,
    #[pyo3(get)]
    gaps_before_snapshot: PyObject,
    #[pyo3(get)]
    stale_ignored: u64,
    #[pyo3(get)]
    clean_shutdown: bool,
    #[pyo3(get)]
    coverage_since_ms: Option<u64>,
    #[pyo3(get)]
    counters: PyObject,
    #[pyo3(get)]
    segments: u64,
    #[pyo3(get)]
    records: u64,
    #[pyo3(get)]
    last_seq: u64,
    #[pyo3(get)]
    snapshot: PyObject,
    /// The report itself, for the fallback and `to_dict`.
    pub(crate) inner: RecoveryReport,
}

impl PyReport {
    pub(crate) fn new(py: Python<'_>, inner: RecoveryReport) -> PyResult<PyReport> {
        let thresholds = inner.thresholds();
        let list = |runs: &mut dyn Iterator<Item = &InFlightRun>| {
            runs.map(|r| PyInterrupted::new(r, thresholds)).collect()
        };
        let (running, crash_loops, stop_loops) = (
            list(&mut inner.running.iter()),
            list(&mut inner.crash_loops()),
            list(&mut inner.stop_loops()),
        );
        Ok(PyReport {
            running,
            crash_loops,
            stop_loops,
            crash_loop_threshold: thresholds.crashes,
            stop_loop_threshold: thresholds.stops,
            interrupted: inner.interrupted.clone(),
            torn_tail: json_to_py(py, &inner.torn_tail)?,
            torn_tail_bytes: inner.torn_tail_bytes(),
            corruption: json_to_py(py, &inner.corruption)?,
            gaps_before_snapshot: json_to_py(py, &inner.gaps_before_snapshot)?,
            stale_ignored: inner.stale_ignored(),
            clean_shutdown: inner.clean_shutdown,
            coverage_since_ms: inner.coverage_since_ms,
            counters: json_to_py(py, &inner.counters)?,
            segments: inner.segments,
            records: inner.records,
            last_seq: inner.last_seq,
            snapshot: json_to_py(py, &inner.snapshot)?,
            inner,
        })
    }
}

#[pymethods]
impl PyReport {
    /// The whole report as plain data (the JSON of `inflight replay --json`'s report).
    fn to_dict(&self, py: Python<'_>) -> PyResult<PyObject> {
        json_to_py(py, &self.inner)
    }

    pub(crate) fn __repr__(&self) -> String {
        format!(
            "RecoveryReport(running={}, crash_loops={}, stop_loops={}, torn_tail_bytes={}, corruption={}, clean_shutdown={})",
            self.running.len(),
            self.crash_loops.len(),
            self.stop_loops.len(),
            self.torn_tail_bytes,
            self.inner.corruption.len(),
            if self.clean_shutdown { "True" } else { "False" }
        )
    }
}

/// A key the fallback says to treat as interrupted, and why.
#[pyclass(frozen, eq, get_all, name = "Flagged", module = "inflight")]
#[derive(Clone, PartialEq)]
pub(crate) struct PyFlagged {
    key: String,
    reason: &'static str,
    precise: bool,
    recoveries: Option<u32>,
}

#[pymethods]
impl PyFlagged {
    fn __repr__(&self) -> String {
        format!(
            "Flagged(key={:?}, reason={:?}, precise={}, recoveries={})",
            self.key,
            self.reason,
            if self.precise { "True" } else { "False" },
            self.recoveries
                .map_or("None".to_string(), |n| n.to_string())
        )
    }
}

/// The fallback's answer as Python values; the log's own answers carry the crash-loop count.
pub(crate) fn flagged_list(
    flagged: Vec<Flagged>,
    report: Option<&RecoveryReport>,
) -> Vec<PyFlagged> {
    let recoveries: HashMap<&str, u32> = report
        .map(|r| {
            r.running
                .iter()
                .map(|run| (run.run.key.as_str(), run.recoveries))
                .collect()
        })
        .unwrap_or_default();
    flagged
        .into_iter()
        .map(|f| PyFlagged {
            reason: f.reason.as_str(),
            precise: f.reason.is_precise(),
            recoveries: matches!(f.reason, Flag::Log | Flag::CrashLoop | Flag::RebootLoop)
                .then(|| recoveries.get(f.key.as_str()).copied())
                .flatten(),
            key: f.key,
        })
        .collect()
}
