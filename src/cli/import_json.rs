//! `inflight import-json`: a JSON checkpoint of the design this crate replaces, made a new log.

use std::fmt;
use std::path::Path;

use inflight::import::started_at_from_secs;
use inflight::{Generation, Log, Options, Run};
use serde::Deserializer;
use serde::de::{MapAccess, Visitor};

use super::{CliResult, Failure, ImportJsonArgs, exit_code};

/// The shape the messages about a malformed file show.
const SHAPE: &str = r#"{"KEY": {"session_id": "S", "started_at": SECONDS}, ...}"#;

pub(super) fn run(args: ImportJsonArgs) -> CliResult {
    let file = args.file.display();
    let runs = read_checkpoint(&args.file)?;
    // A run the library refuses (a limit, a key twice) is named with the file it came from.
    let report = Log::import_runs(&args.dir, runs, Options::default()).map_err(|e| {
        let code = exit_code(&e);
        let message = match e {
            inflight::Error::InvalidInput { .. } => format!("{file}: {e}; nothing was imported"),
            _ => format!("{e}; nothing was imported"),
        };
        Failure::new(code, message)
    })?;
    println!(
        "imported {} running run(s) from {file} into {} (generation 1 each); open it with the gateway, or look with `inflight replay {}`",
        report.imported,
        report.dir.display(),
        report.dir.display()
    );
    Ok(())
}

/// Reads the checkpoint: one JSON object `{key: {"session_id": str, "started_at": float}}`.
/// Every run gets generation 1 (the checkpoint has none) and its start time in milliseconds,
/// rounded down. Fields other than those two are ignored. A malformed file is invalid input
/// (exit 6) naming the file and the key or field.
fn read_checkpoint(path: &Path) -> Result<Vec<Run>, Failure> {
    let file = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::new(1, format!("read {file}: {e}")))?;
    let invalid = |what: String| Failure::new(6, format!("{file}: {what}; nothing was imported"));
    let mut de = serde_json::Deserializer::from_str(&text);
    let entries = de
        .deserialize_any(EntriesVisitor)
        .and_then(|entries| de.end().map(|()| entries))
        .map_err(|e| invalid(format!("{e}; the file must be one JSON object {SHAPE}")))?;
    let mut runs = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let field = |name: &str| -> Result<&serde_json::Value, Failure> {
            let object = value.as_object().ok_or_else(|| {
                invalid(format!(
                    "key {key:?}: expected an object {{\"session_id\": \"S\", \"started_at\": SECONDS}}, found {value}"
                ))
            })?;
            object
                .get(name)
                .ok_or_else(|| invalid(format!("key {key:?}: missing field {name:?}")))
        };
        let session_id = field("session_id")?;
        let session_id = session_id.as_str().ok_or_else(|| {
            invalid(format!(
                "key {key:?}: session_id must be a string, found {session_id}"
            ))
        })?;
        let started_at = field("started_at")?;
        let secs = started_at.as_f64().ok_or_else(|| {
            invalid(format!(
                "key {key:?}: started_at must be a number of seconds since the Unix epoch, found {started_at}"
            ))
        })?;
        let started_at = started_at_from_secs(&key, secs).map_err(|e| {
            Failure::new(exit_code(&e), format!("{file}: {e}; nothing was imported"))
        })?;
        runs.push(Run::new(key.clone(), session_id, Generation(1), started_at));
    }
    Ok(runs)
}

/// The checkpoint's entries in file order, a key given twice kept twice (a JSON map would keep
/// only the last), so that the import can refuse it.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, serde_json::Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping each key to its run")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(entries)
    }
}
