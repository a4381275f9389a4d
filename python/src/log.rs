//! The log handle and the calls that open or read a log: `open`, `read_only`, the fallback
//! without a log, and the import of runs recorded elsewhere.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use inflight::fallback::LogView;
use inflight::{Error, Event, Generation, Options, Policy, Run, RunningSet, UnixMs};

use crate::convert::{
    applied_str, json_to_py, ms_or_now, sessions_from, to_key, to_u64, window_and_now,
};
use crate::errors::to_py_err;
use crate::values::{PyFlagged, PyInterrupted, PyReport, PyRun, flagged_list};

/// An open log. Use it as a context manager, or call `close()`.
#[pyclass(frozen, name = "Log", module = "inflight")]
pub(crate) struct PyLog {
    /// `None` once closed (or abandoned): the Rust handle is dropped, and the lock released,
    /// when the last call (or async front) using it lets go of it.
    inner: Mutex<Option<Arc<inflight::Log>>>,
    report: Py<PyReport>,
    dir: PathBuf,
}

impl PyLog {
    /// The Rust handle, or `ClosedError`.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Arc<inflight::Log>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clone().ok_or_else(|| to_py_err(py, Error::Closed))
    }

    /// Runs `call` on the log with the GIL released.
    fn blocking<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&inflight::Log) -> inflight::Result<T> + Send,
    ) -> PyResult<T> {
        let log = self.handle(py)?;
        py.allow_threads(move || call(&log))
            .map_err(|e| to_py_err(py, e))
    }

    fn take(&self) -> Option<Arc<inflight::Log>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn threshold(&self) -> u32 {
        self.report.get().inner.crash_loop_threshold
    }
}

impl Drop for PyLog {
    /// A log dropped without `close()` (the handle collected, the process exiting) is released
    /// as a crash would release it; dropping the last handle waits for a background compaction,
    /// so it does not hold the GIL meanwhile.
    fn drop(&mut self) {
        let log = self
            .inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(log) = log {
            Python::with_gil(|py| py.allow_threads(move || drop(log)));
        }
    }
}

#[pymethods]
impl PyLog {
    /// What the open's replay found: the runs that were in flight, and the log's condition.
    #[getter]
    fn report(&self, py: Python<'_>) -> Py<PyReport> {
        self.report.clone_ref(py)
    }

