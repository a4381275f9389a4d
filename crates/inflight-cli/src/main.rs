//! The `inflight` command line: the demo, replay and time travel, the offline tools (`dump`,
//! `verify`, `stats`), `compact`, `load`, `bench` and `import-json`. See `inflight --help` and
//! docs/CLI.md.
//!
//! This file: argument parsing, logging setup, and the mapping of errors to one line and an exit
//! code; each command is a module of its own.

mod bench;
mod compact;
mod demo;
mod dump;
mod fleet;
mod import_json;
mod load;
mod progress;
mod replay;
mod source;
mod stats;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  an I/O error (the message names the file and operation)
  2  bad command-line usage
  3  corruption under --strict, or an unsupported format version
  4  the log directory is locked by another process (the message names its pid)
  5  no log there: no such directory, not a directory, or no segment or snapshot files in it
  6  invalid input (a key, session id or meta over its limit, an empty key)
  7  demo: an acknowledged run was not recovered, or a run was invented
  8  import-json: the target directory already holds a log (or other files); it is untouched
  9  replay --at/--at-time: the log no longer holds the records around that point (compacted
     away, damaged, or before the log began recording); it never guesses
 10  fenced: the instance's log was taken over by another instance (takeover), so this one
     may not write to it (start under a new instance id); or a takeover found it taken over
     by another instance already
 11  the database: it cannot be reached (or did not answer within connect_timeout or
     statement_timeout), it has no inflight schema (run `inflight fleet init`), it holds no
     log of that instance, or the connection was lost mid-run
 12  replay, dump, verify, stats: a live log kept changing under every reading (a compaction
     or a segment rollover overtook 16 in a row); nothing is wrong with it: run it again
 13  verify: a torn tail only (an incomplete last record; the next open cuts it)
 14  verify: corruption (each finding printed with its file and byte offsets)
verify exits 0 for a clean log; a log it could not read exits as above.

Set RUST_LOG=info (or debug) to see what the log does on open, recovery and append.";

