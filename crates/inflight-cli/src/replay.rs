//! `inflight replay`: the recovered running set and the recovery report, read-only.

use std::path::Path;

use inflight::fallback::{Flagged, LogView, Session, flag};
use inflight::inspect::{Point, StateAt, state_at};
use inflight::{InFlightRun, Policy, RecoveryReport};

use super::progress::Progress;
use super::{
    CliResult, Failure, FallbackArgs, ReplayArgs, Rfc3339, STDIN_BYTES_MAX, format_ms, read_input,
};

/// The exit code for a point whose state the log no longer holds.
const UNKNOWABLE: i32 = 9;

pub(super) fn run(args: ReplayArgs) -> CliResult {
    let point = match (args.at, args.at_time) {
        (Some(seq), _) => Some(Point::Seq(seq)),
        (_, Some(ms)) => Some(Point::TimeMs(ms)),
        _ => None,
    };
    if let Some(point) = point {
        return run_at(&args, point);
    }
    let policy = if args.strict {
        Policy::Strict
    } else {
        Policy::SkipDamaged
    };
    let sessions = args.fallback.sessions()?;
    let source = args.source.reading()?;
    let dir = args.source.path();
    let progress = Progress::spinner(format!("replaying {}", dir.display()), args.json);
    let read = inflight::inspect::read_only_from(&*source, policy);
    progress.finish();
    let mut recovered = match read {
        Err(inflight::Error::NotFound { .. }) if sessions.is_some() => None,
        other => Some(other?),
    };
    if let Some(r) = &mut recovered {
        r.report.crash_loop_threshold = args.crash_loop_threshold;
        r.report.stop_loop_threshold = args.stop_loop_threshold;
    }
    let flagged = args.fallback.flag(
        sessions,
        recovered.as_ref().map(|r| LogView::Present {
            report: &r.report,
            set: &r.set,
        }),
    );
    let Some(recovered) = recovered else {
        let line = format!(
            "no log at {}: every session active within the window is a guess",
            dir.display()
        );
        return print_no_log(args.json, flagged, &line);
    };
    if !args.json {
        print_report(&dir, &recovered.report);
    }
    print_found(args.json, &recovered.report, flagged)
}

/// With --sessions and no log: the fallback's guesses alone, after `line` (as text), or in
/// an object saying `"log_found": false`.
pub(super) fn print_no_log(json: bool, flagged: Option<Vec<Flagged>>, line: &str) -> CliResult {
    let flagged = flagged.unwrap_or_default();
    if json {
        return print_json(&serde_json::json!({ "log_found": false, "flagged": flagged }));
    }
    println!("{line}");
    print_flagged(&flagged);
    Ok(())
}

/// What was found, after its text (printed by the caller): as JSON, `value`'s object with
/// the flagged keys as `flagged`; as text, the flagged keys.
pub(super) fn print_found(
    json: bool,
    value: &impl serde::Serialize,
    flagged: Option<Vec<Flagged>>,
) -> CliResult {
    if json {
        let mut value = serde_json::to_value(value)
            .map_err(|e| Failure::new(1, format!("cannot encode the report as JSON: {e}")))?;
        if let (Some(flagged), Some(object)) = (&flagged, value.as_object_mut()) {
            object.insert("flagged".into(), serde_json::json!(flagged));
        }
        return print_json(&value);
    }
    if let Some(flagged) = &flagged {
        print_flagged(flagged);
    }
    Ok(())
}

impl FallbackArgs {
    /// The sessions of --sessions, read, if given.
    pub(super) fn sessions(&self) -> Result<Option<Vec<Session>>, Failure> {
        self.sessions.as_deref().map(read_sessions).transpose()
    }

    /// The keys the fallback flags, over `view` (`None`: there is no log), if --sessions was
    /// given.
    pub(super) fn flag(
        &self,
        sessions: Option<Vec<Session>>,
        view: Option<LogView<'_>>,
    ) -> Option<Vec<Flagged>> {
        sessions.map(|sessions| {
            let window_ms = self.window.unwrap_or(0).saturating_mul(1000);
            let now_ms = self.now.unwrap_or_else(inflight::environment::now_ms);
            flag(
                view.unwrap_or(LogView::Missing),
                &sessions,
                window_ms,
                now_ms,
            )
        })
    }
}

/// The recovery report, as text.
pub(super) fn print_report(dir: &Path, report: &RecoveryReport) {
    println!(
        "log {}: {} segment(s), {} record(s), last sequence {}",
        dir.display(),
        report.segments,
        report.records,
        report.last_seq
    );
    if let Some(snapshot) = &report.snapshot {
        println!(
            "from snapshot {} ({} bytes, written {}), covering records up to {}",
            snapshot.file,
            snapshot.bytes,
            format_ms(snapshot.created_ms),
            snapshot.last_seq
        );
    }
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
    print_damage(report);
    println!("stale records ignored: {}", report.stale_ignored());
    println!(
        "runs in flight: {} ({} running when the log was last written)",
        report.running.len(),
        report.interrupted.len()
    );
    print_runs(&report.running);
    let loops: Vec<&str> = report.crash_loops().map(|r| r.run.key.as_str()).collect();
    if !loops.is_empty() {
        println!(
            "CRASH LOOP ({} or more crashes in a row interrupted it while it ran): {}",
            report.crash_loop_threshold,
            loops.join(", ")
        );
    }
    let loops: Vec<&str> = report.stop_loops().map(|r| r.run.key.as_str()).collect();
    if !loops.is_empty() {
        println!(
            "REBOOT LOOP ({} or more graceful stops in a row interrupted it while it ran): {}",
            report.stop_loop_threshold,
            loops.join(", ")
        );
    }
}

