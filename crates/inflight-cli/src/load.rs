//! `inflight load`: a synthetic gateway that starts and completes runs as fast as the log lets it.

use inflight::percentile::{MAX, P50, P90, P99, P999, percentile_or_zero};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inflight::Opened;
use inflight::limits::{KEY_BYTES_MAX, SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN};
use inflight::{Event, Log, Options, Run};
use inflight::{Generation, UnixMs};

use super::progress::Progress;
use super::{CliResult, Failure, LoadArgs};

/// Events when neither --events nor --seconds is given.
const EVENTS_DEFAULT: u64 = 10_000;
/// Most latency samples kept in all (4 bytes each: 64 MiB), shared equally among the threads.
const SAMPLES_MAX: usize = 16 << 20;
/// Most threads.
const THREADS_MAX: usize = 1024;
/// How often the progress bar is brought up to date while the workers run.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// One key's place in its strict start/complete alternation.
struct KeyState {
    key: String,
    generation: u64,
    running: bool,
}

pub(super) fn run(args: LoadArgs) -> CliResult {
    let compact_after_bytes = check(&args)?;
    if let Some(addr) = args.metrics {
        serve_metrics(addr)?;
    }
    let options = Options::default()
        .segment_bytes_max(args.segment_bytes)
        .compact_after_bytes(compact_after_bytes);
    let Opened { log, report } = args.source.open(options)?;
    let log = Arc::new(log);
    let shares = share_keys(&args, &log);
    let started = Instant::now();
    let (events, mut samples) = drive(&args, &log, shares, started)?;
    let elapsed = started.elapsed();
    log.close()?;
    // One still running in the background is counted: the figures served with --metrics
    // count it when it ends.
    log.wait_for_compaction();
    let compactions = log.compactions();

    let summary = summarize(
        events,
        &mut samples,
        elapsed,
        args.threads,
        report.running.len(),
        compactions,
    );
    if args.acks {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if args.metrics.is_some() && args.metrics_hold > 0.0 {
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs_f64(args.metrics_hold));
    }
    Ok(())
}

/// Serves the log's metrics at `addr` (loopback only), in Prometheus's text format, from a
/// thread of the exporter's own.
#[cfg(feature = "prometheus")]
fn serve_metrics(addr: std::net::SocketAddr) -> CliResult {
    use inflight::metrics::{BATCH_EVENTS, COMPACTION_SECONDS, SYNC_SECONDS};
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    if !addr.ip().is_loopback() {
        return Err(Failure::new(
            2,
            format!("--metrics {addr}: serve metrics on a loopback address (127.0.0.1 or ::1)"),
        ));
    }
    const SECONDS: [f64; 12] = [
        50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0, 10.0,
    ];
    const EVENTS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(SYNC_SECONDS.into()), &SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMPACTION_SECONDS.into()), &SECONDS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_EVENTS.into()), &EVENTS))
        .map_err(|e| Failure::new(1, format!("--metrics: {e}")))?;
    builder
        .install()
        .map_err(|e| Failure::new(1, format!("--metrics {addr}: cannot serve metrics: {e}")))?;
    inflight::metrics::describe();
    eprintln!("serving metrics at http://{addr}/metrics");
    Ok(())
}

/// Without the `prometheus` feature (a build with `--no-default-features`) there is nothing to
/// serve with.
#[cfg(not(feature = "prometheus"))]
fn serve_metrics(addr: std::net::SocketAddr) -> CliResult {
    Err(Failure::new(
        2,
        format!(
            "--metrics {addr}: this inflight was built without the `prometheus` feature; build it with its default features (`cargo build --release -p inflight-cli`)"
        ),
    ))
}