/// Exact crash recovery for a gateway's in-flight agent runs.
///
/// Every run's start and completion is a CRC-framed, fdatasync'ed append to a log directory;
/// after a crash, replay tells exactly which runs were in flight.
#[derive(Debug, Parser)]
#[command(name = "inflight", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated gateway in a child process, kill it with SIGKILL mid-flight, recover its
    /// log, and check that every run it acknowledged was recovered.
    ///
    /// Example: inflight demo --sessions 500 --threads 8
    Demo(DemoArgs),
    /// Print the running set and recovery report of a log directory, or with --at/--at-time the
    /// running set as it was at that point. Read-only: takes no lock and changes no byte, so it
    /// is safe on a live gateway's log.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Print every event of a log with its sequence number, place (segment:offset, #index in a
    /// batch), time (RFC 3339, UTC, and milliseconds) and fields, in log order, marking stale
    /// events, and showing segments, snapshots, damaged regions and the end of the log (a torn
    /// tail) where they are. Read-only; exact on a live log (a reading a compaction or a
    /// rollover changed under starts over, and only the one that held still is printed).
    /// With --follow it keeps printing what a running gateway appends, like tail -f, across
    /// segment rollovers and compactions, until interrupted (Ctrl-C).
    #[command(after_help = DUMP_EXAMPLES)]
    Dump(DumpArgs),
    /// Check every segment and snapshot of a log and report each finding with its file and
    /// byte offsets. Read-only; exact on a live log (a reading a compaction or a rollover
    /// changed under starts over: only damage in files that held still is a finding).
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Print a log's statistics: events by kind, stale and unknown records, bytes, segments and
    /// snapshots, how long completed runs ran (p50, p99, max), the runs in flight longest and
    /// the busiest keys. Read-only; safe on a live log.
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Drive a synthetic gateway workload against a log directory and print throughput and
    /// latency; useful on its own to size a disk.
    ///
    /// Each key strictly alternates start(g) and complete(g), g counting up from 1, or from above
    /// the key's high-water mark when the directory already holds a log.
    ///
    /// Example: inflight load /tmp/inflight-load --sessions 1000 --seconds 10 --threads 4
    Load(LoadArgs),
    /// Measure what this disk gives a gateway, in the spirit of pg_test_fsync: two plain
    /// one-writer loops of one event's frame with fdatasync, appending to a file that grows
    /// (each sync also commits the new size) and overwriting space filled and synced first
    /// (the limit: the log writes into space it reserved ahead, as this loop does); then the
    /// log's events/s and latency at 1, 4, 16 and 64 threads (concurrent callers share syncs:
    /// group commit). Every event is synced; "÷ limit" divides by the overwrite loop. Works in a
    /// temporary directory inside DIR (default: the current directory), removed at the end;
    /// 3 s per measurement, 1 s with --quick.
    ///
    /// Example: inflight bench --dir /var/lib/gateway --quick
    Bench(BenchArgs),
    /// Compact a log directory now: write its state as a snapshot (a JSON file a person and jq
    /// can read) and remove the segments it covers. Takes the log's lock, so it refuses (exit 4)
    /// while a gateway holds the log; a running gateway compacts on its own (see
    /// Options::compact_after_bytes). Idle keys' high-water marks older than --retention are
    /// forgotten.
    ///
    /// Example: inflight compact /var/lib/gateway/inflight && jq -c '.body.keys[] | select(length == 14)' /var/lib/gateway/inflight/snapshot-*.json
    Compact(CompactArgs),
    /// Migrate the JSON checkpoint of the design this replaces into a new log: FILE holds one
    /// object {"KEY": {"session_id": "S", "started_at": SECONDS}, ...} (seconds since the Unix
    /// epoch, a float). Every entry becomes a running run with generation 1 and its start time
    /// in milliseconds, rounded down; other fields are ignored.
    ///
    /// All or nothing: the whole file is checked first (a malformed file, a limit broken, a key
    /// twice: exit 6, naming the key), the log is built beside DIR and renamed into place once
    /// every run is synced. DIR must not exist or be empty; a directory holding a log is refused
    /// (exit 8) and left untouched. One import of DIR at a time: another one under way is exit 4.
    ///
    /// Example: inflight import-json /var/lib/gateway/agent_checkpoints.json /var/lib/gateway/inflight
    #[command(name = "import-json")]
    ImportJson(ImportJsonArgs),
    /// Take over a dead instance's log in a fleet's PostgreSQL database: fence it (from the
    /// moment this commits, nothing the old instance writes is accepted: its calls fail with
    /// exit 10's error) and print the runs it had in flight, with reasons and crash-loop
    /// counts, for the instance named by --by to resume. Repeating a takeover reports the same
    /// frozen log again. See docs/FLEETS.md.
    ///
    /// Example: inflight takeover gateway-1 --by gateway-2 --database postgres://gw@127.0.0.1/gw
    #[command(after_help = TAKEOVER_EXAMPLES)]
    Takeover(fleet::TakeoverArgs),
    /// A fleet's database: create its tables (init), list its instances (list).
    ///
    /// Example: inflight fleet init --database postgres://gw@127.0.0.1/gw
    Fleet(fleet::FleetArgs),
    /// Print a completion script for a shell, generated from these very commands.
    ///
    /// Example: inflight completions bash > /etc/bash_completion.d/inflight;
    /// inflight completions zsh > "${fpath[1]}/_inflight"; inflight completions fish >
    /// ~/.config/fish/completions/inflight.fish
    Completions(CompletionsArgs),
    /// Print the manual page (roff) of inflight, generated from these very commands.
    ///
    /// Example: inflight man > /usr/local/share/man/man1/inflight.1; man inflight
    Man,
}

