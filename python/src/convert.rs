//! Python arguments checked and converted: whole numbers, times, keys, the gateway's sessions,
//! and the crate's values as plain Python data.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyMapping, PyString};

use inflight::Applied;
use inflight::fallback::Session;

use crate::errors::{invalid, to_py_err};

/// The default window of the time-window fallback: the old checkpoint's 120 seconds.
pub(crate) const WINDOW_MS_DEFAULT: u64 = 120_000;

/// A whole number in 0..2**64 (a generation, a time in milliseconds), or `InvalidInputError`;
/// a value of another type is a `TypeError`.
pub(crate) fn to_u64(
    value: &Bound<'_, PyAny>,
    field: &'static str,
    key: Option<&str>,
) -> PyResult<u64> {
    let py = value.py();
    if value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{field} must be an int, not a bool"
        )));
    }
    if value.is_instance_of::<PyInt>() {
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
pub(crate) fn to_ms(
    value: &Bound<'_, PyAny>,
    field: &'static str,
    key: Option<&str>,
) -> PyResult<u64> {
    if value.is_instance_of::<PyFloat>() {
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

/// A number of seconds, an int or a float (a bool, or anything else, is a `TypeError`); what
/// it may be is for the caller to say.
pub(crate) fn to_seconds(value: &Bound<'_, PyAny>, field: &'static str) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{field} must be a number of seconds, not {}",
            value.get_type().name()?
        )));
    }
    value.extract()
}

/// Milliseconds given as an optional int or float; the log's clock when `None`.
pub(crate) fn ms_or_now(
    value: Option<&Bound<'_, PyAny>>,
    field: &'static str,
    key: Option<&str>,
) -> PyResult<u64> {
    match value {
        Some(t) => to_ms(t, field, key),
        None => Ok(inflight::environment::now_ms()),
    }
}

/// A session key: a `str` (else `TypeError`) within the log's limits (else
/// `InvalidInputError`: empty, or over `KEY_BYTES_MAX` bytes). The checks of every call that
/// takes a key, before anything is written.
pub(crate) fn to_key(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = value.py();
    if !value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "the session key must be a str, not {}",
            value.get_type().name()?
        )));
    }
    let key: String = value.extract()?;
    inflight::event::validate_key(&key).map_err(|e| to_py_err(py, e))?;
    Ok(key)
}

/// Plain Python data (dicts, lists, numbers, strings) for a value the crate serializes.
pub(crate) fn json_to_py(py: Python<'_>, value: &impl serde::Serialize) -> PyResult<PyObject> {
    let text = serde_json::to_string(value)
        .map_err(|e| PyTypeError::new_err(format!("cannot convert to JSON: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// What an event did, as the word the Python API returns.
pub(crate) fn applied_str(applied: Applied) -> &'static str {
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
        Applied::Promoted => "promoted",
        Applied::Suspended => "suspended",
        Applied::Cleared { removed: false } => "cleared",
        Applied::Cleared { removed: true } => "cleared-and-dropped",
        Applied::Progressed => "progressed",
        Applied::Adopted { .. } => "adopted",
        Applied::Unmatched { .. } => "unmatched",
    }
}

/// The gateway's sessions: a mapping of key to last activity (a dict, or any
/// `collections.abc.Mapping`), or an iterable of `(key, last_active_ms)` pairs.
pub(crate) fn sessions_from(sessions: &Bound<'_, PyAny>) -> PyResult<Vec<Session>> {
    let items = match sessions.downcast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => match sessions.downcast::<PyMapping>() {
            Ok(mapping) => mapping.items()?.into_any(),
            Err(_) => sessions.clone(),
        },
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let (key, last_active): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err(
                "sessions must be a mapping of key to last_active_ms, or (key, last_active_ms) pairs",
            )
        })?;
        let key = to_key(&key)?;
        let ms = to_ms(&last_active, "last_active_ms", Some(&key))?;
        out.push(Session::new(key, ms));
    }
    Ok(out)
}

/// The fallback's window and current time, with their defaults.
pub(crate) fn window_and_now(
    window_ms: Option<&Bound<'_, PyAny>>,
    now_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<(u64, u64)> {
    let window = match window_ms {
        Some(w) => to_ms(w, "window_ms", None)?,
        None => WINDOW_MS_DEFAULT,
    };
    Ok((window, ms_or_now(now_ms, "now_ms", None)?))
}
