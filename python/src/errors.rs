//! The crate's `Error` as the exception of `inflight.errors` that names its variant: the
//! message is the Rust error's own, and the variant's fields are attributes.

use pyo3::IntoPyObjectExt;
use pyo3::import_exception;
use pyo3::prelude::*;

use inflight::Error;

import_exception!(inflight.errors, InflightError);
import_exception!(inflight.errors, StorageError);
import_exception!(inflight.errors, LockedError);
import_exception!(inflight.errors, CorruptError);
import_exception!(inflight.errors, UnsupportedVersionError);
import_exception!(inflight.errors, PoisonedError);
import_exception!(inflight.errors, ClosedError);
import_exception!(inflight.errors, InvalidInputError);
import_exception!(inflight.errors, CheckpointFileError);
import_exception!(inflight.errors, StaleGenerationError);
import_exception!(inflight.errors, NotFoundError);
import_exception!(inflight.errors, FencedError);
import_exception!(inflight.errors, AlreadyTakenOverError);
import_exception!(inflight.errors, DatabaseError);
import_exception!(inflight.errors, NoSchemaError);
import_exception!(inflight.errors, NoInstanceError);
import_exception!(inflight.errors, UnknownTakerError);
import_exception!(inflight.errors, KeptChangingError);

/// An attribute of an exception: its name and value.
type Field = (&'static str, PyObject);

/// The exception for `e`, its attributes set.
pub(crate) fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    build(py, &e).unwrap_or_else(|failed| failed)
}

/// An `InvalidInputError` for a value the binding checks itself (before anything is written).
pub(crate) fn invalid(
    py: Python<'_>,
    field: &'static str,
    reason: String,
    key: Option<&str>,
) -> PyErr {
    to_py_err(
        py,
        Error::InvalidInput {
            field,
            reason,
            key: key.map(str::to_string),
        },
    )
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let message = e.to_string();
    let (err, fields) = exception_and_fields(py, e, &message)?;
    let value = err.value(py);
    for (name, field) in fields {
        value.setattr(name, field)?;
    }
    Ok(err)
}