    /// The log directory.
    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// True once `close()` or `abandon()` was called (or the context manager exited).
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Records that a run started, under the generation the gateway chose. Returns once the
    /// start is durable, with what it did: "started", or "superseded" (it replaced an older run
    /// of the key). A generation below the key's high-water mark raises
    /// `StaleGenerationError` and writes nothing (the run would not be tracked): let the log
    /// allocate generations with `begin_run`.
    #[pyo3(signature = (key, session_id, generation, started_at_ms = None, meta = None))]
    fn mark_running(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        session_id: String,
        generation: &Bound<'_, PyAny>,
        started_at_ms: Option<&Bound<'_, PyAny>>,
        meta: Option<String>,
    ) -> PyResult<&'static str> {
        let run = run_from(key, session_id, generation, started_at_ms, meta)?;
        self.blocking(py, move |log| log.mark_running(run))
            .map(applied_str)
    }

    /// Begins a run on `key` under the next generation, which the log allocates (monotonic per
    /// key, across restarts). Returns the `Run`, generation included, once its start is durable.
    #[pyo3(signature = (key, session_id, meta = None))]
    fn begin_run(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        session_id: String,
        meta: Option<String>,
    ) -> PyResult<PyRun> {
        let key = to_key(key)?;
        self.blocking(py, move |log| log.begin_run(key, session_id, meta))
            .map(PyRun::from)
    }

    /// Records that the run of `key` with `generation` completed. Returns once the completion
    /// is durable, with what it did: "completed", "stale-completion" (a newer run owns the
    /// key) or "unknown-completion" (nothing was running: a no-op).
    #[pyo3(signature = (key, generation, at_ms = None))]
    fn mark_completed(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        generation: &Bound<'_, PyAny>,
        at_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<&'static str> {
        let key = to_key(key)?;
        let generation = to_u64(generation, "generation", Some(&key))?;
        let at = ms_or_now(at_ms, "at_ms", Some(&key))?;
        self.blocking(py, move |log| {
            log.mark_completed_at(&key, generation, UnixMs(at))
        })
        .map(applied_str)
    }

    /// Records the completion of every `(key, generation)` pair, in order, sharing writes and
    /// syncs (every completion is accepted first, then all are waited for: a few frames for
    /// thousands of them). Returns once all are durable, with what each did, in order. Each
    /// pair is checked before anything is written.
    #[pyo3(signature = (pairs, at_ms = None))]
    fn mark_completed_many(
        &self,
        py: Python<'_>,
        pairs: &Bound<'_, PyAny>,
        at_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<&'static str>> {
        let at_ms = ms_or_now(at_ms, "at_ms", None)?;
        let mut events = Vec::new();
        for pair in pairs.try_iter()? {
            let (key, generation): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            let key = to_key(&key)?;
            let generation = to_u64(&generation, "generation", Some(&key))?;
            events.push(Event::Completed {
                key,
                generation,
                at_ms,
            });
        }
        self.blocking(py, move |log| {
            let tickets = events
                .into_iter()
                .map(|e| log.submit(e))
                .collect::<inflight::Result<Vec<_>>>()?;
            tickets.iter().map(|t| log.wait(t)).collect()
        })
        .map(|applied: Vec<_>| applied.into_iter().map(applied_str).collect())
    }

    /// Records a clean shutdown and releases the log (its lock too). Runs still in flight are
    /// reported after the next open with reason "shutdown". Closing a closed log does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(log) = self.take() else {
            return Ok(());
        };
        py.allow_threads(move || {
            let closed = log.close();
            drop(log); // waits for a background compaction, then releases the lock
            match closed {
                // An async front recorded the shutdown already.
                Err(Error::Closed) => Ok(()),
                other => other,
            }
        })
        .map_err(|e| to_py_err(py, e))
    }

    /// Releases the log without recording a shutdown, as a crash would: the runs in flight
    /// are reported with reason "crash" at the next open.
    fn abandon(&self, py: Python<'_>) {
        if let Some(log) = self.take() {
            py.allow_threads(move || drop(log));
        }
    }

    /// The runs in flight now, ordered by key.
    fn running(&self, py: Python<'_>) -> PyResult<Vec<PyInterrupted>> {
        let threshold = self.threshold();
        Ok(self
            .handle(py)?
            .running()
            .iter()
            .map(|r| PyInterrupted::new(r, threshold))
            .collect())
    }

    /// The run in flight on `key` now, or None.
    fn in_flight(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<PyInterrupted>> {
        let key = to_key(key)?;
        let threshold = self.threshold();
        Ok(self
            .handle(py)?
            .in_flight(&key)
            .map(|r| PyInterrupted::new(&r, threshold)))
    }

    /// The highest generation recorded for `key`, or None.
    fn high_water(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let key = to_key(key)?;
        Ok(self.handle(py)?.high_water(&key).map(|m| m.generation))
    }

    /// What the fold has counted since the log was created.
    fn counters(&self, py: Python<'_>) -> PyResult<PyObject> {
        let counters = self.handle(py)?.counters();
        json_to_py(py, &counters)
    }

    /// The handle's figures since it was opened, as a dict: events by outcome (`started`,
    /// `superseded`, `stale_starts`, `completed`, `stale_completions`, `unknown_completions`,
    /// `log_records`), `syncs`, `sync_seconds` (total) and `sync_seconds_max`,
    /// `written_bytes`, `queue_events`, `compactions`, `compaction_seconds`, `snapshot_bytes`,
    /// `recovered_runs`, `crash_loops` and `poisoned`. Counts only go up: feed them to
    /// prometheus_client as counters (python/README.md, "Metrics").
    fn metrics(&self, py: Python<'_>) -> PyResult<PyObject> {
        let figures = self.handle(py)?.figures();
        json_to_py(py, &figures)
    }

    /// Compacts the log now (a JSON snapshot, written atomically). Returns what it did.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.blocking(py, |log| log.compact())?;
        let d = PyDict::new(py);
        d.set_item("snapshot", c.snapshot.display().to_string())?;
        d.set_item("last_seq", c.last_seq)?;
        d.set_item("bytes", c.bytes)?;
        d.set_item("running", c.running)?;
        d.set_item("marks", c.marks)?;
        d.set_item("forgotten", c.forgotten)?;
        d.set_item("segments_removed", c.segments_removed)?;
        d.set_item("snapshots_removed", c.snapshots_removed)?;
        Ok(d)
    }

    /// The time-window fallback for this log: which of the gateway's sessions to treat as
    /// interrupted, and why. `sessions` maps each key to when it was last active (milliseconds
    /// since the Unix epoch), as a dict or `(key, last_active_ms)` pairs.
    #[pyo3(signature = (sessions, window_ms = None, now_ms = None))]
    fn fallback(
        &self,
        py: Python<'_>,
        sessions: &Bound<'_, PyAny>,
        window_ms: Option<&Bound<'_, PyAny>>,
        now_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PyFlagged>> {
        let sessions = sessions_from(sessions)?;
        let (window, now) = window_and_now(window_ms, now_ms)?;
        let log = self.handle(py)?;
        let report = &self.report.get().inner;
        let flagged = py.allow_threads(|| log.fallback(report, &sessions, window, now));
        Ok(flagged_list(flagged, Some(report)))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// A clean exit closes the log (a shutdown record); an exception abandons it (no
    /// shutdown record: the runs in flight are crash victims).
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match exc_type {
            Some(t) if !t.is_none() => self.abandon(py),
            _ => self.close(py)?,
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Log(dir={:?}, closed={})",
            self.dir.display().to_string(),
            if self.closed() { "True" } else { "False" }
        )
    }
}