const TAKEOVER_EXAMPLES: &str = "\
Examples:
  inflight fleet init --database postgres://gw@127.0.0.1/gw      # once per database
  inflight load --database postgres://gw@127.0.0.1/gw --instance gateway-1 --seconds 5
  inflight takeover gateway-1 --by gateway-2 --database postgres://gw@127.0.0.1/gw
  inflight takeover gateway-1 --by gateway-2 --json | jq '.report.running[].key'
  inflight takeover gateway-1 --by gateway-2 --sessions sessions.jsonl --window 120
  inflight replay --database postgres://gw@127.0.0.1/gw --instance gateway-1   # read-only

--database may also come from INFLIGHT_DATABASE.";

const REPLAY_EXAMPLES: &str = "\
Examples:
  inflight replay /var/lib/gw/inflight
  inflight replay /var/lib/gw/inflight --json | jq '.running[].key'
  inflight replay /var/lib/gw/inflight --at-time 2026-11-26T10:42:00Z   # in flight at 10:42 UTC
  inflight replay /var/lib/gw/inflight --at 1500 --json
  inflight replay /var/lib/gw/inflight --sessions sessions.jsonl --window 120

TIME is RFC 3339 in UTC (2026-11-26T10:42:00Z, 2026-11-26 10:42:00.250) or milliseconds since
the Unix epoch. --at SEQ is the state right after record SEQ; --at-time TIME the state after
every record up to the first one stamped later than TIME. Where the log no longer holds the
records around that point (a compaction folded them into a snapshot, damage, or before the log
began recording) it says so and exits with 9: it never guesses.";

const DUMP_EXAMPLES: &str = "\
Examples:
  inflight dump /var/lib/gw/inflight | less -S
  inflight dump /var/lib/gw/inflight --key agent:main:telegram:dm:4242   # one session's history
  inflight dump /var/lib/gw/inflight --since 2026-11-26T10:40:00Z --to 5000
  inflight dump /var/lib/gw/inflight --json | jq -c 'select(.item == \"event\" and .stale)'
  inflight dump /var/lib/gw/inflight --follow --json     # like tail -f, one JSON object a line

Filters (--from, --to, --key, --since) select events; segments, snapshots, damage and the end
are shown where they lie. --json prints one object a line, each with \"item\": segment,
snapshot, event, damage or end. A progress line goes to stderr when it is a terminal.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  inflight verify /var/lib/gw/inflight
  inflight verify /var/lib/gw/inflight --json | jq '.findings[]'

Exit codes of verify (its verdicts have codes no other outcome shares):
  0  clean: every segment and snapshot reads
 13  a torn tail only: an incomplete last record (what a crash leaves, cut by the next open; on
     a live log a record still being written is read again, not reported)
 14  corruption: damage a crash cannot explain, records missing, a damaged snapshot
A log that could not be read exits as every command does: 1 an I/O error, 3 a format version
this build does not read, 5 no log there, 11 the database, 12 a live log that kept changing
under every reading (run it again).";

const STATS_EXAMPLES: &str = "\
Examples:
  inflight stats /var/lib/gw/inflight
  inflight stats /var/lib/gw/inflight --json | jq '.durations'
  inflight stats /var/lib/gw/inflight --top 20";

/// Arguments of `inflight dump`.
#[derive(Debug, Args)]
struct DumpArgs {
    #[command(flatten)]
    source: source::Source,
    /// One JSON object a line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only events from this sequence number on.
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Only events up to this sequence number (the dump stops after it).
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
    /// Only events of this key.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Only events stamped at or after TIME (RFC 3339 in UTC, or milliseconds).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<u64>,
    /// Keep printing new events as a gateway appends them, until interrupted.
    #[arg(long)]
    follow: bool,
    /// With --follow: how often to look for new records, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50, requires = "follow")]
    poll_ms: u64,
}

/// Arguments of `inflight verify`.
#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    source: source::Source,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `inflight stats`.
#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    source: source::Source,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// How many open runs and keys to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// The current time in milliseconds since the Unix epoch, for the open runs' ages (default:
    /// now).
    #[arg(long, value_name = "MS")]
    now: Option<u64>,
}

