//! `inflight demo`: a gateway killed with SIGKILL mid-flight, and the proof that its log knows
//! exactly which runs were in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inflight::Opened;
use inflight::event::EventRef;
use inflight::store::FileSource;
use inflight::{FsStorage, InFlightRun, Log, Options, Policy, RecoveryReport};
use serde::Deserialize;

use super::{CliResult, DemoArgs, Failure};

/// Exit code when the check fails: an acknowledged run lost, or a run invented.
const EXIT_VIOLATION: i32 = 7;
/// Rows of the comparison table shown.
const ROWS_SHOWN: usize = 12;
/// How long the child may take to acknowledge its first event.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The event an acknowledgement or submission line of `inflight load --acks` names (the fields
/// the demo needs; the others are ignored).
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Ack {
    Started {
        key: String,
        session_id: String,
        generation: u64,
    },
    Completed {
        key: String,
        generation: u64,
    },
}

/// One line of `inflight load --acks`: a submission, printed before the call, or an
/// acknowledgement, printed after it returned `Ok`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Line {
    Submit { submit: Ack },
    Ack(Ack),
}

/// What the child had acknowledged for one key: its last event.
#[derive(Debug, Clone)]
struct Acked {
    generation: u64,
    session_id: String,
    running: bool,
}

/// How one key's recovered state compares with what was acknowledged.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Acknowledged as running and recovered as interrupted.
    Recovered,
    /// Acknowledged as running; its completion reached the disk but the child died before
    /// acknowledging it. Allowed: an unacknowledged event may or may not be durable.
    CompletionInFlight,
    /// Not acknowledged as running, but its next start reached the disk before the child died.
    StartInFlight,
    /// An acknowledged run missing, or an acknowledged completion undone.
    Lost,
    /// A recovered run the child never submitted (no submission line names its key, generation
    /// and session id).
    Invented,
}

/// What the child acknowledged and submitted, read from its lines.
#[derive(Default)]
struct Acks {
    /// Each key's last acknowledged event.
    acked: BTreeMap<String, Acked>,
    /// (key, generation, session id) of every start the child submitted.
    submitted: BTreeSet<(String, u64, String)>,
    /// Acknowledgements read.
    count: usize,
}

/// One row of the comparison: the verdict, the key, what was acknowledged, what was recovered.
type Row = (Verdict, String, String, String);

pub(super) fn run(args: DemoArgs) -> CliResult {
    if args.threads == 0 || args.sessions < args.threads {
        return Err(Failure::new(
            2,
            "--threads must be at least 1 and at most --sessions",
        ));
    }
    let (_temp, dir) = log_dir(&args)?;
    println!(
        "inflight demo: a simulated gateway ({} sessions, {} threads) logs its runs to {}",
        args.sessions,
        args.threads,
        dir.display()
    );
    let (lines, ran_for) = run_until_killed(&args, &dir)?;
    let acks = read_acks(&lines)?;
    println!(
        "killed it with SIGKILL {:.2} s after its first acknowledgement, having acknowledged {} events",
        ran_for.as_secs_f64(),
        acks.count
    );
    let (report, completed) = reopen(&dir)?;
    let rows = compare(&acks, &report, &completed);
    print_rows(&rows);
    conclude(&args, &dir, &rows, &acks, &report)
}

/// The log directory: `--dir` (new or empty), or one in a temporary directory kept alive by
/// the returned guard.
fn log_dir(args: &DemoArgs) -> Result<(Option<tempfile::TempDir>, PathBuf), Failure> {
    if let Some(d) = &args.dir {
        // The check compares the log with what this run's child acknowledged, so the log must
        // hold nothing else.
        if std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(Failure::new(
                2,
                format!(
                    "--dir {} is not empty: the demo needs a new or empty directory (inspect an existing log with `inflight replay`)",
                    d.display()
                ),
            ));
        }
        return Ok((None, d.clone()));
    }
    let temp = tempfile::Builder::new()
        .prefix("inflight-demo-")
        .tempdir()
        .map_err(|e| Failure::new(1, format!("creating a temporary directory: {e}")))?;
    let dir = temp.path().join("log");
    Ok((Some(temp), dir))
}