/// Checks the arguments before anything is created; returns `--compact-after-bytes`.
fn check(args: &LoadArgs) -> Result<Option<u64>, Failure> {
    if args.threads == 0 || args.threads > THREADS_MAX || args.sessions < args.threads {
        return Err(Failure::new(
            2,
            format!(
                "--threads must be between 1 and {THREADS_MAX} and at most --sessions (got {} threads, {} sessions)",
                args.threads, args.sessions
            ),
        ));
    }
    if let Some(s) = args.seconds
        && !(s.is_finite() && s > 0.0)
    {
        return Err(Failure::new(2, "--seconds must be a positive number"));
    }
    let segments = SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT;
    if !segments.contains(&args.segment_bytes) {
        return Err(Failure::new(
            2,
            format!(
                "--segment-bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_LIMIT} (got {})",
                args.segment_bytes
            ),
        ));
    }
    // The longest key is PREFIX:N for the last session.
    let longest_key = args.key_prefix.len() + 1 + (args.sessions - 1).to_string().len();
    if args.key_prefix.is_empty() || longest_key > KEY_BYTES_MAX {
        return Err(Failure::new(
            2,
            format!(
                "--key-prefix must be non-empty and keep keys within {KEY_BYTES_MAX} bytes (PREFIX:N would be {longest_key})"
            ),
        ));
    }
    match args.compact_after_bytes.as_str() {
        "off" => Ok(None),
        text => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Failure::new(
                2,
                format!(
                    "--compact-after-bytes must be a positive number of bytes or off (got {text:?})"
                ),
            )),
        },
    }
}

/// The sessions' keys dealt to the threads, each going on above its key's high-water mark.
fn share_keys(args: &LoadArgs, log: &Log) -> Vec<Vec<KeyState>> {
    let mut shares: Vec<Vec<KeyState>> = (0..args.threads).map(|_| Vec::new()).collect();
    for i in 0..args.sessions {
        let key = format!("{}:{i}", args.key_prefix);
        let generation = log.high_water(&key).map_or(0, |m| m.generation);
        shares[i % args.threads].push(KeyState {
            key,
            generation,
            running: false,
        });
    }
    shares
}

/// Runs one worker thread per share until the budget of events or the deadline; returns the
/// events recorded and every latency sample kept. The first failure stops every thread.
fn drive(
    args: &LoadArgs,
    log: &Arc<Log>,
    shares: Vec<Vec<KeyState>>,
    started: Instant,
) -> Result<(u64, Vec<u32>), Failure> {
    let threads = args.threads;
    let budget = args
        .seconds
        .is_none()
        .then(|| args.events.unwrap_or(EVENTS_DEFAULT));
    let deadline = args.seconds.map(Duration::from_secs_f64);
    let claimed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Each worker wakes this thread as it ends, so the wait below ends with the last of them
    // (the figures' clock stops when this function returns), not at the bar's next redraw.
    let waiting = std::thread::current();
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(t, keys)| {
            let log = Arc::clone(log);
            let claimed = Arc::clone(&claimed);
            let stop = Arc::clone(&stop);
            let acks = args.acks;
            let waiting = waiting.clone();
            std::thread::spawn(move || {
                let mut worker = Worker {
                    log: &log,
                    keys,
                    rng: fastrand::Rng::with_seed(t as u64 + 1),
                    acks,
                    samples_us: Vec::new(),
                    samples_max: SAMPLES_MAX / threads,
                    events: 0,
                    thread: t,
                };
                let result = worker.run(|| {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    match (budget, deadline) {
                        (Some(n), _) => claimed.fetch_add(1, Ordering::Relaxed) < n,
                        (None, Some(d)) => started.elapsed() < d,
                        (None, None) => false,
                    }
                });
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                waiting.unpark();
                result.map(|()| (worker.events, worker.samples_us))
            })
        })
        .collect();
    // On a terminal, a bar of the events claimed or of the seconds spent, until the workers end.
    let quiet = args.acks;
    let progress = match (budget, deadline) {
        (Some(n), _) => Progress::counted(n, "events", quiet),
        (None, Some(d)) => Progress::counted(d.as_secs_f64().ceil() as u64, "s", quiet),
        (None, None) => Progress::counted(0, "events", true),
    };
    while !handles.iter().all(|h| h.is_finished()) {
        progress.update(match budget {
            Some(n) => claimed.load(Ordering::Relaxed).min(n),
            None => started.elapsed().as_secs(),
        });
        std::thread::park_timeout(PROGRESS_EVERY);
    }
    progress.finish();
    let mut samples = Vec::new();
    let mut events = 0;
    let mut first_error = None;
    for h in handles {
        match h.join().expect("load worker panicked") {
            Ok((n, s)) => {
                events += n;
                samples.extend(s);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok((events, samples)),
    }
}

struct Worker<'a> {
    log: &'a Log,
    keys: Vec<KeyState>,
    rng: fastrand::Rng,
    acks: bool,
    samples_us: Vec<u32>,
    samples_max: usize,
    events: u64,
    thread: usize,
}

