//! `inflight._inflight`: the compiled half of the Python package `inflight`.
//!
//! A thin shell over the Rust crate: each call converts its arguments, releases the GIL for
//! everything that writes, syncs or replays (so Python threads share group commits), and turns
//! the crate's typed `Error` into the matching exception of `inflight.errors`. The pure-Python
//! half (the checkpoint adapter, the asyncio front, the exceptions) is in `inflight/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use inflight::fallback::{Flag, Flagged, LogView, Session};
use inflight::{
    Applied, Error, Generation, InFlightRun, Options, Policy, Reason, RecoveryReport, Run,
    RunningSet, UnixMs,
};

/// The default window of the time-window fallback: the old checkpoint's 120 seconds.
const WINDOW_MS_DEFAULT: u64 = 120_000;

// ---------------------------------------------------------------------------------------------
// Errors: the crate's `Error`, as the exception of `inflight.errors` that names its variant,
// carrying the message and the variant's fields as attributes.

fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    build_error(py, &e).unwrap_or_else(|failed| failed)
}

fn build_error(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let errors = py.import("inflight.errors")?;
    let message = e.to_string();
    let none = || py.None().into_bound(py);
    let mut fields: Vec<(&str, Bound<'_, PyAny>)> = Vec::new();
    let class = match e {
        Error::Io {
            op, path, source, ..
        } => {
            fields.push(("op", (*op).into_bound_py_any(py)?));
            fields.push(("path", path.display().to_string().into_bound_py_any(py)?));
            fields.push((
                "kind",
                format!("{:?}", source.kind()).into_bound_py_any(py)?,
            ));
            fields.push(("errno", source.raw_os_error().into_bound_py_any(py)?));
            "StorageError"
        }
        Error::Locked { dir, holder_pid } => {
            fields.push(("path", dir.display().to_string().into_bound_py_any(py)?));
            fields.push(("holder_pid", (*holder_pid).into_bound_py_any(py)?));
            "LockedError"
        }
        Error::Corrupt {
            segment,
            offset,
            detail,
        } => {
            fields.push(("path", segment.display().to_string().into_bound_py_any(py)?));
            fields.push(("offset", (*offset).into_bound_py_any(py)?));
            fields.push(("detail", detail.clone().into_bound_py_any(py)?));
            "CorruptError"
        }
        Error::UnsupportedVersion {
            path,
            found,
            supported,
        } => {
            fields.push(("path", path.display().to_string().into_bound_py_any(py)?));
            fields.push(("found", (*found).into_bound_py_any(py)?));
            fields.push(("supported", (*supported).into_bound_py_any(py)?));
            "UnsupportedVersionError"
        }
        Error::Poisoned { kind, cause } => {
            fields.push(("kind", format!("{kind:?}").into_bound_py_any(py)?));
            fields.push(("cause", cause.clone().into_bound_py_any(py)?));
            "PoisonedError"
        }
        Error::Closed => "ClosedError",
        Error::InvalidInput { field, reason, key } => {
            fields.push(("field", (*field).into_bound_py_any(py)?));
            fields.push(("reason", reason.clone().into_bound_py_any(py)?));
            fields.push(("key", key.clone().into_bound_py_any(py)?));
            "InvalidInputError"
        }
        Error::NotADirectory { path } => {
            fields.push(("field", "path".into_bound_py_any(py)?));
            fields.push(("reason", message.clone().into_bound_py_any(py)?));
            fields.push(("key", none()));
            fields.push(("path", path.display().to_string().into_bound_py_any(py)?));
            "InvalidInputError"
        }
        Error::AlreadyExists { dir, .. } => {
            fields.push(("field", "path".into_bound_py_any(py)?));
            fields.push(("reason", message.clone().into_bound_py_any(py)?));
            fields.push(("key", none()));
            fields.push(("path", dir.display().to_string().into_bound_py_any(py)?));
            "InvalidInputError"
        }
        Error::NotFound { dir } => {
            fields.push(("path", dir.display().to_string().into_bound_py_any(py)?));
            "NotFoundError"
        }
        _ => "InflightError",
    };
    let exception = errors.getattr(class)?.call1((message,))?;
    for (name, value) in fields {
        exception.setattr(name, value)?;
    }
    Ok(PyErr::from_value(exception))
}

/// An `InvalidInputError` for a value the binding checks itself (before anything is written).
fn invalid(py: Python<'_>, field: &'static str, reason: String, key: Option<&str>) -> PyErr {
    to_py_err(
        py,
        Error::InvalidInput {
            field,
            reason,
            key: key.map(str::to_string),
        },
    )
}

/// A whole number in 0..2**64 (a generation, a time in milliseconds), or `InvalidInputError`.
fn to_u64(value: &Bound<'_, PyAny>, field: &'static str, key: Option<&str>) -> PyResult<u64> {
    let py = value.py();
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{field} must be an int, not a bool"
        )));
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        return value.extract::<u64>().map_err(|_| {
            invalid(
                py,
                field,
                format!("is {value}; it must be between 0 and 2**64 - 1"),
                key,
            )
        });
    }
    Err(PyTypeError::new_err(format!(
        "{field} must be an int, not {}",
        value.get_type().name()?
    )))
}