/// Arguments of `inflight bench`.
#[derive(Debug, Args)]
struct BenchArgs {
    /// A directory on the file system to measure (default: the current directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// One second per measurement instead of three.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `inflight compact`.
#[derive(Debug, Args)]
struct CompactArgs {
    /// The log directory.
    dir: PathBuf,
    /// Fail (exit 3) on corruption instead of skipping the damaged region (which the snapshot
    /// then keeps as a gap).
    #[arg(long)]
    strict: bool,
    /// Forget the high-water marks of keys with no running run idle for longer than this
    /// (e.g. 7d, 12h); "forever" keeps every mark.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    retention: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `inflight import-json`.
#[derive(Debug, Args)]
struct ImportJsonArgs {
    /// The JSON checkpoint (agent_checkpoints.json), or - for standard input.
    file: PathBuf,
    /// The new log directory (must not exist, or be empty).
    dir: PathBuf,
}

/// Arguments of `inflight demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Log directory to use (kept afterwards). Default: a fresh temporary directory, removed at
    /// the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Sessions (keys) the simulated gateway serves.
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    /// Threads appending concurrently in the child.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Milliseconds after the child's first acknowledgement at which it is killed. Default: a
    /// random instant between 500 and 2000.
    #[arg(long)]
    kill_after_ms: Option<u64>,
}

/// Arguments of `inflight replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    source: source::Source,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Fail (exit 3) on corruption instead of skipping the damaged region and reporting a gap.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    fallback: FallbackArgs,
    /// Consecutive crashes that interrupted a run while it ran at which it counts as a crash
    /// loop (flagged crash-loop: suspend it rather than resume it); 0 turns the detection off.
    #[arg(long, value_name = "N", default_value_t = 3)]
    crash_loop_threshold: u32,
    /// Consecutive graceful stops (shutdowns whose drain timed out) that interrupted a run while
    /// it ran at which it counts as a reboot loop (flagged reboot-loop); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 3)]
    stop_loop_threshold: u32,
    /// The running set as it was right after record SEQ (exit 9 if the log no longer holds the
    /// records around it).
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["at_time", "sessions", "strict"])]
    at: Option<u64>,
    /// The running set as it was at TIME (RFC 3339 in UTC, or milliseconds since the Unix
    /// epoch): after every record up to the first one stamped later (exit 9 if the log no
    /// longer holds the records around it).
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with_all = ["sessions", "strict"])]
    at_time: Option<u64>,
}

/// The time-window fallback's arguments (`replay`, `takeover`).
#[derive(Debug, Args)]
struct FallbackArgs {
    /// Apply the time-window fallback to the gateway's sessions: FILE (- for standard input)
    /// holds one JSON object a line, {"key":K,"last_active_ms":T}. Prints each key to treat as
    /// interrupted and why:
    /// log (the log says so), gap (active around a damaged region the log has nothing after),
    /// no-log (there is no log), before-coverage (active before the log began recording). A
    /// missing log is then not an error: every session active within the window is flagged
    /// no-log.
    #[arg(long, value_name = "FILE", requires = "window")]
    sessions: Option<PathBuf>,
    /// How far back, in seconds, a session counts as recently active (with --sessions).
    #[arg(long, value_name = "SECS", requires = "sessions")]
    window: Option<u64>,
    /// The current time in milliseconds since the Unix epoch, for the window (default: now).
    #[arg(long, value_name = "MS", requires = "sessions")]
    now: Option<u64>,
}

