//! Argument parsing, logging setup, and the mapping of errors to one line and an exit code.

mod bench;
mod compact;
mod demo;
mod import_json;
mod load;
mod replay;

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
    /// Print the running set and recovery report of a log directory. Read-only: takes no lock
    /// and changes no byte, so it is safe on a live gateway's log.
    ///
    /// Example: inflight replay /var/lib/gateway/inflight --json | jq '.running[].key'
    Replay(ReplayArgs),
    /// Drive a synthetic gateway workload against a log directory and print throughput and
    /// latency; useful on its own to size a disk.
    ///
    /// Each key strictly alternates start(g) and complete(g), g counting up from 1, or from above
    /// the key's high-water mark when the directory already holds a log.
    ///
    /// Example: inflight load /tmp/inflight-load --sessions 1000 --seconds 10 --threads 4
    Load(LoadArgs),
    /// Measure what this disk gives a gateway, in the spirit of pg_test_fsync: the plain
    /// write + fdatasync rate (the one-writer limit), then the log's events/s and latency at 1,
    /// 4, 16 and 64 threads (concurrent callers share syncs: group commit). Every event is
    /// synced. Works in a temporary directory inside DIR (default: the current directory),
    /// removed at the end; 3 s per measurement, 1 s with --quick.
    ///
    /// Example: inflight bench --dir /var/lib/gateway --quick
    Bench(BenchArgs),
    /// Compact a log directory now: write its state as a snapshot (a JSON file a person and jq
    /// can read) and remove the segments it covers. Takes the log's lock, so it refuses (exit 4)
    /// while a gateway holds the log; a running gateway compacts on its own (see
    /// Options::compact_after_bytes). Idle keys' high-water marks older than --retention are
    /// forgotten.
    ///
    /// Example: inflight compact /var/lib/gateway/inflight && jq '.body.running' /var/lib/gateway/inflight/snapshot-*.json
    Compact(CompactArgs),
    /// Migrate the JSON checkpoint of the design this replaces into a new log: FILE holds one
    /// object {"KEY": {"session_id": "S", "started_at": SECONDS}, ...} (seconds since the Unix
    /// epoch, a float). Every entry becomes a running run with generation 1 and its start time
    /// in milliseconds, rounded down; other fields are ignored.
    ///
    /// All or nothing: the whole file is checked first (a malformed file, a limit broken, a key
    /// twice: exit 6, naming the key), the log is built beside DIR and renamed into place once
    /// every run is synced. DIR must not exist or be empty; a directory holding a log is refused
    /// (exit 8) and left untouched.
    ///
    /// Example: inflight import-json /var/lib/gateway/agent_checkpoints.json /var/lib/gateway/inflight
    #[command(name = "import-json")]
    ImportJson(ImportJsonArgs),
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
    /// The JSON checkpoint (agent_checkpoints.json).
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
    /// The log directory.
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Fail (exit 3) on corruption instead of skipping the damaged region and reporting a gap.
    #[arg(long)]
    strict: bool,
    /// Apply the time-window fallback to the gateway's sessions: FILE holds one JSON object a
    /// line, {"key":K,"last_active_ms":T}. Prints each key to treat as interrupted and why:
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
    /// Consecutive recoveries that found a run interrupted at which it counts as a crash loop
    /// (flagged crash-loop: suspend it rather than resume it); 0 turns the detection off.
    #[arg(long, value_name = "N", default_value_t = 3)]
    crash_loop_threshold: u32,
}

/// Arguments of `inflight load`.
#[derive(Debug, Args, Clone)]
struct LoadArgs {
    /// The log directory (created if missing).
    dir: PathBuf,
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
/// | 6 | invalid input |
/// | 8 | an import's target directory is not empty |
///
/// `Error` is non-exhaustive: a variant added later exits with 1 until it is given a code here.
fn exit_code(e: &inflight::Error) -> i32 {
    use inflight::Error;
    match e {
        Error::Io { .. } | Error::Poisoned { .. } | Error::Closed => 1,
        Error::Corrupt { .. } | Error::UnsupportedVersion { .. } => 3,
        Error::Locked { .. } => 4,
        Error::NotFound { .. } | Error::NotADirectory { .. } => 5,
        Error::InvalidInput { .. } => 6,
        Error::AlreadyExists { .. } => 8,
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
pub fn main() -> i32 {
    // Die quietly when the reader of our output goes away (`inflight replay DIR | head`), as
    // command-line tools do, instead of Rust's default of failing the next write with a panic.
    // SAFETY: setting a signal's disposition to its default at startup, before any thread.
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
        Command::Load(args) => load::run(args),
        Command::ImportJson(args) => import_json::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Bench(args) => bench::run_bench(args),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("inflight: {}", failure.message);
            failure.code
        }
    }
}

/// Milliseconds since the epoch as an RFC 3339 timestamp.
fn format_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
