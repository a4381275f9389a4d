//! Fleets: an instance's log in a PostgreSQL database, and the takeover of a dead instance's
//! runs, fenced (the crate `inflight-postgres`).

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::errors::to_py_err;
use crate::log::{OpenArgs, PyLog, PyRecovered, policy};

/// Creates the fleet's tables in `database` (once; safe to repeat).
#[pyfunction]
pub(crate) fn create_schema(py: Python<'_>, database: String) -> PyResult<()> {
    py.allow_threads(move || inflight_postgres::Fleet::new(database).create_schema())
        .map_err(|e| to_py_err(py, e))
}

/// Opens (creating if missing) the log of `instance` in `database`, replays it and takes the
/// instance's lock.
#[pyfunction]
#[pyo3(signature = (
    database,
    instance,
    *,
    strict = false,
    segment_bytes_max = inflight::limits::SEGMENT_BYTES_MAX_DEFAULT,
    compact_after_bytes = Some(inflight::limits::COMPACT_AFTER_BYTES_DEFAULT),
    retention_ms = Some(inflight::limits::RETENTION_MS_DEFAULT),
    crash_loop_threshold = inflight::limits::CRASH_LOOP_THRESHOLD_DEFAULT,
    stop_loop_threshold = inflight::limits::STOP_LOOP_THRESHOLD_DEFAULT,
    record_recovery = true,
))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `open`, and where
pub(crate) fn open_database(
    py: Python<'_>,
    database: String,
    instance: String,
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
    let dir: PathBuf = inflight_postgres::instance_path(&instance);
    let opened = py
        .allow_threads(move || inflight_postgres::Fleet::new(&database).open(&instance, options))
        .map_err(|e| to_py_err(py, e))?;
    PyLog::new(py, opened, dir)
}

/// Replays the log of `instance` in `database` without its lock, changing nothing.
#[pyfunction]
#[pyo3(signature = (database, instance, *, strict = false))]
pub(crate) fn read_only_database(
    py: Python<'_>,
    database: String,
    instance: String,
    strict: bool,
) -> PyResult<PyRecovered> {
    let recovered = py
        .allow_threads(move || {
            inflight_postgres::Fleet::new(database).read_only(&instance, policy(strict))
        })
        .map_err(|e| to_py_err(py, e))?;
    PyRecovered::new(py, recovered.report, recovered.set)
}

/// What a takeover found and did: a `Recovered` (the dead instance's report, and the fallback
/// over its log) with the fence's figures.
#[pyclass(frozen, extends = PyRecovered, name = "TakenOver", module = "inflight")]
pub(crate) struct PyTakenOver {
    /// The instance taken over.
    #[pyo3(get)]
    instance: String,
    /// The instance that took it over.
    #[pyo3(get)]
    by: String,
    /// The fencing epoch the instance is at now.
    #[pyo3(get)]
    epoch: u64,
    /// Whether the old owner still held its log open (a zombie): it is fenced all the same.
    #[pyo3(get)]
    was_open: bool,
    /// Set when this taker had taken it over already (a repeat).
    #[pyo3(get)]
    taken_before: Option<String>,
}

#[pymethods]
impl PyTakenOver {
    fn __repr__(slf: PyRef<'_, Self>) -> String {
        format!(
            "TakenOver(instance={:?}, by={:?}, epoch={}, running={})",
            slf.instance,
            slf.by,
            slf.epoch,
            slf.as_super().running_count()
        )
    }
}

/// Takes over the log of `dead_instance` in `database` for the instance `by`: fences it (from
/// the moment this commits, every call of the old owner raises `FencedError`) and returns its
/// runs in flight. `by` must be an instance of the database (it opened its own log), not
/// retired: else `UnknownTakerError` (unless `create_taker`), or `FencedError`, and nothing
/// is fenced.
#[pyfunction]
#[pyo3(signature = (database, dead_instance, by, *, create_taker = false))]
pub(crate) fn take_over(
    py: Python<'_>,
    database: String,
    dead_instance: String,
    by: String,
    create_taker: bool,
) -> PyResult<Py<PyTakenOver>> {
    let taker = if create_taker {
        inflight_postgres::Taker::CreateIfMissing
    } else {
        inflight_postgres::Taker::Existing
    };
    let taken = py
        .allow_threads(move || {
            inflight_postgres::Fleet::new(database).take_over_as(&dead_instance, &by, taker)
        })
        .map_err(|e| to_py_err(py, e))?;
    let recovered = PyRecovered::new(py, taken.report, taken.set)?;
    let fence = PyTakenOver {
        instance: taken.instance,
        by: taken.by,
        epoch: taken.epoch,
        was_open: taken.was_open,
        taken_before: taken.taken_before,
    };
    Py::new(py, PyClassInitializer::from(recovered).add_subclass(fence))
}