/// The torn tail and the damage the report holds, a line each.
fn print_damage(report: &RecoveryReport) {
    if let Some(torn) = &report.torn_tail {
        println!(
            "torn tail: {} byte(s) at {}:{} (an append in progress, or what a crash left; the next read-write open cuts it)",
            torn.bytes, torn.segment, torn.offset
        );
    }
    for c in &report.corruption {
        println!(
            "CORRUPTION (skipped): {}: {}",
            c.place(),
            c.what(&format_ms)
        );
    }
    for c in &report.gaps_before_snapshot {
        println!(
            "earlier gap (reported when it was found, kept by the snapshot): {}: {}",
            c.place(),
            c.what(&format_ms)
        );
    }
}

/// The running runs as a table (nothing if there are none).
fn print_runs(running: &[InFlightRun]) {
    if running.is_empty() {
        return;
    }
    println!(
        "  {:<40} {:>10}  {:<28} {:<24} {:<11} {:<8} {:>7} {:>5}  META",
        "KEY", "GENERATION", "SESSION", "STARTED", "STATE", "REASON", "CRASHES", "STOPS"
    );
    for r in running {
        let state = match &r.pending {
            Some(p) if r.state() == inflight::RunState::Pending => {
                format!("pending ({})", p.reason)
            }
            _ => r.state().as_str().to_string(),
        };
        println!(
            "  {:<40} {:>10}  {:<28} {:<24} {:<11} {:<8} {:>7} {:>5}  {}",
            r.run.key,
            r.run.generation,
            r.run.session_id,
            format_ms(r.run.started_at_ms),
            state,
            r.reason,
            r.recoveries,
            r.stops,
            r.run.meta.as_deref().unwrap_or("-")
        );
    }
}

/// `replay --at SEQ` / `--at-time TIME`: the running set at that point, or exit 9 where the
/// log no longer holds the records that would say.
fn run_at(args: &ReplayArgs, point: Point) -> CliResult {
    let source = args.source.reading()?;
    let dir = args.source.path();
    let progress = Progress::spinner(format!("replaying {}", dir.display()), args.json);
    let state = state_at(&*source, point);
    progress.finish();
    let state = match state? {
        Ok(state) => state,
        Err(why) => {
            let asked = match point {
                Point::Seq(seq) => format!("right after record {seq}"),
                Point::TimeMs(ms) => format!("at {} ({ms})", Rfc3339(ms)),
            };
            return Err(Failure::new(
                UNKNOWABLE,
                format!(
                    "{}: the log cannot say what was in flight {asked}: {why}",
                    dir.display()
                ),
            ));
        }
    };
    if args.json {
        return print_json(&state_json(&state));
    }
    let StateAt {
        last_seq,
        last_ms,
        ref running,
        ref gaps,
        past_the_end,
        ..
    } = state;
    let asked = match point {
        Point::Seq(seq) => format!("right after record {seq}"),
        Point::TimeMs(ms) => format!("at {} ({ms})", Rfc3339(ms)),
    };
    let last = match last_ms {
        Some(ms) => format!("record {last_seq}, stamped {} ({ms})", Rfc3339(ms)),
        None if last_seq == 0 => "no record yet".to_string(),
        None => format!("record {last_seq}"),
    };
    println!("log {} {asked}: the state after {last}", dir.display());
    if past_the_end {
        println!("(the log ends there: nothing was recorded after it yet)");
    }
    for c in gaps {
        println!(
            "gap before that point (skipped, as replay does): {}: {}",
            c.place(),
            c.what(&format_ms)
        );
    }
    println!("in flight then: {}", running.len());
    print_runs(running);
    Ok(())
}

fn state_json(state: &StateAt) -> serde_json::Value {
    let point = match state.point {
        Point::Seq(seq) => serde_json::json!({ "seq": seq }),
        Point::TimeMs(ms) => serde_json::json!({ "time_ms": ms, "time": Rfc3339(ms) }),
    };
    serde_json::json!({
        "point": point,
        "last_seq": state.last_seq,
        "last_ms": state.last_ms,
        "last": state.last_ms.map(Rfc3339),
        "past_the_end": state.past_the_end,
        "running": state.running,
        "gaps": state.gaps,
    })
}

pub(super) fn print_json(value: &serde_json::Value) -> CliResult {
    let json = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(1, format!("cannot encode the report as JSON: {e}")))?;
    println!("{json}");
    Ok(())
}

pub(super) fn print_flagged(flagged: &[Flagged]) {
    println!("flagged by the fallback: {}", flagged.len());
    for f in flagged {
        let how = if f.reason.is_precise() {
            "the log says so"
        } else {
            "a guess"
        };
        println!("  {:<40} {:<16} {how}", f.key, f.reason);
    }
}

/// Reads the gateway's sessions: one JSON object a line, `{"key":K,"last_active_ms":T}`; blank
/// lines are skipped. A bad line is invalid input (exit 6), naming the file and line.
/// The sessions of `--sessions FILE` (or `-`, standard input), at most 1 GiB of them.
fn read_sessions(path: &Path) -> Result<Vec<Session>, Failure> {
    let (bytes, name) = read_input(path, STDIN_BYTES_MAX)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            6,
            format!(
                "{name}: not UTF-8 text at byte {}",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let mut sessions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let session: Session = serde_json::from_str(line).map_err(|e| {
            Failure::new(
                6,
                format!(
                    "{} line {}: {e}; each line must be {{\"key\":K,\"last_active_ms\":T}}",
                    name,
                    i + 1
                ),
            )
        })?;
        sessions.push(session);
    }
    Ok(sessions)
}
