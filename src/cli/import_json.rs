//! `inflight import-json`: a JSON checkpoint of the design this crate replaces, made a new log.

use inflight::import::read_checkpoint;
use inflight::{Log, Options};

use super::{CliResult, Failure, ImportJsonArgs, exit_code};

pub(super) fn run(args: ImportJsonArgs) -> CliResult {
    let file = args.file.display();
    let runs =
        read_checkpoint(&args.file).map_err(|e| Failure::new(exit_code(&e), e.to_string()))?;
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