/// Arguments of `inflight load`.
#[derive(Debug, Args, Clone)]
struct LoadArgs {
    #[command(flatten)]
    source: source::Source,
    /// Number of sessions (keys).
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Stop after this many events in total. Default: 10000 when --seconds is not given.
    #[arg(long, conflicts_with = "seconds")]
    events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Threads appending concurrently; each owns an equal share of the keys.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Keys are PREFIX:0, PREFIX:1, ...
    #[arg(long, default_value = "load")]
    key_prefix: String,
    /// Print each event on stdout twice, as one JSON line each, flushed: first a submission
    /// line, {"submit":EVENT}, before the call that records it; then the acknowledgement line,
    /// EVENT alone, after the call returned Ok. EVENT is
    /// {"event":"started","key":K,"session_id":S,"generation":G,"started_at_ms":T,"meta":M} or
    /// {"event":"completed","key":K,"generation":G,"at_ms":T}, exactly the event given to the
    /// log. Lines from several threads never interleave; a key's lines come in its order. An
    /// acknowledged event is durable; a submitted one may or may not be in the log after a
    /// crash; nothing else may be. The summary then goes to stderr.
    #[arg(long)]
    acks: bool,
    /// Start a new segment file past this many bytes (12288 to 1073741824).
    #[arg(long, default_value_t = inflight::limits::SEGMENT_BYTES_MAX_DEFAULT)]
    segment_bytes: u64,
    /// Compact in the background once this many bytes of segments were written since the last
    /// snapshot (or twice the snapshot's size, if larger); "off" never compacts. Small values
    /// make compaction frequent, for tests and benchmarks.
    #[arg(long, value_name = "BYTES|off", default_value_t = inflight::limits::COMPACT_AFTER_BYTES_DEFAULT.to_string())]
    compact_after_bytes: String,
    /// Serve the log's metrics in Prometheus's text format at http://ADDR/metrics while the
    /// load runs (a loopback address, e.g. 127.0.0.1:9187); docs/METRICS.md lists the series.
    /// Built in by default (the `prometheus` feature).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// With --metrics: go on serving the final figures this many seconds after the load ends,
    /// so that a scrape sees the whole run.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.0,
        requires = "metrics"
    )]
    metrics_hold: f64,
}

/// The exit code of [`inflight::Error::KeptChanging`], `verify`'s too: no reading of a live log
/// held still, so there is nothing to report; a retry is the answer, not an alarm.
const KEPT_CHANGING: i32 = 12;

/// The most a command reads from standard input (`-` for a file): 1 GiB.
const STDIN_BYTES_MAX: u64 = 1 << 30;