/// Milliseconds given as an int or a float (floored), at least 0.
fn to_ms(value: &Bound<'_, PyAny>, field: &'static str, key: Option<&str>) -> PyResult<u64> {
    if value.is_instance_of::<pyo3::types::PyFloat>() {
        let ms: f64 = value.extract()?;
        if !(ms.is_finite() && (0.0..1.8e19).contains(&ms)) {
            return Err(invalid(
                value.py(),
                field,
                format!("is {ms}; it must be a finite number of milliseconds since the Unix epoch"),
                key,
            ));
        }
        return Ok(ms.floor() as u64);
    }
    to_u64(value, field, key)
}

fn now_ms() -> u64 {
    inflight::environment::now_ms()
}

fn json_to_py<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| PyTypeError::new_err(format!("cannot convert to JSON: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

fn applied_str(applied: Applied) -> &'static str {
    match applied {
        Applied::Started { superseded: None } => "started",
        Applied::Started {
            superseded: Some(_),
        } => "superseded",
        Applied::StaleStart { .. } => "stale-start",
        Applied::Completed => "completed",
        Applied::StaleCompletion { .. } => "stale-completion",
        Applied::UnknownCompletion => "unknown-completion",
        Applied::Shutdown { .. } => "shutdown",
        Applied::Recovered { .. } => "recovered",
        Applied::Retention { .. } => "retention",
    }
}

// ---------------------------------------------------------------------------------------------
// Values: a run, an interrupted run, the recovery report, a flagged key.

/// One agent run: what a gateway needs back after a crash to resume or suspend it.
#[pyclass(frozen, eq, name = "Run", module = "inflight")]
#[derive(Clone, PartialEq)]
struct PyRun {
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
    fn to_run(&self) -> Run {
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
#[pyclass(frozen, eq, name = "InterruptedRun", module = "inflight")]
#[derive(Clone, PartialEq)]
struct PyInterrupted {
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
    reason: &'static str,
    #[pyo3(get)]
    recoveries: u32,
    #[pyo3(get)]
    crash_loop: bool,
}

impl PyInterrupted {
    fn new(r: &InFlightRun, crash_loop_threshold: u32) -> PyInterrupted {
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

/// What opening (or reading) a log found.
#[pyclass(frozen, name = "RecoveryReport", module = "inflight")]
struct PyReport {
    inner: RecoveryReport,
}

#[pymethods]
impl PyReport {
    /// The runs in flight when the log was last written, ordered by key.
    #[getter]
    fn running(&self) -> Vec<PyInterrupted> {
        let threshold = self.inner.crash_loop_threshold;
        self.inner
            .running
            .iter()
            .map(|r| PyInterrupted::new(r, threshold))
            .collect()
    }

    /// The interrupted runs that are crash loops: suspend these rather than resume them.
    #[getter]
    fn crash_loops(&self) -> Vec<PyInterrupted> {
        let threshold = self.inner.crash_loop_threshold;
        self.inner
            .crash_loops()
            .map(|r| PyInterrupted::new(r, threshold))
            .collect()
    }

    #[getter]
    fn crash_loop_threshold(&self) -> u32 {
        self.inner.crash_loop_threshold
    }

    #[getter]
    fn torn_tail<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.torn_tail)
    }

    #[getter]
    fn torn_tail_bytes(&self) -> u64 {
        self.inner.torn_tail_bytes
    }

    #[getter]
    fn corruption<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.corruption)
    }

    #[getter]
    fn gaps_before_snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.gaps_before_snapshot)
    }

    #[getter]
    fn stale_ignored(&self) -> u64 {
        self.inner.stale_ignored
    }

    #[getter]
    fn clean_shutdown(&self) -> bool {
        self.inner.clean_shutdown
    }

    #[getter]
    fn coverage_since_ms(&self) -> Option<u64> {
        self.inner.coverage_since_ms
    }

    #[getter]
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.counters)
    }

    #[getter]
    fn segments(&self) -> u64 {
        self.inner.segments
    }

    #[getter]
    fn records(&self) -> u64 {
        self.inner.records
    }

    #[getter]
    fn last_seq(&self) -> u64 {
        self.inner.last_seq
    }

    #[getter]
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.snapshot)
    }

    /// The whole report as plain data (the JSON of `inflight replay --json`'s report).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "RecoveryReport(running={}, crash_loops={}, torn_tail_bytes={}, corruption={}, clean_shutdown={})",
            self.inner.running.len(),
            self.inner.crash_loops().count(),
            self.inner.torn_tail_bytes,
            self.inner.corruption.len(),
            if self.inner.clean_shutdown {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// A key the fallback says to treat as interrupted, and why.
#[pyclass(frozen, eq, name = "Flagged", module = "inflight")]
#[derive(Clone, PartialEq)]
struct PyFlagged {
    #[pyo3(get)]
    key: String,
    #[pyo3(get)]
    reason: &'static str,
    #[pyo3(get)]
    precise: bool,
    #[pyo3(get)]
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

fn flagged_list(flagged: Vec<Flagged>, report: Option<&RecoveryReport>) -> Vec<PyFlagged> {
    flagged
        .into_iter()
        .map(|f| {
            let recoveries = report.and_then(|r| {
                r.running
                    .iter()
                    .find(|run| run.run.key == f.key)
                    .map(|run| run.recoveries)
            });
            PyFlagged {
                reason: f.reason.as_str(),
                precise: f.reason.is_precise(),
                recoveries: recoveries.filter(|_| matches!(f.reason, Flag::Log | Flag::CrashLoop)),
                key: f.key,
            }
        })
        .collect()
}

/// The gateway's sessions: a mapping of key to last activity, or an iterable of
/// `(key, last_active_ms)` pairs.
fn sessions_from(sessions: &Bound<'_, PyAny>) -> PyResult<Vec<Session>> {
    let items = match sessions.downcast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => sessions.clone(),
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let (key, last_active): (String, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err(
                "sessions must be a mapping of key to last_active_ms, or (key, last_active_ms) pairs",
            )
        })?;
        let ms = to_ms(&last_active, "last_active_ms", Some(&key))?;
        out.push(Session::new(key, ms));
    }
    Ok(out)
}

