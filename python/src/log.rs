//! The log handle and the calls that open or read a log: `open`, `read_only`, the fallback
//! without a log, and the import of runs recorded elsewhere.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use inflight::fallback::LogView;
use inflight::{Error, Event, Generation, Options, Policy, Run, RunningSet, Token, UnixMs};

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

    fn thresholds(&self) -> inflight::Thresholds {
        self.report.get().inner.thresholds()
    }

    /// Records `event` (or, for `None`, nothing: a token that is no token names no run) and
    /// says what it did.
    fn record_str(&self, py: Python<'_>, event: Option<Event>) -> PyResult<&'static str> {
        match event {
            Some(event) => self
                .blocking(py, move |log| log.record(event))
                .map(applied_str),
            None => Ok("unmatched"),
        }
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

    /// Completes exactly the run `token` (a `Run.token`, 32 hex digits) names on `key`, and no
    /// other, durably: "completed"; "unmatched" when the key's run is another (a newer turn,
    /// another key's or another log's token, or text that is no token: nothing written), or
    /// "unknown-completion" when the key has none.
    fn complete_token(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
    ) -> PyResult<&'static str> {
        self.record_str(py, finished_event(key, token)?)
    }

    /// Records that the run `token` names on `key` made progress: its meta is now `meta`,
    /// durable on return, so that recovery reports where it got. "progressed", or "unmatched"
    /// (nothing changed).
    #[pyo3(signature = (key, token, meta))]
    fn progress(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
        meta: Option<String>,
    ) -> PyResult<&'static str> {
        self.record_str(py, progress_event(key, token, meta)?)
    }

    /// Promotes the run of `key` to resume-pending with `reason`, durably: "promoted", or
    /// "unmatched" (no run, or a suspended one: a suspension is never overridden).
    fn mark_resume_pending(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        reason: String,
    ) -> PyResult<&'static str> {
        let key = to_key(key)?;
        self.blocking(py, move |log| log.mark_resume_pending(&key, &reason))
            .map(applied_str)
    }

    /// Ends the resume-pending state of `key`, durably: "cleared-and-dropped" (its run waited,
    /// and will not be resumed), "cleared" (its resumed run goes on), or "unmatched" (nothing
    /// was pending).
    fn clear_resume_pending(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<&'static str> {
        let key = to_key(key)?;
        self.blocking(py, move |log| log.clear_resume_pending(&key))
            .map(applied_str)
    }

    /// Suspends the run of `key`, durably: it is not to be resumed. "suspended", or
    /// "unmatched" (no run).
    fn suspend(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<&'static str> {
        let key = to_key(key)?;
        self.blocking(py, move |log| log.suspend(&key))
            .map(applied_str)
    }

    /// Records `run`, taken over from another log (`TakenOver.report.running`), in this one as
    /// it was there (interrupted, its loop counts, its pending or suspended state) under this
    /// log's next generation. Returns the `Run` as recorded; beginning a run on its key resumes
    /// it and carries the counts.
    fn adopt(&self, py: Python<'_>, run: PyRef<'_, PyInterrupted>) -> PyResult<PyRun> {
        let taken = run.inner().clone();
        self.blocking(py, move |log| log.adopt(&taken))
            .map(PyRun::from)
    }

    /// At an unclean start: promotes the interrupted runs younger than `max_age_seconds` (at
    /// most 0: no limit) to resume-pending (`restart_interrupted`, or `shutdown_timeout` for a
    /// drain that timed out), suspends loops, clears older ones, durably, in shared syncs.
    /// Returns `(promoted, suspended, cleared)`: the runs newly so.
    fn recover_interrupted(
        &self,
        py: Python<'_>,
        max_age_seconds: &Bound<'_, PyAny>,
    ) -> PyResult<(usize, usize, usize)> {
        let seconds = crate::convert::to_seconds(max_age_seconds, "max_age_seconds")?;
        let max_age = inflight::turns::max_age_ms(seconds).map_err(|e| to_py_err(py, e))?;
        self.blocking(py, move |log| {
            inflight::turns::recover_interrupted(log, max_age)
        })
        .map(|d| (d.promoted, d.suspended, d.cleared))
    }

    /// After a clean shutdown: runs its drain cut become resume-pending (`shutdown_timeout`),
    /// loops are suspended, runs a crash interrupted and nobody resumed are cleared. Returns
    /// `(promoted, suspended, cleared)`.
    fn discard_interrupted(&self, py: Python<'_>) -> PyResult<(usize, usize, usize)> {
        self.blocking(py, inflight::turns::discard_interrupted)
            .map(|d| (d.promoted, d.suspended, d.cleared))
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
        let thresholds = self.thresholds();
        Ok(self
            .handle(py)?
            .running()
            .iter()
            .map(|r| PyInterrupted::new(r, thresholds))
            .collect())
    }

    /// The run in flight on `key` now, or None.
    fn in_flight(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<PyInterrupted>> {
        let key = to_key(key)?;
        let thresholds = self.thresholds();
        Ok(self
            .handle(py)?
            .in_flight(&key)
            .map(|r| PyInterrupted::new(&r, thresholds)))
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

/// The exact completion of the run `token` names on `key` (see [`exact_event`]).
pub(crate) fn finished_event(
    key: &Bound<'_, PyAny>,
    token: &Bound<'_, PyAny>,
) -> PyResult<Option<Event>> {
    exact_event(key, token, |key, token| Event::Finished {
        key,
        generation: token.generation,
        nonce: token.nonce,
        at_ms: inflight::environment::now_ms(),
    })
}

/// The progress of the run `token` names on `key` (see [`exact_event`]).
pub(crate) fn progress_event(
    key: &Bound<'_, PyAny>,
    token: &Bound<'_, PyAny>,
    meta: Option<String>,
) -> PyResult<Option<Event>> {
    exact_event(key, token, |key, token| Event::Progress {
        key,
        generation: token.generation,
        nonce: token.nonce,
        meta,
        at_ms: inflight::environment::now_ms(),
    })
}

/// The event `make` builds for `key` and the run `token` names; `None` when `token` is text
/// that is no token (it names no run: nothing is written). A token that is not a `str` is a
/// `TypeError`.
fn exact_event(
    key: &Bound<'_, PyAny>,
    token: &Bound<'_, PyAny>,
    make: impl FnOnce(String, Token) -> Event,
) -> PyResult<Option<Event>> {
    let key = to_key(key)?;
    let Ok(text) = token.downcast::<pyo3::types::PyString>() else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a run's token is a str, not {}",
            token.get_type().name()?
        )));
    };
    Ok(text
        .extract::<String>()
        .ok()
        .and_then(|t| t.parse::<Token>().ok())
        .map(|token| make(key, token)))
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

