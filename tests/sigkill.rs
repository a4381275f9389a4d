//! Tier 4 of the persistence model: a real child process appends as fast as it can and is killed
//! with SIGKILL at random instants, again and again on the same log. Every event it acknowledged
//! on its pipe must be in the log; nothing it never submitted may appear.
//!
//! `INFLIGHT_SIGKILL_ROUNDS` sets the number of kills (default 20).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use inflight::{Event, FsStorage, Log, Policy};

const THREADS: usize = 2;

/// (kind, key, generation): what an acknowledgement names.
type Named = (&'static str, String, u64);

fn named(event: &Event) -> Option<Named> {
    match event {
        Event::Started(run) => Some(("started", run.key.clone(), run.generation)),
        Event::Completed {
            key, generation, ..
        } => Some(("completed", key.clone(), *generation)),
        Event::Shutdown { .. } => None,
    }
}

/// Runs the child until SIGKILL and returns what it acknowledged.
fn kill_round(dir: &std::path::Path, kill_after: Duration) -> Vec<Named> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .arg("load")
        .arg(dir)
        .args(["--sessions", "24", "--seconds", "600", "--acks"])
        .args(["--threads", &THREADS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .next()
        .expect("the child acknowledges something")
        .unwrap();
    let reader = std::thread::spawn(move || {
        std::iter::once(first)
            .chain(lines.map_while(Result::ok))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "the child must die by SIGKILL");
    reader
        .join()
        .unwrap()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let kind = if v["event"] == "started" {
                "started"
            } else {
                "completed"
            };
            (
                kind,
                v["key"].as_str().unwrap().to_string(),
                v["generation"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_acknowledged_event_survives_repeated_sigkill() {
    let rounds: usize = std::env::var("INFLIGHT_SIGKILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut acked: BTreeSet<Named> = BTreeSet::new();
    let mut total_acks = 0;

    for round in 0..rounds {
        let this_round = kill_round(&dir, Duration::from_millis(rng.u64(5..250)));
        total_acks += this_round.len();
        acked.extend(this_round);

        let mut logged: Vec<Named> = Vec::new();
        let found = Log::for_each_event(&FsStorage::default(), &dir, Policy::Strict, |_, e| {
            logged.extend(named(e))
        })
        .unwrap();
        assert!(found.report.corruption.is_empty());
        let logged_set: BTreeSet<&Named> = logged.iter().collect();
        assert_eq!(
            logged_set.len(),
            logged.len(),
            "round {round}: a duplicated event"
        );
        for a in &acked {
            assert!(
                logged_set.contains(a),
                "round {round}: acknowledged {a:?} is not in the log"
            );
        }
        // Unacknowledged events in the log: at most one in flight per thread per kill, and each
        // one the next step of its key.
        let unacked: Vec<&Named> = logged.iter().filter(|e| !acked.contains(*e)).collect();
        assert!(
            unacked.len() <= THREADS * (round + 1),
            "round {round}: {} unacknowledged events in the log",
            unacked.len()
        );
        let mut top: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, key, g) in &acked {
            let t = top.entry(key.as_str()).or_default();
            *t = (*t).max(*g);
        }
        for (_, key, g) in &unacked {
            assert!(
                *g <= top.get(key.as_str()).copied().unwrap_or(0) + 1,
                "invented {key} g{g}"
            );
        }
        // What the open reports as running is the fold of exactly those events.
        let running: BTreeSet<(String, u64)> = found
            .report
            .running
            .iter()
            .map(|r| (r.run.key.clone(), r.run.generation))
            .collect();
        let mut expected: BTreeMap<String, (u64, bool)> = BTreeMap::new();
        for (kind, key, g) in &logged {
            expected.insert(key.clone(), (*g, *kind == "started"));
        }
        let expected: BTreeSet<(String, u64)> = expected
            .into_iter()
            .filter(|(_, (_, running))| *running)
            .map(|(k, (g, _))| (k, g))
            .collect();
        assert_eq!(running, expected, "round {round}");
    }
    common::report_tier(
        "4",
        &format!("tier 4: {rounds} SIGKILLs, {total_acks} acknowledged events, all recovered"),
    );
}
