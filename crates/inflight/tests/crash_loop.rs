//! Crash-loop detection with real processes: a child opens the log, resumes the same key and is
//! killed with SIGKILL while the run is in flight, again and again. Each open after a kill must
//! count one more consecutive recovery for that key (1, 2, 3), flag it at the threshold, carry
//! the count through a compaction, and start again from 1 once a completion came in between.
//!
//! The child is this test binary itself, run again with `INFLIGHT_CRASH_LOOP_CHILD` set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use inflight::fallback::{Flag, LogView, flag};
use inflight::{Log, Opened, Options};

const KEY: &str = "agent:main:telegram:dm:4242";
const CHILD_ENV: &str = "INFLIGHT_CRASH_LOOP_CHILD";

/// The child: open (a recovery), print what the report says of KEY, resume KEY (or complete it
/// when asked), say so, and wait to be killed.
#[test]
fn child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // run as a normal test: nothing to do
    };
    let Opened { log, report } = Log::open(&dir, Options::default()).unwrap();
    let found = report.running.iter().find(|r| r.run.key == KEY);
    let loops = report.crash_loops().any(|r| r.run.key == KEY);
    println!(
        "recovered {} {}",
        found.map_or(0, |r| r.recoveries),
        if loops { "crash-loop" } else { "-" }
    );
    if let (Some(run), Ok(_)) = (found, std::env::var("INFLIGHT_COMPLETE")) {
        log.mark_completed(KEY, run.run.generation).unwrap();
    }
    if std::env::var("INFLIGHT_COMPACT").is_ok() {
        log.compact().unwrap();
    }
    log.begin_run(KEY, "20261127_1", Some(r#"{"resume_from":"m-9"}"#.into()))
        .unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(600));
}

/// Runs the child on `dir` until it is ready, kills it with SIGKILL, and returns the count and
/// flag it printed for KEY.
fn crash_once(dir: &Path, env: &[(&str, &str)]) -> (u32, bool) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut recovered = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // The test harness may print "test child ... " on the same line first.
        if let Some((_, rest)) = line.split_once("recovered ") {
            let (count, flag) = rest.split_once(' ').unwrap();
            recovered = Some((count.parse().unwrap(), flag == "crash-loop"));
        }
        if line.ends_with("ready") {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.code() != Some(0) && !status.success(),
        "the child must die by its kill: {status}"
    );
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child must die by SIGKILL"
    );
    recovered.expect("the child reports its recovery")
}

#[test]
fn a_run_that_keeps_crashing_the_process_counts_1_2_3_and_is_flagged() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // The first start: nothing was in flight.
    assert_eq!(crash_once(&dir, &[]), (0, false));
    // Each restart finds the key interrupted once more, resumes it, and dies again.
    assert_eq!(crash_once(&dir, &[]), (1, false));
    assert_eq!(crash_once(&dir, &[]), (2, false));
    assert_eq!(crash_once(&dir, &[]), (3, true));
    // The count survives a compaction (the child compacts before it dies this time).
    assert_eq!(crash_once(&dir, &[("INFLIGHT_COMPACT", "1")]), (4, true));
    let recovered = inflight::inspect::read_only(&dir, Default::default()).unwrap();
    assert!(
        recovered.report.snapshot.is_some(),
        "a snapshot was written"
    );
    // A read-only look counts what the log recorded: four recoveries, and the kill since.
    let run = &recovered.report.running[0];
    assert_eq!((run.run.key.as_str(), run.recoveries), (KEY, 4));
    let flagged = flag(
        LogView::Present {
            report: &recovered.report,
            set: &recovered.set,
        },
        &[],
        120_000,
        inflight::environment::now_ms(),
    );
    assert_eq!(flagged[0].reason, Flag::CrashLoop);

    // A completion in between resets the count: the child completes the interrupted run
    // (the gateway suspended it), starts the key again and dies.
    assert_eq!(crash_once(&dir, &[("INFLIGHT_COMPLETE", "1")]), (5, true));
    assert_eq!(crash_once(&dir, &[]), (1, false));
    assert_eq!(crash_once(&dir, &[]), (2, false));
}
