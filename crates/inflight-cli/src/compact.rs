//! `inflight compact`: write a log's state as a snapshot and remove the segments it covers.

use std::time::Instant;

use inflight::Options;

use super::progress::Progress;
use super::{CliResult, CompactArgs, Failure};

pub(super) fn run(args: CompactArgs) -> CliResult {
    let retention = match args.retention.as_str() {
        "forever" => None,
        text => Some(humantime::parse_duration(text).map_err(|e| {
            Failure::new(
                2,
                format!("--retention {text:?}: {e}; give a duration such as 7d or 12h, or forever"),
            )
        })?),
    };
    let mut options = Options::default().retention(retention);
    if args.strict {
        options = options.strict();
    }
    let started = Instant::now();
    let progress = Progress::spinner(format!("compacting {}", args.dir.display()), args.json);
    let done = inflight::compaction::compact_dir(&args.dir, options)?;
    progress.finish();
    let elapsed = started.elapsed();
    if args.json {
        let value = serde_json::json!({
            "snapshot": done.snapshot,
            "last_seq": done.last_seq,
            "bytes": done.bytes,
            "running": done.running,
            "marks": done.marks,
            "forgotten": done.forgotten,
            "segments_removed": done.segments_removed,
            "snapshots_removed": done.snapshots_removed,
            "seconds": elapsed.as_secs_f64(),
        });
        println!("{value}");
    } else {
        println!(
            "compacted {} in {:.3} s: snapshot {} ({} bytes) covers records up to {}; {} running run(s), {} high-water mark(s) kept, {} forgotten; {} segment(s) and {} older snapshot(s) removed",
            args.dir.display(),
            elapsed.as_secs_f64(),
            done.snapshot.display(),
            done.bytes,
            done.last_seq,
            done.running,
            done.marks,
            done.forgotten,
            done.segments_removed,
            done.snapshots_removed,
        );
    }
    Ok(())
}
