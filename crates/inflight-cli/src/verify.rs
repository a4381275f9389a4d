//! `inflight verify`: every segment and snapshot checked, each finding with its place. Its
//! verdicts have exit codes no other outcome shares: 0 clean, 13 a torn tail only, 14
//! corruption; a log that could not be read exits as every command does (1 an I/O error, 3 a
//! newer format, 5 no log there, 11 the database, 12 a live log that kept changing).

use std::ops::ControlFlow;

use inflight::inspect::verify::{Severity, Verdict, Verification};
use inflight::inspect::{Item, Reader};

use super::progress::Progress;
use super::{CliResult, Failure, VerifyArgs, exit_code};

/// `verify`'s verdicts: a torn tail only, corruption.
const TORN_TAIL: i32 = 13;
const CORRUPT: i32 = 14;

pub(super) fn run(args: VerifyArgs) -> CliResult {
    // Whatever kept the log from being read (no log, an I/O error, a newer format, a database
    // out of reach) exits with the code every command gives it.
    let source = args.source.reading()?;
    let dir = args.source.path();
    let progress = Progress::bytes(&dir, args.json);
    let mut reader = Reader::new(&*source);
    reader.on_progress(|read| progress.update(read));
    // On a live log, a reading that a compaction or a rollover changed starts over: only
    // damage in files that held still is a finding.
    let read = reader.read_settled(Verification::new, |verification, item: &Item<'_>| {
        verification.add(item);
        ControlFlow::Continue(())
    });
    progress.finish();
    let verification = read.map_err(|e| Failure::new(exit_code(&e), e.to_string()))?;
    let walked = reader.finish();
    let verdict = verification.verdict();
    let dir = dir.display();
    if args.json {
        let value = serde_json::json!({
            "verdict": verdict,
            "findings": verification.findings,
            "segments": verification.segments,
            "snapshots": verification.snapshots,
            "events": verification.events,
            "last_seq": verification.last_seq,
            "bytes_read": walked.bytes_read,
        });
        println!("{value}");
    } else {
        println!(
            "{dir}: {} segment(s) ({} bytes), {} snapshot(s), {} event(s), last record {}",
            verification.segments,
            walked.bytes_read,
            verification.snapshots,
            verification.events,
            verification.last_seq
        );
        for f in &verification.findings {
            let what = match f.severity {
                Severity::TornTail => "TORN TAIL ",
                Severity::Corruption => "CORRUPTION",
            };
            println!(
                "{what}  {} bytes {}..{}: {}",
                f.file, f.start_offset, f.end_offset, f.detail
            );
        }
    }
    let count = verification.findings.len();
    match verdict {
        Verdict::Clean => {
            if !args.json {
                println!("clean");
            }
            Ok(())
        }
        Verdict::TornTail => Err(Failure::new(
            TORN_TAIL,
            format!("{dir}: a torn tail only (an incomplete last record; the next open cuts it)"),
        )),
        Verdict::Corrupt => {
            let first = verification
                .findings
                .iter()
                .find(|f| f.severity == Severity::Corruption)
                .map_or(String::new(), |f| {
                    format!(", the first in {} at byte {}", f.file, f.start_offset)
                });
            Err(Failure::new(
                CORRUPT,
                format!("{dir}: corrupt: {count} finding(s){first}"),
            ))
        }
    }
}
