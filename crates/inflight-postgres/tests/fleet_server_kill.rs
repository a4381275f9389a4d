//! The PostgreSQL server killed with SIGKILL (the server and every backend) while an instance
//! appends from several threads, then started again: the instance's calls fail (its handle is
//! poisoned, nothing acknowledged is lost), and a reopen and a takeover read exactly what
//! committed. Its own test binary, since it takes the server from every other test; it needs
//! `INFLIGHT_PG_CLUSTER`, the directory `scripts/pg-cluster start` made (as `.ci/run` sets it).

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pg;
use inflight::{Error, Event, Generation, Opened, Options, Policy, Run, UnixMs};
use inflight_postgres::Fleet;

fn cluster(action: &str, dir: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-cluster");
    let status = Command::new(script).args([action, dir]).status().unwrap();
    assert!(status.success(), "scripts/pg-cluster {action} {dir}");
}

#[test]
fn a_server_killed_mid_load_poisons_the_handle_and_a_reopen_is_exact() {
    let Some(url) = pg::url() else { return };
    let Ok(dir) = std::env::var("INFLIGHT_PG_CLUSTER") else {
        assert!(
            std::env::var_os("INFLIGHT_PG_REQUIRED").is_none(),
            "INFLIGHT_PG_REQUIRED is set but INFLIGHT_PG_CLUSTER is not"
        );
        eprintln!("skipped: set INFLIGHT_PG_CLUSTER to the directory of scripts/pg-cluster");
        return;
    };
    let a = pg::instance("server-kill");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    let log = Arc::new(log);
    let submitted = Arc::new(Mutex::new(HashSet::<Event>::new()));
    let acked = Arc::new(Mutex::new(HashSet::<Event>::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (log, submitted, acked) = (log.clone(), submitted.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut failures = 0;
                for g in 1u64.. {
                    let key = format!("t{t}-{}", g % 16);
                    let event = if g % 3 == 0 {
                        Event::Completed {
                            key: format!("t{t}-{}", (g - 1) % 16),
                            generation: g - 1,
                            at_ms: g,
                        }
                    } else {
                        Event::Started(Run::new(&key, "s", Generation(g), UnixMs(g)))
                    };
                    submitted.lock().unwrap().insert(event.clone());
                    let result = match &event {
                        Event::Started(run) => log.mark_running(run.clone()).map(|_| ()),
                        Event::Completed {
                            key, generation, ..
                        } => log.mark_completed(key, *generation).map(|_| ()),
                        _ => unreachable!(),
                    };
                    match result {
                        Ok(()) => {
                            assert_eq!(failures, 0, "a call succeeded after a failure");
                            acked.lock().unwrap().insert(event);
                        }
                        Err(Error::DatabaseCall { .. }) if failures == 0 => failures += 1,
                        Err(Error::Poisoned { .. }) => failures += 1,
                        Err(e) => panic!("an unexpected error: {e}"),
                    }
                    if failures >= 20 {
                        return;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    cluster("kill", &dir);
    for t in threads {
        t.join().unwrap();
    }
    assert!(log.figures().poisoned);
    cluster("start", &dir);
    drop(log);
    let acked = acked.lock().unwrap().clone();
    let submitted = submitted.lock().unwrap().clone();
    assert!(acked.len() > 100, "the load ran before the kill");
    // Completions carry the caller's clock in the test's bookkeeping, not the log's: compare
    // completions by key and generation.
    let same = |e: &Event| match e {
        Event::Completed {
            key, generation, ..
        } => format!("completed {key} {generation}"),
        Event::Started(run) => format!("started {run:?}"),
        other => format!("{other:?}"),
    };
    let Opened { log, report } = pg::reopen(&url, &a);
    let source = Fleet::new(&url).source(&a).unwrap();
    let mut logged = Vec::new();
    inflight::inspect::for_each_event(&source, Policy::Strict, |_, e| logged.push(e.to_event()))
        .unwrap();
    let logged: HashSet<String> = logged
        .iter()
        .filter(|e| !e.is_internal())
        .map(same)
        .collect();
    let submitted: HashSet<String> = submitted.iter().map(same).collect();
    for e in &acked {
        assert!(logged.contains(&same(e)), "acknowledged {e:?} is lost");
    }
    for e in &logged {
        assert!(submitted.contains(e), "{e} was never submitted");
    }
    log.mark_running(Run::new("after", "s", Generation(1), UnixMs(1)))
        .unwrap();
    drop(log);
    let taken = pg::take_over(&url, &a, "b").unwrap();
    let keys = |r: &inflight::RecoveryReport| {
        r.running
            .iter()
            .map(|r| (r.run.key.clone(), r.run.generation))
            .collect::<Vec<_>>()
    };
    let mut expected = keys(&report);
    expected.push(("after".to_string(), 1));
    expected.sort();
    assert_eq!(keys(&taken.report), expected);
    common::report_tier(
        "fleet-server-kill",
        &format!(
            "fleet: the server SIGKILLed under 4 appending threads and restarted: {} events acknowledged, all in the reopened log ({} there), nothing unsubmitted; the takeover after agrees",
            acked.len(),
            logged.len()
        ),
    );
}
