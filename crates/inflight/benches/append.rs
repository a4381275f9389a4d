//! Durable append throughput: `Log::mark_running` with one fdatasync per event, beside a plain
//! loop of write + fdatasync of the same bytes on the same file system (the disk's limit).
//!
//! Two more plain loops measure the layout the log does not use: each commit padded to a
//! 512-byte or a 4096-byte boundary, so that no acknowledged byte shares a sector with a later
//! write (what a disk without "powersafe overwrite" would need). They print the cost of that
//! layout in appends per second and in bytes written per event.
//!
//! Run with `cargo bench --bench append`; `INFLIGHT_BENCH_EVENTS` sets the events per case
//! (default 3000) and `INFLIGHT_BENCH_DIR` the directory (default: a temporary one under the
//! system temp dir). Prints a table and one JSON line.

use std::fs::OpenOptions;
use std::time::Instant;

use inflight::Opened;
use inflight::{Event, Log, Options, Policy, Run};
use inflight::{Generation, UnixMs};

/// Rounds of each case.
const ROUNDS: usize = 3;

fn run(i: u64) -> Run {
    Run::new(
        format!("agent:main:telegram:dm:{}", 1000 + i % 500),
        format!("20261126_104512_{i:08x}"),
        Generation(i + 1),
        UnixMs(1_764_150_000_000 + i),
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

    // The same frame, padded with zeros to the next multiple of 512 and of 4096 bytes.
    let padded = |sector: usize| {
        let mut bytes = frame.clone();
        bytes.resize(frame.len().next_multiple_of(sector), 0);
        bytes
    };
    let (padded_512, padded_4096) = (padded(512), padded(4096));

    // Alternate the cases so that none always runs on a warmer (or more worn) disk, and report
    // the median round of each.
    let mut raw_rates = Vec::new();
    let mut padded_512_rates = Vec::new();
    let mut padded_4096_rates = Vec::new();
    let mut log_rates = Vec::new();
    let mut replay_rates = Vec::new();
    let mut log_bytes = 0;
    for round in 0..ROUNDS {
        raw_rates.push(write_sync_loop(
            tmp.path(),
            &format!("raw-{round}"),
            &frame,
            events,
        ));
        padded_512_rates.push(write_sync_loop(
            tmp.path(),
            &format!("pad512-{round}"),
            &padded_512,
            events,
        ));
        padded_4096_rates.push(write_sync_loop(
            tmp.path(),
            &format!("pad4096-{round}"),
            &padded_4096,
            events,
        ));

        let dir = tmp.path().join(format!("log-{round}"));
        let Opened { log, .. } = Log::open(&dir, Options::default()).unwrap();
        let t = Instant::now();
        for i in 0..events {
            log.mark_running(run(i)).unwrap();
        }
        log_rates.push(events as f64 / t.elapsed().as_secs_f64());
        drop(log);
        log_bytes = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>();

        let t = Instant::now();
        let replayed = inflight::inspect::read_only(&dir, Policy::Strict).unwrap();
        replay_rates.push(events as f64 / t.elapsed().as_secs_f64());
        assert_eq!(replayed.report.records, events);
    }
    let (raw_rate, log_rate, replay_rate) =
        (median(raw_rates), median(log_rates), median(replay_rates));
    let (padded_512_rate, padded_4096_rate) = (median(padded_512_rates), median(padded_4096_rates));
    let ratio = log_rate / raw_rate;
    let log_bytes_per_event = log_bytes as f64 / events as f64;

    println!(
        "durable append, one sync per event: {events} events of {} bytes, median of {ROUNDS} rounds, in {}",
        frame.len(),
        base.display()
    );
    let row =
        |name: &str, rate: String, bytes: String| println!("  {name:<48} {rate:>12} {bytes:>14}");
    row("case", "events/s".into(), "bytes/event".into());
    row(
        "write + fdatasync loop (the disk's limit)",
        format!("{raw_rate:.0}"),
        frame.len().to_string(),
    );
    row(
        "Log::mark_running, single thread",
        format!("{log_rate:.0}"),
        format!("{log_bytes_per_event:.0}"),
    );
    row(
        "ratio (mark_running / disk limit)",
        format!("{ratio:.2}"),
        String::new(),
    );
    row(
        "write + fdatasync, padded to 512 B sectors",
        format!("{padded_512_rate:.0}"),
        padded_512.len().to_string(),
    );
    row(
        "write + fdatasync, padded to 4096 B sectors",
        format!("{padded_4096_rate:.0}"),
        padded_4096.len().to_string(),
    );
    row(
        "replay (read-only open), records/s",
        format!("{replay_rate:.0}"),
        String::new(),
    );
    println!(
        "{{\"bench\":\"append\",\"events\":{events},\"frame_bytes\":{},\"raw_events_per_s\":{raw_rate:.0},\"mark_running_events_per_s\":{log_rate:.0},\"ratio\":{ratio:.3},\"log_bytes_per_event\":{log_bytes_per_event:.1},\"padded_512_events_per_s\":{padded_512_rate:.0},\"padded_4096_events_per_s\":{padded_4096_rate:.0},\"replay_records_per_s\":{replay_rate:.0}}}",
        frame.len(),
    );
}

/// Appends `bytes` `events` times to a new file `name` in `dir`, each write followed by an
/// fdatasync; returns the appends per second.
fn write_sync_loop(dir: &std::path::Path, name: &str, bytes: &[u8], events: u64) -> f64 {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(dir.join(name))
        .expect("bench file");
    let t = Instant::now();
    for i in 0..events {
        inflight::storage::write_all_at(&file, bytes, i * bytes.len() as u64).unwrap();
        file.sync_data().unwrap();
    }
    events as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
