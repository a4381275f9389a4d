//! `inflight._inflight`: the compiled half of the Python package `inflight`.
//!
//! A thin shell over the Rust crate: each call checks and converts its arguments, releases the
//! GIL for everything that writes, syncs or replays (so Python threads share group commits),
//! and turns the crate's typed `Error` into the matching exception of `inflight.errors`. The
//! pure-Python half (the checkpoint adapter, the turn markers, the asyncio front, the
//! exceptions) is in `python/inflight/`.
//!
//! - `convert`: Python arguments checked and converted, and values as plain Python data.
//! - `errors`: the crate's errors as the package's exceptions.
//! - `values`: a run, a run in flight, the recovery report, a flagged key.
//! - `log`: the log handle, and the calls that open, read or import a log.
//! - `fleet`: a fleet's logs in PostgreSQL, and the takeover of a dead instance's runs.
//! - `aio`: the crate's waker-based async front, for an asyncio event loop.
//! - `native`: the benchmarks' workloads with no Python in the loop.
//! - `logs`: the crate's warnings and errors, queued for Python's `logging`.

use pyo3::prelude::*;

mod aio;
mod convert;
mod errors;
mod fleet;
mod log;
mod logs;
mod native;
mod values;

#[pymodule]
fn _inflight(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logs::install();
    m.add_function(wrap_pyfunction!(logs::_take_log_records, m)?)?;
    m.add_function(wrap_pyfunction!(logs::_dropped_log_records, m)?)?;
    m.add_class::<log::PyLog>()?;
    m.add_class::<log::PyRecovered>()?;
    m.add_class::<aio::PyAsyncFront>()?;
    m.add_class::<values::PyRun>()?;
    m.add_class::<values::PyInterrupted>()?;
    m.add_class::<values::PyReport>()?;
    m.add_class::<values::PyFlagged>()?;
    m.add_function(wrap_pyfunction!(log::open, m)?)?;
    m.add_function(wrap_pyfunction!(log::read_only, m)?)?;
    m.add_function(wrap_pyfunction!(log::fallback_without_log, m)?)?;
    m.add_function(wrap_pyfunction!(log::import_runs, m)?)?;
    m.add_function(wrap_pyfunction!(log::started_at_ms_from_secs, m)?)?;
    m.add_function(wrap_pyfunction!(log::check_key, m)?)?;
    m.add_function(wrap_pyfunction!(log::check_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(log::read_checkpoint, m)?)?;
    m.add_class::<fleet::PyTakenOver>()?;
    m.add_function(wrap_pyfunction!(fleet::create_schema, m)?)?;
    m.add_function(wrap_pyfunction!(fleet::open_database, m)?)?;
    m.add_function(wrap_pyfunction!(fleet::read_only_database, m)?)?;
    m.add_function(wrap_pyfunction!(fleet::take_over, m)?)?;
    m.add_function(wrap_pyfunction!(native::_native_load, m)?)?;
    m.add_function(wrap_pyfunction!(native::_native_async_load, m)?)?;
    m.add("KEY_BYTES_MAX", inflight::limits::KEY_BYTES_MAX)?;
    m.add(
        "SESSION_ID_BYTES_MAX",
        inflight::limits::SESSION_ID_BYTES_MAX,
    )?;
    m.add("META_BYTES_MAX", inflight::limits::META_BYTES_MAX)?;
    m.add("WINDOW_MS_DEFAULT", convert::WINDOW_MS_DEFAULT)?;
    Ok(())
}