/// Runs the simulated gateway (`inflight load --acks`) as a child, kills it with SIGKILL a
/// while after its first acknowledgement, and returns every line it printed and how long it
/// ran after that first one.
fn run_until_killed(args: &DemoArgs, dir: &Path) -> Result<(Vec<String>, Duration), Failure> {
    let kill_after = Duration::from_millis(
        args.kill_after_ms
            .unwrap_or_else(|| fastrand::u64(500..=2000)),
    );
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(1, format!("finding the inflight executable: {e}")))?;
    let mut child = Command::new(exe)
        .arg("load")
        .arg(dir)
        .args(["--sessions", &args.sessions.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--seconds", "600", "--acks", "--key-prefix", "demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(1, format!("starting the simulated gateway: {e}")))?;

    // Read the child's lines on a thread; the first acknowledgement starts the kill timer.
    let stdout = child.stdout.take().expect("stdout is piped");
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut first_tx = Some(first_tx);
        for line in BufReader::new(stdout).lines() {
            // A line lost to a failed read would make the comparison wrong, not short.
            let line = line?;
            if !line.starts_with("{\"submit\"")
                && let Some(tx) = first_tx.take()
            {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        Ok::<_, std::io::Error>(lines)
    });
    let got_first = first_rx.recv_timeout(FIRST_ACK_TIMEOUT).is_ok();
    let t0 = Instant::now();
    if got_first {
        std::thread::sleep(kill_after);
    }
    // SIGKILL: no destructor, no flush, no clean shutdown record.
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| Failure::new(1, format!("waiting for the simulated gateway: {e}")))?;
    let ran_for = t0.elapsed();
    let lines = reader.join().expect("ack reader panicked").map_err(|e| {
        Failure::new(
            1,
            format!("reading what the simulated gateway printed: {e}; run the demo again"),
        )
    })?;
    if !killed(&status) || !got_first {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(Failure::new(
            1,
            format!(
                "the simulated gateway did not run until killed ({status}): {}",
                err.trim()
            ),
        ));
    }
    Ok((lines, ran_for))
}

/// What the child's lines say it submitted and acknowledged.
fn read_acks(lines: &[String]) -> Result<Acks, Failure> {
    let mut acks = Acks::default();
    for line in lines {
        let line: Line = serde_json::from_str(line).map_err(|e| {
            Failure::new(1, format!("unreadable line from the child {line:?}: {e}"))
        })?;
        let ack = match line {
            Line::Submit {
                submit:
                    Ack::Started {
                        key,
                        session_id,
                        generation,
                    },
            } => {
                acks.submitted.insert((key, generation, session_id));
                continue;
            }
            Line::Submit { .. } => continue,
            Line::Ack(ack) => ack,
        };
        acks.count += 1;
        match ack {
            Ack::Started {
                key,
                session_id,
                generation,
            } => {
                let acked = Acked {
                    generation,
                    session_id,
                    running: true,
                };
                acks.acked.insert(key, acked);
            }
            Ack::Completed { key, generation } => {
                let entry = acks.acked.get_mut(&key).ok_or_else(|| {
                    Failure::new(
                        1,
                        format!("completion of {key} acknowledged before its start"),
                    )
                })?;
                debug_assert_eq!(entry.generation, generation);
                entry.running = false;
            }
        }
    }
    Ok(acks)
}

/// The gateway's next start: opens the log the child left behind and returns its report, with
/// the completions the log holds (to confirm that a run missing from recovery really had its
/// completion reach the disk).
fn reopen(dir: &Path) -> Result<(RecoveryReport, BTreeSet<(String, u64)>), Failure> {
    let opened = Instant::now();
    let Opened { log, report } = Log::open(dir, Options::default())?;
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;
    drop(log);
    let mut completed: BTreeSet<(String, u64)> = BTreeSet::new();
    inflight::inspect::for_each_event(
        &FileSource::new(&FsStorage::default(), dir),
        Policy::Strict,
        |_, e| {
            if let EventRef::Completed {
                key, generation, ..
            } = e
            {
                completed.insert((key.to_string(), generation));
            }
        },
    )?;
    println!(
        "reopened the log in {open_ms:.1} ms: {} records replayed, torn tail {} bytes, corruption {}, clean shutdown {}",
        report.records,
        report.torn_tail_bytes(),
        report.corruption.len(),
        report.clean_shutdown
    );
    Ok((report, completed))
}

/// Each key's verdict, in order: every key acknowledged or recovered.
fn compare(acks: &Acks, report: &RecoveryReport, completed: &BTreeSet<(String, u64)>) -> Vec<Row> {
    let recovered: BTreeMap<&str, &InFlightRun> = report
        .running
        .iter()
        .map(|r| (r.run.key.as_str(), r))
        .collect();
    let keys: BTreeSet<&str> = acks
        .acked
        .keys()
        .map(String::as_str)
        .chain(recovered.keys().copied())
        .collect();
    let mut rows: Vec<Row> = Vec::new();
    for key in keys {
        let a = acks.acked.get(key);
        let r = recovered.get(key).copied();
        let Some(verdict) = verdict(key, a, r, &acks.submitted, completed) else {
            continue;
        };
        let acked_text = a.map_or("never".to_string(), |a| {
            format!(
                "{} g{} ({})",
                if a.running { "running" } else { "completed" },
                a.generation,
                a.session_id
            )
        });
        let recovered_text = r.map_or("not in flight".to_string(), |r| {
            format!("g{} ({}) {}", r.run.generation, r.run.session_id, r.reason)
        });
        rows.push((verdict, key.to_string(), acked_text, recovered_text));
    }
    rows.sort();
    rows
}