/// A start's arguments, checked.
fn run_from(
    key: &Bound<'_, PyAny>,
    session_id: String,
    generation: &Bound<'_, PyAny>,
    started_at_ms: Option<&Bound<'_, PyAny>>,
    meta: Option<String>,
) -> PyResult<Run> {
    let key = to_key(key)?;
    let generation = to_u64(generation, "generation", Some(&key))?;
    let started_at_ms = ms_or_now(started_at_ms, "started_at_ms", Some(&key))?;
    let mut run = Run::new(
        key,
        session_id,
        Generation(generation),
        UnixMs(started_at_ms),
    );
    run.meta = meta;
    Ok(run)
}

pub(crate) fn policy(strict: bool) -> Policy {
    if strict {
        Policy::Strict
    } else {
        Policy::SkipDamaged
    }
}

/// The options of an open, from the keyword arguments `open` and `open_database` share.
pub(crate) fn options(
    strict: bool,
    segment_bytes_max: u64,
    compact_after_bytes: Option<u64>,
    retention_ms: Option<u64>,
    crash_loop_threshold: u32,
) -> Options {
    Options::default()
        .policy(policy(strict))
        .segment_bytes_max(segment_bytes_max)
        .compact_after_bytes(compact_after_bytes)
        .retention(retention_ms.map(Duration::from_millis))
        .crash_loop_threshold(crash_loop_threshold)
}

impl PyLog {
    /// The Python handle over an opened log, named `dir` in its `dir` attribute.
    pub(crate) fn new(py: Python<'_>, opened: inflight::Opened, dir: PathBuf) -> PyResult<PyLog> {
        Ok(PyLog {
            inner: Mutex::new(Some(Arc::new(opened.log))),
            report: Py::new(py, PyReport::new(py, opened.report)?)?,
            dir,
        })
    }
}

/// Opens (creating if missing) the log in `path`, replays it and takes its lock.
#[pyfunction]
#[pyo3(signature = (
    path,
    *,
    strict = false,
    segment_bytes_max = inflight::limits::SEGMENT_BYTES_MAX_DEFAULT,
    compact_after_bytes = Some(inflight::limits::COMPACT_AFTER_BYTES_DEFAULT),
    retention_ms = Some(inflight::limits::RETENTION_MS_DEFAULT),
    crash_loop_threshold = inflight::limits::CRASH_LOOP_THRESHOLD_DEFAULT,
))]
pub(crate) fn open(
    py: Python<'_>,
    path: PathBuf,
    strict: bool,
    segment_bytes_max: u64,
    compact_after_bytes: Option<u64>,
    retention_ms: Option<u64>,
    crash_loop_threshold: u32,
) -> PyResult<PyLog> {
    let options = options(
        strict,
        segment_bytes_max,
        compact_after_bytes,
        retention_ms,
        crash_loop_threshold,
    );
    let dir = path.clone();
    let opened = py
        .allow_threads(move || inflight::Log::open(&path, options))
        .map_err(|e| to_py_err(py, e))?;
    PyLog::new(py, opened, dir)
}