fn path_text(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// The exception class of each variant, and the attributes it carries.
fn exception_and_fields(py: Python<'_>, e: &Error, message: &str) -> PyResult<(PyErr, Vec<Field>)> {
    let m = message.to_string();
    Ok(match e {
        Error::Io {
            op, path, source, ..
        } => (
            StorageError::new_err(m),
            vec![
                ("op", op.into_py_any(py)?),
                ("path", path_text(path).into_py_any(py)?),
                ("kind", format!("{:?}", source.kind()).into_py_any(py)?),
                ("errno", source.raw_os_error().into_py_any(py)?),
            ],
        ),
        // A database statement of a storage call: the same exception as a disk's failure,
        // with no errno.
        Error::DatabaseCall { op, path, source } => (
            StorageError::new_err(m),
            vec![
                ("op", op.into_py_any(py)?),
                ("path", path_text(path).into_py_any(py)?),
                ("kind", format!("{:?}", source.kind()).into_py_any(py)?),
                ("errno", None::<i32>.into_py_any(py)?),
            ],
        ),
        Error::Locked { dir, holder_pid } => (
            LockedError::new_err(m),
            vec![
                ("path", path_text(dir).into_py_any(py)?),
                ("holder_pid", holder_pid.into_py_any(py)?),
            ],
        ),
        Error::Corrupt {
            segment,
            offset,
            detail,
        } => (
            CorruptError::new_err(m),
            vec![
                ("path", path_text(segment).into_py_any(py)?),
                ("offset", offset.into_py_any(py)?),
                ("detail", detail.into_py_any(py)?),
            ],
        ),
        Error::UnsupportedVersion {
            path,
            found,
            supported,
        } => (
            UnsupportedVersionError::new_err(m),
            vec![
                ("path", path_text(path).into_py_any(py)?),
                ("found", found.into_py_any(py)?),
                ("supported", supported.into_py_any(py)?),
            ],
        ),
        Error::Poisoned {
            kind,
            cause,
            database,
        } => (
            PoisonedError::new_err(m),
            vec![
                ("kind", format!("{kind:?}").into_py_any(py)?),
                ("cause", cause.into_py_any(py)?),
                ("database", database.into_py_any(py)?),
            ],
        ),
        Error::Closed => (ClosedError::new_err(m), vec![]),
        Error::CheckpointFile {
            path,
            line,
            column,
            detail,
        } => (
            CheckpointFileError::new_err(m),
            vec![
                ("path", path_text(path).into_py_any(py)?),
                ("line", line.into_py_any(py)?),
                ("column", column.into_py_any(py)?),
                ("detail", detail.into_py_any(py)?),
            ],
        ),
        Error::InvalidInput { field, reason, key } => (
            InvalidInputError::new_err(m),
            input_fields(py, field, reason, key.as_deref())?,
        ),
        Error::StaleGeneration {
            key,
            generation,
            high_water,
        } => {
            let mut fields = input_fields(py, "generation", message, Some(key))?;
            fields.push(("generation", generation.into_py_any(py)?));
            fields.push(("high_water", high_water.into_py_any(py)?));
            (StaleGenerationError::new_err(m), fields)
        }
        Error::GenerationsExhausted { key } => (
            InvalidInputError::new_err(m),
            input_fields(py, "generation", message, Some(key))?,
        ),
        Error::NotADirectory { path } | Error::AlreadyExists { dir: path, .. } => {
            let mut fields = input_fields(py, "path", message, None)?;
            fields.push(("path", path_text(path).into_py_any(py)?));
            (InvalidInputError::new_err(m), fields)
        }
        Error::NotFound { dir } => (
            NotFoundError::new_err(m),
            vec![("path", path_text(dir).into_py_any(py)?)],
        ),
        _ => match fleet_exception(py, e, &m)? {
            Some(found) => found,
            None => (InflightError::new_err(m), vec![]),
        },
    })
}

/// The exceptions of a fleet's errors (the PostgreSQL backend), and their attributes; `None`
/// for any other error.
fn fleet_exception(py: Python<'_>, e: &Error, m: &str) -> PyResult<Option<(PyErr, Vec<Field>)>> {
    Ok(Some(match e {
        Error::Fenced {
            instance,
            by,
            epoch,
        }
        | Error::AlreadyTakenOver {
            instance,
            by,
            epoch,
        } => (
            if matches!(e, Error::Fenced { .. }) {
                FencedError::new_err(m.to_string())
            } else {
                AlreadyTakenOverError::new_err(m.to_string())
            },
            vec![
                ("instance", instance.into_py_any(py)?),
                ("by", by.into_py_any(py)?),
                ("epoch", epoch.into_py_any(py)?),
            ],
        ),
        Error::Database { database, cause } => (
            DatabaseError::new_err(m.to_string()),
            vec![
                ("database", database.into_py_any(py)?),
                ("cause", cause.into_py_any(py)?),
            ],
        ),
        Error::NoSchema { database, detail } => (
            NoSchemaError::new_err(m.to_string()),
            vec![
                ("database", database.into_py_any(py)?),
                ("cause", detail.into_py_any(py)?),
                ("detail", detail.into_py_any(py)?),
            ],
        ),
        Error::NoInstance { database, instance } => (
            NoInstanceError::new_err(m.to_string()),
            vec![
                ("database", database.into_py_any(py)?),
                ("cause", m.into_py_any(py)?),
                ("instance", instance.into_py_any(py)?),
            ],
        ),
        Error::UnknownTaker { database, by } => (
            UnknownTakerError::new_err(m.to_string()),
            vec![
                ("database", database.into_py_any(py)?),
                ("cause", m.into_py_any(py)?),
                ("by", by.into_py_any(py)?),
            ],
        ),
        Error::KeptChanging { dir, attempts } => (
            KeptChangingError::new_err(m.to_string()),
            vec![
                ("path", dir.display().to_string().into_py_any(py)?),
                ("attempts", attempts.into_py_any(py)?),
            ],
        ),
        _ => return Ok(None),
    }))
}

/// The attributes of an `InvalidInputError`: `field`, `reason`, `key`.
fn input_fields(
    py: Python<'_>,
    field: &str,
    reason: &str,
    key: Option<&str>,
) -> PyResult<Vec<Field>> {
    Ok(vec![
        ("field", field.into_py_any(py)?),
        ("reason", reason.into_py_any(py)?),
        ("key", key.into_py_any(py)?),
    ])
}