/// How a key's recovered state `r` compares with what was acknowledged for it (`a`); `None`
/// for a key idle on both sides.
fn verdict(
    key: &str,
    a: Option<&Acked>,
    r: Option<&InFlightRun>,
    submitted: &BTreeSet<(String, u64, String)>,
    completed: &BTreeSet<(String, u64)>,
) -> Option<Verdict> {
    Some(match (a, r) {
        (_, Some(r))
            if !submitted.contains(&(
                key.to_string(),
                r.run.generation,
                r.run.session_id.clone(),
            )) =>
        {
            Verdict::Invented
        }
        (Some(a), Some(r)) if a.running && r.run.generation == a.generation => Verdict::Recovered,
        (Some(a), None) if a.running && completed.contains(&(key.to_string(), a.generation)) => {
            Verdict::CompletionInFlight
        }
        (Some(a), None) if a.running => Verdict::Lost,
        (_, None) => return None,
        (a, Some(r))
            if !a.is_some_and(|a| a.running)
                && r.run.generation == a.map_or(0, |a| a.generation) + 1 =>
        {
            Verdict::StartInFlight
        }
        // An acknowledged run replaced, or an acknowledged completion undone.
        (Some(a), Some(r)) if a.running || r.run.generation <= a.generation => Verdict::Lost,
        (_, Some(_)) => Verdict::Invented,
    })
}

/// The comparison table: anything but a plain recovery first, then recoveries.
fn print_rows(rows: &[Row]) {
    println!();
    println!(
        "  {:<14} {:<36} {:<36} VERDICT",
        "KEY", "ACKNOWLEDGED BY THE CHILD", "RECOVERED"
    );
    let shown = rows
        .iter()
        .filter(|r| r.0 != Verdict::Recovered)
        .chain(rows.iter().filter(|r| r.0 == Verdict::Recovered))
        .take(ROWS_SHOWN);
    for (verdict, key, a, r) in shown {
        let v = match verdict {
            Verdict::Recovered => "recovered",
            Verdict::CompletionInFlight => "ok: completion was in flight",
            Verdict::StartInFlight => "ok: start was in flight",
            Verdict::Lost => "LOST",
            Verdict::Invented => "INVENTED",
        };
        println!("  {key:<14} {a:<36} {r:<36} {v}");
    }
    if rows.len() > ROWS_SHOWN {
        println!("  ... and {} more", rows.len() - ROWS_SHOWN);
    }
}

/// The verdict of the whole demo: PASS when nothing acknowledged was lost, nothing was
/// invented, and no more events were in flight than the child had threads.
fn conclude(
    args: &DemoArgs,
    dir: &Path,
    rows: &[Row],
    acks: &Acks,
    report: &RecoveryReport,
) -> CliResult {
    let count = |v: Verdict| rows.iter().filter(|r| r.0 == v).count();
    let recovered_n = count(Verdict::Recovered);
    let completion_in_flight = count(Verdict::CompletionInFlight);
    let start_in_flight = count(Verdict::StartInFlight);
    let lost = count(Verdict::Lost);
    let invented = count(Verdict::Invented);
    let acked_running = acks.acked.values().filter(|a| a.running).count();
    println!();
    println!(
        "the child had acknowledged {acked_running} runs as running; recovery reports {} interrupted runs",
        report.running.len()
    );
    println!(
        "  {recovered_n} acknowledged runs recovered; {start_in_flight} start(s) and {completion_in_flight} completion(s) were in flight at the kill (durable, never acknowledged: either outcome is correct)"
    );
    let in_flight = start_in_flight + completion_in_flight;
    if lost == 0 && invented == 0 && in_flight <= args.threads {
        println!(
            "result: PASS: no acknowledged run was lost and none was invented ({recovered_n} recovered, {in_flight} in flight)"
        );
        if args.dir.is_some() {
            println!("inspect it yourself: inflight replay {}", dir.display());
        }
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_VIOLATION,
            format!(
                "recovery is wrong: {lost} acknowledged run(s) lost, {invented} invented, {in_flight} in flight (at most {} possible)",
                args.threads
            ),
        ))
    }
}

/// Whether the child ended by our kill: SIGKILL on Unix; on Windows `TerminateProcess`,
/// which leaves exit code 1 (the load never exits on its own within its 600 s).
fn killed(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        status.code() == Some(1)
    }
}