/// The keyword arguments `open` and `open_database` share.
pub(crate) struct OpenArgs {
    pub(crate) strict: bool,
    pub(crate) segment_bytes_max: u64,
    pub(crate) compact_after_bytes: Option<u64>,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) crash_loop_threshold: u32,
    pub(crate) stop_loop_threshold: u32,
    pub(crate) record_recovery: bool,
}

impl OpenArgs {
    /// The options of an open.
    pub(crate) fn options(&self) -> Options {
        Options::default()
            .policy(policy(self.strict))
            .segment_bytes_max(self.segment_bytes_max)
            .compact_after_bytes(self.compact_after_bytes)
            .retention(self.retention_ms.map(Duration::from_millis))
            .crash_loop_threshold(self.crash_loop_threshold)
            .stop_loop_threshold(self.stop_loop_threshold)
            .record_recovery(self.record_recovery)
    }
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
    stop_loop_threshold = inflight::limits::STOP_LOOP_THRESHOLD_DEFAULT,
    record_recovery = true,
))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `open`
pub(crate) fn open(
    py: Python<'_>,
    path: PathBuf,
    strict: bool,
    segment_bytes_max: u64,
    compact_after_bytes: Option<u64>,
    retention_ms: Option<u64>,
    crash_loop_threshold: u32,
    stop_loop_threshold: u32,
    record_recovery: bool,
) -> PyResult<PyLog> {
    let options = OpenArgs {
        strict,
        segment_bytes_max,
        compact_after_bytes,
        retention_ms,
        crash_loop_threshold,
        stop_loop_threshold,
        record_recovery,
    }
    .options();
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
        .allow_threads(move || inflight::inspect::read_only(&path, policy(strict)))
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
    py.allow_threads(move || inflight::import::import_runs(&path, runs, Options::default()))
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

/// The runs of a JSON checkpoint file of the design this crate replaces (the crate's one
/// reader of it): generation 1 each, start times in milliseconds. `CheckpointFileError` names
/// the file and what is wrong.
#[pyfunction]
pub(crate) fn read_checkpoint(py: Python<'_>, path: PathBuf) -> PyResult<Vec<PyRun>> {
    py.allow_threads(move || inflight::import::read_checkpoint(&path))
        .map(|runs| runs.into_iter().map(PyRun::from).collect())
        .map_err(|e| to_py_err(py, e))
}

/// Checks a session key as every call does: a `str` (else `TypeError`), non-empty and at most
/// `KEY_BYTES_MAX` bytes (else `InvalidInputError`). Returns it.
#[pyfunction]
pub(crate) fn check_key(key: &Bound<'_, PyAny>) -> PyResult<String> {
    to_key(key)
}

/// Checks a time or a duration in seconds as the crate does: an int or a float (else
/// `TypeError`), finite and at least 0 (else `InvalidInputError` for `field`, naming `key`).
/// Returns it as a float.
#[pyfunction]
#[pyo3(signature = (field, value, key = None))]
pub(crate) fn check_seconds(
    py: Python<'_>,
    field: String,
    value: &Bound<'_, PyAny>,
    key: Option<String>,
) -> PyResult<f64> {
    // The field's name outlives the call in the error: one of the few the package checks.
    let field: &'static str = match field.as_str() {
        "window_seconds" => "window_seconds",
        "now" => "now",
        "last_active" => "last_active",
        "started_at" => "started_at",
        _ => "seconds",
    };
    let seconds = crate::convert::to_seconds(value, field)?;
    inflight::event::validate_seconds(field, seconds, key.as_deref()).map_err(|e| to_py_err(py, e))
}