impl Worker<'_> {
    fn run(&mut self, mut more: impl FnMut() -> bool) -> Result<(), Failure> {
        while more() {
            let i = self.rng.usize(..self.keys.len());
            let k = &mut self.keys[i];
            let event = if k.running {
                Event::Completed {
                    key: k.key.clone(),
                    generation: k.generation,
                    at_ms: inflight::environment::now_ms(),
                }
            } else {
                // Never wrapping: a key at the largest generation has none left.
                let generation = k
                    .generation
                    .checked_add(1)
                    .ok_or_else(|| inflight::Error::GenerationsExhausted { key: k.key.clone() })?;
                let session_id = format!("{}-s{generation}", k.key);
                Event::Started(
                    Run::new(
                        &k.key,
                        session_id,
                        Generation(generation),
                        UnixMs(inflight::environment::now_ms()),
                    )
                    .with_meta(format!("{{\"thread\":{}}}", self.thread)),
                )
            };
            let line = self.acks.then(|| event_json(&event));
            if let Some(line) = &line {
                // Printed before the call: the parent learns every event that may reach the log,
                // even when it is killed during the call.
                print_line(&serde_json::json!({ "submit": line }))?;
            }
            let t0 = Instant::now();
            self.log.record(event.clone())?;
            let elapsed = t0.elapsed();
            k.generation = event_generation(&event);
            k.running = matches!(event, Event::Started(_));
            self.events += 1;
            if self.samples_us.len() < self.samples_max {
                self.samples_us
                    .push(elapsed.as_micros().min(u32::MAX as u128) as u32);
            }
            if let Some(line) = &line {
                // Printed only after the call returned Ok: a line on the pipe is a promise that
                // the event is durable.
                print_line(line)?;
            }
        }
        Ok(())
    }
}

fn event_generation(event: &Event) -> u64 {
    match event {
        Event::Started(run) => run.generation,
        Event::Completed { generation, .. } => *generation,
        _ => 0,
    }
}

/// The JSON object that names `event` exactly, as the `--acks` lines show it.
fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Started(run) => serde_json::json!({
            "event": "started",
            "key": run.key,
            "session_id": run.session_id,
            "generation": run.generation,
            "started_at_ms": run.started_at_ms,
            "meta": run.meta,
        }),
        Event::Completed {
            key,
            generation,
            at_ms,
        } => serde_json::json!({
            "event": "completed",
            "key": key,
            "generation": generation,
            "at_ms": at_ms,
        }),
        Event::Shutdown { at_ms } => serde_json::json!({"event": "shutdown", "at_ms": at_ms}),
        Event::Recovered { at_ms } => serde_json::json!({"event": "recovered", "at_ms": at_ms}),
        Event::Retention {
            forget_before_ms,
            at_ms,
        } => serde_json::json!({
            "event": "retention",
            "forget_before_ms": forget_before_ms,
            "at_ms": at_ms,
        }),
        // The load records starts and completions only.
        other => serde_json::json!({ "event": format!("{other:?}") }),
    }
}

/// Writes `value` and a newline to stdout in one write under the stdout lock, then flushes, so
/// that lines from several threads never interleave and a reader sees each line whole as soon
/// as it is printed (a pipe write of one short line is atomic, even when the process is killed).
fn print_line(value: &serde_json::Value) -> Result<(), Failure> {
    let mut line = value.to_string();
    line.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(1, format!("writing acknowledgements: {e}")))
}

fn summarize(
    n: u64,
    samples: &mut [u32],
    elapsed: Duration,
    threads: usize,
    recovered: usize,
    compactions: u64,
) -> String {
    samples.sort_unstable();
    let pct = |p| percentile_or_zero(samples, p);
    let secs = elapsed.as_secs_f64();
    format!(
        "events      {n}\nthreads     {threads}\nseconds     {secs:.2}\nevents/s    {:.0}\nlatency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\nrecovered   {recovered} interrupted run(s) at open\ncompactions {compactions}",
        n as f64 / secs.max(1e-9),
        pct(P50),
        pct(P90),
        pct(P99),
        pct(P999),
        pct(MAX),
    )
}
