//! `inflight replay`: the recovered running set and the recovery report, read-only.

use inflight::{Log, Policy};

use super::{CliResult, Failure, ReplayArgs, format_ms};

pub(super) fn run(args: ReplayArgs) -> CliResult {
    let policy = if args.strict {
        Policy::Strict
    } else {
        Policy::SkipDamaged
    };
    let report = Log::read_only(&args.dir, policy)?.report;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::new(1, format!("cannot encode the report as JSON: {e}")))?;
        println!("{json}");
        return Ok(());
    }
    let dir = args.dir.display();
    println!(
        "log {dir}: {} segment(s), {} record(s), last sequence {}",
        report.segments, report.records, report.last_seq
    );
    match report.coverage_since_ms {
        Some(ms) => println!("recording since {}", format_ms(ms)),
        None => println!("recording since: unknown (no readable segment header)"),
    }
    println!(
        "last exit: {}",
        if report.clean_shutdown {
            "clean shutdown"
        } else if report.records == 0 {
            "none recorded"
        } else {
            "crash (the log does not end at a clean shutdown record)"
        }
    );
    if let Some(torn) = &report.torn_tail {
        println!(
            "torn tail: {} byte(s) at {}:{} (an append in progress, or what a crash left; the next read-write open cuts it)",
            torn.bytes, torn.segment, torn.offset
        );
    }
    for c in &report.corruption {
        let range = |ms: Option<u64>| ms.map_or_else(|| "?".to_string(), format_ms);
        println!(
            "CORRUPTION: {} bytes {}..{} skipped ({}); gap after record {} ({}) until {} ({})",
            c.segment,
            c.start_offset,
            c.end_offset,
            c.detail,
            c.after_seq,
            range(c.after_ms),
            c.before_seq
                .map_or_else(|| "the end".to_string(), |s| format!("record {s}")),
            range(c.before_ms),
        );
    }
    println!("stale records ignored: {}", report.stale_ignored);
    println!("interrupted runs: {}", report.running.len());
    if !report.running.is_empty() {
        println!(
            "  {:<40} {:>10}  {:<28} {:<24} {:<8} META",
            "KEY", "GENERATION", "SESSION", "STARTED", "REASON"
        );
        for r in &report.running {
            println!(
                "  {:<40} {:>10}  {:<28} {:<24} {:<8} {}",
                r.run.key,
                r.run.generation,
                r.run.session_id,
                format_ms(r.run.started_at_ms),
                r.reason,
                r.run.meta.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
