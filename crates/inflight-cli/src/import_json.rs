//! `inflight import-json`: a JSON checkpoint of the design this crate replaces, made a new log.

use std::path::Path;

use inflight::Options;
use inflight::import::{checkpoint_from_bytes, read_checkpoint};

use super::progress::Progress;
use super::{CliResult, Failure, ImportJsonArgs, STDIN_BYTES_MAX, exit_code, read_input};

pub(super) fn run(args: ImportJsonArgs) -> CliResult {
    let from_stdin = args.file.as_os_str() == "-";
    let file = if from_stdin {
        Path::new("standard input").display()
    } else {
        args.file.display()
    };
    let runs = if from_stdin {
        let (bytes, _) = read_input(&args.file, STDIN_BYTES_MAX)?;
        checkpoint_from_bytes(&bytes, Path::new("standard input"))
    } else {
        read_checkpoint(&args.file)
    }
    .map_err(|e| Failure::new(exit_code(&e), e.to_string()))?;
    // A run the library refuses (a limit, a key twice) is named with the file it came from.
    let progress = Progress::spinner(format!("importing into {}", args.dir.display()), false);
    let imported = inflight::import::import_runs(&args.dir, runs, Options::default());
    progress.finish();
    let report = imported.map_err(|e| {
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
