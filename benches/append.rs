//! Durable append throughput: `Log::mark_running` with one fdatasync per event, beside a plain
//! loop of write + fdatasync of the same bytes on the same file system (the disk's limit).
//!
//! Run with `cargo bench --bench append`; `INFLIGHT_BENCH_EVENTS` sets the events per case
//! (default 3000) and `INFLIGHT_BENCH_DIR` the directory (default: a temporary one under the
//! system temp dir). Prints a table and one JSON line.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use inflight::{Event, Log, Options, Policy, Run};

/// Rounds of each case.
const ROUNDS: usize = 3;

fn run(i: u64) -> Run {
    Run::new(
        format!("agent:main:telegram:dm:{}", 1000 + i % 500),
        format!("20261126_104512_{i:08x}"),
        i + 1,
        1_764_150_000_000 + i,
    )
    .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}")
}

fn main() {
    let events: u64 = std::env::var("INFLIGHT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let base = std::env::var_os("INFLIGHT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base).expect("temp dir");

    // The disk's limit: the same frame bytes, appended with write + fdatasync.
    let mut frame = Vec::new();
    let payload = inflight::event::encode_event(&Event::Started(run(0)));
    inflight::frame::encode_frame(7, 1, &payload, &mut frame);

    // Alternate the two cases so that neither always runs on a warmer (or more worn) disk, and
    // report the median round of each.
    let mut raw_rates = Vec::new();
    let mut log_rates = Vec::new();
    let mut replay_rates = Vec::new();
    for round in 0..ROUNDS {
        let raw_path = tmp.path().join(format!("raw-{round}"));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&raw_path)
            .expect("raw file");
        let t = Instant::now();
        for i in 0..events {
            file.write_all_at(&frame, i * frame.len() as u64).unwrap();
            file.sync_data().unwrap();
        }
        raw_rates.push(events as f64 / t.elapsed().as_secs_f64());

        let dir = tmp.path().join(format!("log-{round}"));
        let (log, _) = Log::open(&dir, Options::default()).unwrap();
        let t = Instant::now();
        for i in 0..events {
            log.mark_running(run(i)).unwrap();
        }
        log_rates.push(events as f64 / t.elapsed().as_secs_f64());
        drop(log);

        let t = Instant::now();
        let replayed = Log::read_only(&dir, Policy::Strict).unwrap();
        replay_rates.push(events as f64 / t.elapsed().as_secs_f64());
        assert_eq!(replayed.report.records, events);
    }
    let (raw_rate, log_rate, replay_rate) =
        (median(raw_rates), median(log_rates), median(replay_rates));
    let ratio = log_rate / raw_rate;

    println!(
        "durable append, one sync per event: {events} events of {} bytes, median of {ROUNDS} rounds, in {}",
        frame.len(),
        base.display()
    );
    let row = |name: &str, value: String| println!("  {name:<44} {value:>12}");
    row("case", "events/s".into());
    row(
        "write + fdatasync loop (the disk's limit)",
        format!("{raw_rate:.0}"),
    );
    row("Log::mark_running, single thread", format!("{log_rate:.0}"));
    row("ratio (mark_running / disk limit)", format!("{ratio:.2}"));
    row(
        "replay (read-only open), records/s",
        format!("{replay_rate:.0}"),
    );
    println!(
        "{{\"bench\":\"append\",\"events\":{events},\"frame_bytes\":{},\"raw_events_per_s\":{raw_rate:.0},\"mark_running_events_per_s\":{log_rate:.0},\"ratio\":{ratio:.3},\"replay_records_per_s\":{replay_rate:.0}}}",
        frame.len(),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