/// All of `path`'s bytes, or of standard input where `path` is `-`, at most `max` bytes; with
/// the name to give the input in messages. More than `max` is invalid input (exit 6).
fn read_input(path: &std::path::Path, max: u64) -> Result<(Vec<u8>, String), Failure> {
    use std::io::Read;
    let from_stdin = path.as_os_str() == "-";
    let name = if from_stdin {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let mut bytes = Vec::new();
    let read = if from_stdin {
        std::io::stdin().take(max + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::new(1, format!("read {name}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(Failure::new(
            6,
            format!("{name} holds more than {max} bytes, the most a command reads"),
        ));
    }
    Ok((bytes, name))
}

/// A failure the CLI reports: one line on stderr and an exit code.
struct Failure {
    code: i32,
    message: String,
}

impl From<inflight::Error> for Failure {
    fn from(e: inflight::Error) -> Failure {
        Failure {
            code: exit_code(&e),
            message: e.to_string(),
        }
    }
}

/// The exit code for a library error. `0` is success, `2` a usage error (bad flags) and `7` the
/// demo's failed check; the library's errors map to:
///
/// | code | meaning |
/// |---|---|
/// | 1 | an I/O error, or a poisoned or closed handle |
/// | 3 | corruption under `--strict`, or an unsupported format version |
/// | 4 | the directory is locked by another process |
/// | 5 | the log directory does not exist, is not a directory, or holds no log |
/// | 6 | invalid input, a stale generation, or a key's generations used up |
/// | 8 | an import's target directory is not empty |
/// | 10 | the instance's log was taken over (fenced, or by another taker already) |
/// | 11 | the database: unreachable or silent, no schema, no such instance, the connection lost mid-run |
/// | 12 | a live log kept changing under a read-only tool's readings: read again |
///
/// `Error` is non-exhaustive: a variant added later exits with 1 until it is given a code here.
fn exit_code(e: &inflight::Error) -> i32 {
    use inflight::Error;
    if e.is_database() {
        return 11;
    }
    match e {
        Error::Io { .. } | Error::Poisoned { .. } | Error::Closed => 1,
        Error::Corrupt { .. } | Error::UnsupportedVersion { .. } => 3,
        Error::Locked { .. } => 4,
        Error::NotFound { .. } | Error::NotADirectory { .. } => 5,
        Error::InvalidInput { .. }
        | Error::CheckpointFile { .. }
        | Error::StaleGeneration { .. }
        | Error::GenerationsExhausted { .. } => 6,
        Error::AlreadyExists { .. } => 8,
        Error::Fenced { .. } | Error::AlreadyTakenOver { .. } => 10,
        Error::Database { .. }
        | Error::DatabaseCall { .. }
        | Error::NoSchema { .. }
        | Error::NoInstance { .. }
        | Error::UnknownTaker { .. } => 11,
        Error::KeptChanging { .. } => KEPT_CHANGING,
        _ => 1,
    }
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

type CliResult = Result<(), Failure>;

/// Parses arguments, runs the command and returns the process exit code.
fn run() -> i32 {
    // Die quietly when the reader of our output goes away (`inflight replay DIR | head`), as
    // command-line tools do, instead of Rust's default of failing the next write with a panic.
    // SAFETY: setting a signal's disposition to its default at startup, before any thread.
    // (Windows has no SIGPIPE: a write to a closed pipe fails, and the command says so.)
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Load(args) => load::run(args),
        Command::ImportJson(args) => import_json::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Bench(args) => bench::run_bench(args),
        Command::Takeover(args) => fleet::takeover(args),
        Command::Fleet(args) => fleet::fleet(args),
        Command::Completions(args) => completions(args),
        Command::Man => man(),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("inflight: {}", failure.message);
            failure.code
        }
    }
}

/// A time given on the command line: RFC 3339 in UTC (`2026-11-26T10:42:00Z`, or with a space
/// and without the `Z`, any fraction of a second), or milliseconds since the Unix epoch.
fn parse_time(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text} is too large for milliseconds since the Unix epoch"));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!(
            "{text:?} is not a time ({e}): give RFC 3339 in UTC, e.g. 2026-11-26T10:42:00Z, or \
             milliseconds since the Unix epoch"
        )
    })?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text} is before the Unix epoch"))?;
    u64::try_from(since.as_millis()).map_err(|_| format!("{text} is too far in the future"))
}

/// Milliseconds since the epoch as an RFC 3339 timestamp.
fn format_ms(ms: u64) -> String {
    Rfc3339(ms).to_string()
}

/// Milliseconds since the epoch, displayed as an RFC 3339 timestamp in UTC with milliseconds.
/// A time after the year 9999 (which RFC 3339 cannot write; a gateway's clock or a damaged
/// record may hold one) is displayed as `after-9999`.
#[derive(Clone, Copy, Debug)]
struct Rfc3339(u64);

/// The first millisecond after the year 9999.
pub(crate) const RFC3339_END_MS: u64 = 253_402_300_800_000;

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 >= RFC3339_END_MS {
            return f.write_str("after-9999");
        }
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(t))
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `inflight completions`'s arguments.
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `inflight completions SHELL`: the script on standard output.
fn completions(args: CompletionsArgs) -> CliResult {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut command, "inflight", &mut std::io::stdout());
    Ok(())
}

/// `inflight man`: the manual page, roff, on standard output.
fn man() -> CliResult {
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(command)
        .render(&mut std::io::stdout())
        .map_err(|e| Failure::new(1, format!("writing the manual page: {e}")))
}

fn main() {
    std::process::exit(run());
}
