//! `inflight stats`: what a log holds, in figures. Read-only.

use std::ops::ControlFlow;

use std::path::Path;

use inflight::InFlightRun;
use inflight::inspect::stats::{Durations, Stats, longest_running};
use inflight::inspect::{Item, Reader, Walked};

use super::progress::Progress;
use super::{CliResult, Rfc3339, StatsArgs};

pub(super) fn run(args: StatsArgs) -> CliResult {
    let source = args.source.reading()?;
    let dir = args.source.path();
    let progress = Progress::bytes(&dir, args.json);
    let mut reader = Reader::new(&*source);
    reader.on_progress(|read| progress.update(read));
    let read = reader.read_settled(Stats::new, |stats, item: &Item<'_>| {
        stats.add(item);
        ControlFlow::Continue(())
    });
    progress.finish();
    let mut stats = read?;
    let walked = reader.finish();
    let now_ms = args.now.unwrap_or_else(inflight::environment::now_ms);
    let figures = Figures {
        durations: stats.durations(),
        open: longest_running(&walked.set, args.top),
        busiest: stats.busiest_keys(args.top),
        stats,
        walked,
        now_ms,
    };
    if args.json {
        println!("{}", figures.json());
    } else {
        figures.print(&dir);
    }
    Ok(())
}

/// Everything `stats` prints.
struct Figures {
    stats: Stats,
    walked: Walked,
    durations: Option<Durations>,
    open: Vec<InFlightRun>,
    busiest: Vec<(String, u64)>,
    now_ms: u64,
}

impl Figures {
    /// One JSON object.
    fn json(&self) -> serde_json::Value {
        let (stats, walked, now_ms) = (&self.stats, &self.walked, self.now_ms);
        let open: Vec<serde_json::Value> = self
            .open
            .iter()
            .map(|r| {
                serde_json::json!({
                    "key": r.run.key,
                    "session_id": r.run.session_id,
                    "generation": r.run.generation,
                    "started_at_ms": r.run.started_at_ms,
                    "started_at": Rfc3339(r.run.started_at_ms),
                    "age_ms": now_ms.saturating_sub(r.run.started_at_ms),
                    "reason": r.reason,
                    "recoveries": r.recoveries,
                })
            })
            .collect();
        let busiest: Vec<serde_json::Value> = self
            .busiest
            .iter()
            .map(|(key, events)| serde_json::json!({"key": key, "events": events}))
            .collect();
        serde_json::json!({
            "events": stats.events,
            "fold": stats.fold,
            "records": stats.records,
            "batches": stats.batches,
            "segments": stats.segments,
            "segment_bytes": stats.segment_bytes,
            "snapshots": stats.snapshots,
            "snapshot_bytes": stats.snapshot_bytes,
            "compacted_records": stats.compacted_records,
            "damaged_regions": stats.damaged_regions,
            "damaged_bytes": stats.damaged_bytes,
            "torn_tail_bytes": stats.torn_tail_bytes,
            "keys": stats.keys(),
            "first_ms": stats.first_ms,
            "last_ms": stats.last_ms,
            "last_seq": walked.last_seq,
            "running": walked.set.len(),
            "durations": self.durations,
            "longest_running": open,
            "busiest_keys": busiest,
        })
    }

    /// As text: what the log holds, then its runs.
    fn print(&self, dir: &Path) {
        let (stats, walked) = (&self.stats, &self.walked);
        let e = &stats.events;
        let f = &stats.fold;
        println!("log {}", dir.display());
        println!(
            "  files:      {} segment(s), {} bytes; {} snapshot(s), {} bytes",
            stats.segments, stats.segment_bytes, stats.snapshots, stats.snapshot_bytes
        );
        println!(
            "  records:    {} ({} batch(es)), last sequence number {}; {} more only in snapshots",
            stats.records, stats.batches, walked.last_seq, stats.compacted_records
        );
        let span =
            |ms: Option<u64>| ms.map_or("-".to_string(), |ms| format!("{} ({ms})", Rfc3339(ms)));
        println!(
            "  time:       {} to {}",
            span(stats.first_ms),
            span(stats.last_ms)
        );
        println!(
            "  events:     {} started, {} completed, {} shutdown, {} recovered, {} retention",
            e.started, e.completed, e.shutdown, e.recovered, e.retention
        );
        println!(
            "  decisions:  {} finished by token, {} resume-pending, {} suspended, {} cleared, {} progress, {} adopted",
            e.finished, e.promoted, e.suspended, e.cleared, e.progress, e.adopted
        );
        println!(
            "  fold:       {} stale start(s), {} stale completion(s), {} unknown completion(s), {} superseded",
            f.stale_starts, f.stale_completions, f.unknown_completions, f.superseded
        );
        println!(
            "  damage:     {} region(s), {} bytes; torn tail {} bytes",
            stats.damaged_regions, stats.damaged_bytes, stats.torn_tail_bytes
        );
        match &self.durations {
            Some(d) => println!(
                "  durations:  {} completed run(s): p50 {} ms, p99 {} ms, max {} ms",
                d.count, d.p50_ms, d.p99_ms, d.max_ms
            ),
            None => println!("  durations:  no run completed"),
        }
        self.print_runs();
    }

    /// The runs in flight longest, and the busiest keys.
    fn print_runs(&self) {
        let now_ms = self.now_ms;
        println!(
            "  in flight:  {} run(s); the longest running (age at {}):",
            self.walked.set.len(),
            Rfc3339(now_ms)
        );
        for r in &self.open {
            println!(
                "    {:<40} generation {:<6} since {} ({} ms), {}, {} recoveries",
                r.run.key,
                r.run.generation,
                Rfc3339(r.run.started_at_ms),
                now_ms.saturating_sub(r.run.started_at_ms),
                r.reason,
                r.recoveries
            );
        }
        println!("  busiest keys ({} key(s) in all):", self.stats.keys());
        for (key, events) in &self.busiest {
            println!("    {key:<40} {events} event(s)");
        }
    }
}
