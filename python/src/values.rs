//! The values the binding hands to Python: a run, a run in flight, the recovery report, a key
//! the fallback flags. Plain, frozen data; their fields are read with PyO3's own getters.

use std::collections::HashMap;

use pyo3::prelude::*;

use inflight::fallback::{Flag, Flagged};
use inflight::{Generation, InFlightRun, Reason, RecoveryReport, Run, UnixMs};

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
}

impl From<Run> for PyRun {
    fn from(run: Run) -> PyRun {
        PyRun {
            key: run.key,
            session_id: run.session_id,
            generation: run.generation,
            started_at_ms: run.started_at_ms,
            meta: run.meta,
        }
    }
}

impl PyRun {
    pub(crate) fn to_run(&self) -> Run {
        let run = Run::new(
            &self.key,
            &self.session_id,
            Generation(self.generation),
            UnixMs(self.started_at_ms),
        );
        match &self.meta {
            Some(meta) => run.with_meta(meta),
            None => run,
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
        })
    }

    /// The start time in seconds since the Unix epoch, as `time.time()` gives it.
    #[getter]
    fn started_at(&self) -> f64 {
        self.started_at_ms as f64 / 1000.0
    }

    fn __repr__(&self) -> String {
        format!(
            "Run(key={:?}, session_id={:?}, generation={}, started_at_ms={}, meta={})",
            self.key,
            self.session_id,
            self.generation,
            self.started_at_ms,
            self.meta
                .as_ref()
                .map_or("None".to_string(), |m| format!("{m:?}"))
        )
    }
}

/// A run in flight: reported by recovery as interrupted, or in the live running set.
#[pyclass(frozen, eq, get_all, name = "InterruptedRun", module = "inflight")]
#[derive(Clone, PartialEq)]
pub(crate) struct PyInterrupted {
    key: String,
    session_id: String,
    generation: u64,
    started_at_ms: u64,
    meta: Option<String>,
    reason: &'static str,
    recoveries: u32,
    crash_loop: bool,
}

impl PyInterrupted {
    pub(crate) fn new(r: &InFlightRun, crash_loop_threshold: u32) -> PyInterrupted {
        PyInterrupted {
            key: r.run.key.clone(),
            session_id: r.run.session_id.clone(),
            generation: r.run.generation,
            started_at_ms: r.run.started_at_ms,
            meta: r.run.meta.clone(),
            reason: r.reason.as_str(),
            recoveries: r.recoveries,
            crash_loop: r.reason == Reason::Crash
                && crash_loop_threshold > 0
                && r.recoveries >= crash_loop_threshold,
        }
    }
}

#[pymethods]
impl PyInterrupted {
    /// The start time in seconds since the Unix epoch.
    #[getter]
    fn started_at(&self) -> f64 {
        self.started_at_ms as f64 / 1000.0
    }

    /// The run itself.
    #[getter]
    fn run(&self) -> PyRun {
        PyRun {
            key: self.key.clone(),
            session_id: self.session_id.clone(),
            generation: self.generation,
            started_at_ms: self.started_at_ms,
            meta: self.meta.clone(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "InterruptedRun(key={:?}, session_id={:?}, generation={}, started_at_ms={}, reason={:?}, recoveries={}, crash_loop={})",
            self.key,
            self.session_id,
            self.generation,
            self.started_at_ms,
            self.reason,
            self.recoveries,
            if self.crash_loop { "True" } else { "False" }
        )
    }
}

/// What opening (or reading) a log found. Its fields are built once, when the log is opened.
#[pyclass(frozen, name = "RecoveryReport", module = "inflight")]
pub(crate) struct PyReport {
    /// The runs in flight when the log was last written, ordered by key.
    #[pyo3(get)]
    running: Vec<PyInterrupted>,
    /// The interrupted runs that are crash loops: suspend these rather than resume them.
    #[pyo3(get)]
    crash_loops: Vec<PyInterrupted>,
    #[pyo3(get)]
    crash_loop_threshold: u32,
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
        let threshold = inner.crash_loop_threshold;
        Ok(PyReport {
            running: inner
                .running
                .iter()
                .map(|r| PyInterrupted::new(r, threshold))
                .collect(),
            crash_loops: inner
                .crash_loops()
                .map(|r| PyInterrupted::new(r, threshold))
                .collect(),
            crash_loop_threshold: threshold,
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
            "RecoveryReport(running={}, crash_loops={}, torn_tail_bytes={}, corruption={}, clean_shutdown={})",
            self.running.len(),
            self.crash_loops.len(),
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
            recoveries: matches!(f.reason, Flag::Log | Flag::CrashLoop)
                .then(|| recoveries.get(f.key.as_str()).copied())
                .flatten(),
            key: f.key,
        })
        .collect()
}