/// What a read-only replay found: the report, and the state the log folds to.
#[pyclass(frozen, subclass, name = "Recovered", module = "inflight")]
pub(crate) struct PyRecovered {
    #[pyo3(get)]
    report: Py<PyReport>,
    set: RunningSet,
}

impl PyRecovered {
    /// How many runs its report found in flight.
    pub(crate) fn running_count(&self) -> usize {
        self.report.get().inner.running.len()
    }

    /// The Python value of a read-only replay (or a takeover's).
    pub(crate) fn new(
        py: Python<'_>,
        report: inflight::RecoveryReport,
        set: RunningSet,
    ) -> PyResult<PyRecovered> {
        Ok(PyRecovered {
            report: Py::new(py, PyReport::new(py, report)?)?,
            set,
        })
    }
}

#[pymethods]
impl PyRecovered {
    /// The time-window fallback over this replay (see `Log.fallback`).
    #[pyo3(signature = (sessions, window_ms = None, now_ms = None))]
    fn fallback(
        &self,
        py: Python<'_>,
        sessions: &Bound<'_, PyAny>,
        window_ms: Option<&Bound<'_, PyAny>>,
        now_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PyFlagged>> {
        let sessions = sessions_from(sessions)?;
        let (window, now) = window_and_now(window_ms, now_ms)?;
        let report = &self.report.get().inner;
        let set = &self.set;
        let flagged = py.allow_threads(|| {
            inflight::fallback::flag(LogView::Present { report, set }, &sessions, window, now)
        });
        Ok(flagged_list(flagged, Some(report)))
    }

    fn __repr__(&self) -> String {
        format!("Recovered({})", self.report.get().__repr__())
    }
}

/// Replays the log in `path` without taking its lock or changing a byte.
#[pyfunction]
#[pyo3(signature = (path, *, strict = false))]
pub(crate) fn read_only(py: Python<'_>, path: PathBuf, strict: bool) -> PyResult<PyRecovered> {
    let recovered = py
        .allow_threads(move || inflight::Log::read_only(&path, policy(strict)))
        .map_err(|e| to_py_err(py, e))?;
    PyRecovered::new(py, recovered.report, recovered.set)
}

/// The time-window fallback when there is no log at all: every session active within the
/// window is flagged "no-log".
#[pyfunction]
#[pyo3(signature = (sessions, window_ms = None, now_ms = None))]
pub(crate) fn fallback_without_log(
    sessions: &Bound<'_, PyAny>,
    window_ms: Option<&Bound<'_, PyAny>>,
    now_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<PyFlagged>> {
    let sessions = sessions_from(sessions)?;
    let (window, now) = window_and_now(window_ms, now_ms)?;
    let flagged = inflight::fallback::flag(LogView::Missing, &sessions, window, now);
    Ok(flagged_list(flagged, None))
}

/// Creates a new log in `path` holding `runs` as running runs, all or nothing. A concurrent
/// import of the same path raises `LockedError`; a path that holds a log already,
/// `InvalidInputError`.
#[pyfunction]
pub(crate) fn import_runs(py: Python<'_>, path: PathBuf, runs: Vec<PyRun>) -> PyResult<usize> {
    let runs: Vec<Run> = runs.iter().map(PyRun::to_run).collect();
    py.allow_threads(move || inflight::Log::import_runs(&path, runs, Options::default()))
        .map(|r| r.imported)
        .map_err(|e| to_py_err(py, e))
}

/// Seconds since the Unix epoch (a float, as `time.time()` gives it) in milliseconds, checked.
#[pyfunction]
pub(crate) fn started_at_ms_from_secs(py: Python<'_>, key: &str, secs: f64) -> PyResult<u64> {
    inflight::import::started_at_from_secs(key, secs)
        .map(|t| t.0)
        .map_err(|e| to_py_err(py, e))
}

/// Checks a session key as every call does: a `str` (else `TypeError`), non-empty and at most
/// `KEY_BYTES_MAX` bytes (else `InvalidInputError`). Returns it.
#[pyfunction]
pub(crate) fn check_key(key: &Bound<'_, PyAny>) -> PyResult<String> {
    to_key(key)
}