fn window_and_now(
    window_ms: Option<&Bound<'_, PyAny>>,
    now_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<(u64, u64)> {
    let window = match window_ms {
        Some(w) => to_ms(w, "window_ms", None)?,
        None => WINDOW_MS_DEFAULT,
    };
    let now = match now_ms {
        Some(n) => to_ms(n, "now_ms", None)?,
        None => self::now_ms(),
    };
    Ok((window, now))
}

// ---------------------------------------------------------------------------------------------
// The log handle.

/// An open log. Use it as a context manager, or call `close()`.
#[pyclass(frozen, name = "Log", module = "inflight")]
struct PyLog {
    /// `None` once closed (or abandoned): the Rust handle is dropped, and the lock released,
    /// when the last call using it returns.
    inner: Mutex<Option<Arc<inflight::Log>>>,
    report: Py<PyReport>,
    dir: PathBuf,
}

impl PyLog {
    fn handle(&self, py: Python<'_>) -> PyResult<Arc<inflight::Log>> {
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

    /// True once `close()` was called (or the context manager exited).
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Records that a run started, under the generation the gateway chose. Returns once the
    /// start is durable, with what it did: "started", "superseded" (it replaced an older run
    /// of the key) or "stale-start" (below the key's high-water mark: recorded, ignored).
    #[pyo3(signature = (key, session_id, generation, started_at_ms = None, meta = None))]
    fn mark_running(
        &self,
        py: Python<'_>,
        key: String,
        session_id: String,
        generation: &Bound<'_, PyAny>,
        started_at_ms: Option<&Bound<'_, PyAny>>,
        meta: Option<String>,
    ) -> PyResult<&'static str> {
        let generation = to_u64(generation, "generation", Some(&key))?;
        let started_at_ms = match started_at_ms {
            Some(t) => to_ms(t, "started_at_ms", Some(&key))?,
            None => now_ms(),
        };
        let mut run = Run::new(
            key,
            session_id,
            Generation(generation),
            UnixMs(started_at_ms),
        );
        run.meta = meta;
        self.blocking(py, move |log| log.mark_running(run))
            .map(applied_str)
    }

    /// Begins a run on `key` under the next generation, which the log allocates. Returns the
    /// `Run`, generation included, once its start is durable.
    #[pyo3(signature = (key, session_id, meta = None))]
    fn begin_run(
        &self,
        py: Python<'_>,
        key: String,
        session_id: String,
        meta: Option<String>,
    ) -> PyResult<PyRun> {
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
        key: String,
        generation: &Bound<'_, PyAny>,
        at_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<&'static str> {
        let generation = to_u64(generation, "generation", Some(&key))?;
        let at = match at_ms {
            Some(t) => to_ms(t, "at_ms", Some(&key))?,
            None => now_ms(),
        };
        self.blocking(py, move |log| {
            log.mark_completed_at(&key, generation, UnixMs(at))
        })
        .map(applied_str)
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
            closed
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
        let log = self.handle(py)?;
        let threshold = self.report.get().inner.crash_loop_threshold;
        Ok(log
            .running()
            .iter()
            .map(|r| PyInterrupted::new(r, threshold))
            .collect())
    }

    /// The highest generation recorded for `key`, or None.
    fn high_water(&self, py: Python<'_>, key: &str) -> PyResult<Option<u64>> {
        Ok(self.handle(py)?.high_water(key).map(|m| m.generation))
    }

    /// What the fold has counted since the log was created.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let counters = self.handle(py)?.counters();
        json_to_py(py, &counters)
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
fn open(
    py: Python<'_>,
    path: PathBuf,
    strict: bool,
    segment_bytes_max: u64,
    compact_after_bytes: Option<u64>,
    retention_ms: Option<u64>,
    crash_loop_threshold: u32,
) -> PyResult<PyLog> {
    let options = Options::default()
        .policy(if strict {
            Policy::Strict
        } else {
            Policy::SkipDamaged
        })
        .segment_bytes_max(segment_bytes_max)
        .compact_after_bytes(compact_after_bytes)
        .retention(retention_ms.map(Duration::from_millis))
        .crash_loop_threshold(crash_loop_threshold);
    let dir = path.clone();
    let opened = py
        .allow_threads(move || inflight::Log::open(&path, options))
        .map_err(|e| to_py_err(py, e))?;
    Ok(PyLog {
        inner: Mutex::new(Some(Arc::new(opened.log))),
        report: Py::new(
            py,
            PyReport {
                inner: opened.report,
            },
        )?,
        dir,
    })
}

/// What a read-only replay found: the report, and the state the log folds to.
#[pyclass(frozen, name = "Recovered", module = "inflight")]
struct PyRecovered {
    report: Py<PyReport>,
    set: RunningSet,
}

#[pymethods]
impl PyRecovered {
    #[getter]
    fn report(&self, py: Python<'_>) -> Py<PyReport> {
        self.report.clone_ref(py)
    }

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
fn read_only(py: Python<'_>, path: PathBuf, strict: bool) -> PyResult<PyRecovered> {
    let policy = if strict {
        Policy::Strict
    } else {
        Policy::SkipDamaged
    };
    let recovered = py
        .allow_threads(move || inflight::Log::read_only(&path, policy))
        .map_err(|e| to_py_err(py, e))?;
    Ok(PyRecovered {
        report: Py::new(
            py,
            PyReport {
                inner: recovered.report,
            },
        )?,
        set: recovered.set,
    })
}

/// The time-window fallback when there is no log at all: every session active within the
/// window is flagged "no-log".
#[pyfunction]
#[pyo3(signature = (sessions, window_ms = None, now_ms = None))]
fn fallback_without_log(
    sessions: &Bound<'_, PyAny>,
    window_ms: Option<&Bound<'_, PyAny>>,
    now_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<PyFlagged>> {
    let sessions = sessions_from(sessions)?;
    let (window, now) = window_and_now(window_ms, now_ms)?;
    let flagged = inflight::fallback::flag(LogView::Missing, &sessions, window, now);
    Ok(flagged_list(flagged, None))
}

/// Creates a new log in `path` holding `runs` as running runs, all or nothing.
#[pyfunction]
fn import_runs(py: Python<'_>, path: PathBuf, runs: Vec<PyRun>) -> PyResult<usize> {
    let runs: Vec<Run> = runs.iter().map(PyRun::to_run).collect();
    py.allow_threads(move || inflight::Log::import_runs(&path, runs, Options::default()))
        .map(|r| r.imported)
        .map_err(|e| to_py_err(py, e))
}

/// Seconds since the Unix epoch (a float, as `time.time()` gives it) in milliseconds, checked.
#[pyfunction]
fn started_at_ms_from_secs(py: Python<'_>, key: &str, secs: f64) -> PyResult<u64> {
    inflight::import::started_at_from_secs(key, secs)
        .map(|t| t.0)
        .map_err(|e| to_py_err(py, e))
}

/// For the benchmark: `threads` Rust threads begin and complete runs on their own keys through
/// the log in `path` for `seconds`, every event synced; returns (events, elapsed seconds).
#[pyfunction]
fn _native_load(
    py: Python<'_>,
    path: PathBuf,
    threads: usize,
    seconds: f64,
) -> PyResult<(u64, f64)> {
    let result = py.allow_threads(move || -> inflight::Result<(u64, f64)> {
        let opened = inflight::Log::open(&path, Options::default())?;
        let log = opened.log;
        let events = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let started = Instant::now();
        let deadline = Duration::from_secs_f64(seconds);
        let first_error = Mutex::new(None);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (log, events, failed, first_error) = (&log, &events, &failed, &first_error);
                s.spawn(move || {
                    let mut i = 0u64;
                    while started.elapsed() < deadline && !failed.load(Ordering::Relaxed) {
                        let key = format!("bench:native:{t}:{}", i % 16);
                        let done = log
                            .begin_run(key, "s", None)
                            .and_then(|run| log.mark_completed(&run.key, run.generation));
                        if let Err(e) = done {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                            return;
                        }
                        events.fetch_add(2, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(e) = first_error.into_inner().unwrap() {
            return Err(e);
        }
        log.close()?;
        Ok((events.load(Ordering::Relaxed), elapsed))
    });
    result.map_err(|e| to_py_err(py, e))
}

#[pymodule]
fn _inflight(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLog>()?;
    m.add_class::<PyRun>()?;
    m.add_class::<PyInterrupted>()?;
    m.add_class::<PyReport>()?;
    m.add_class::<PyRecovered>()?;
    m.add_class::<PyFlagged>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(read_only, m)?)?;
    m.add_function(wrap_pyfunction!(fallback_without_log, m)?)?;
    m.add_function(wrap_pyfunction!(import_runs, m)?)?;
    m.add_function(wrap_pyfunction!(started_at_ms_from_secs, m)?)?;
    m.add_function(wrap_pyfunction!(_native_load, m)?)?;
    m.add("KEY_BYTES_MAX", inflight::limits::KEY_BYTES_MAX)?;
    m.add(
        "SESSION_ID_BYTES_MAX",
        inflight::limits::SESSION_ID_BYTES_MAX,
    )?;
    m.add("META_BYTES_MAX", inflight::limits::META_BYTES_MAX)?;
    m.add("WINDOW_MS_DEFAULT", WINDOW_MS_DEFAULT)?;
    Ok(())
}
