//! A child `inflight load --acks` killed with SIGKILL, and what it printed: each event before
//! the call that records it (a submission) and after the call returned `Ok` (an
//! acknowledgement).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inflight::{Event, Generation, InFlightRun, Run, UnixMs};

/// What one child printed before it was killed, in the order printed.
#[derive(Default)]
pub struct Round {
    /// The submissions, in the order printed.
    pub submitted: Vec<Event>,
    /// The acknowledgements, in the order printed.
    pub acked: Vec<Event>,
}

/// The event a `load --acks` line names (the object itself, or the one under `submit`).
pub fn event_of(v: &serde_json::Value) -> Event {
    let key = v["key"].as_str().expect("key").to_string();
    let generation = v["generation"].as_u64().expect("generation");
    match v["event"].as_str() {
        Some("started") => {
            let mut run = Run::new(
                key,
                v["session_id"].as_str().expect("session_id"),
                Generation(generation),
                UnixMs(v["started_at_ms"].as_u64().expect("started_at_ms")),
            );
            if let Some(meta) = v["meta"].as_str() {
                run = run.with_meta(meta);
            }
            Event::Started(run)
        }
        Some("completed") => Event::Completed {
            key,
            generation,
            at_ms: v["at_ms"].as_u64().expect("at_ms"),
        },
        other => panic!("unknown event {other:?} in {v}"),
    }
}

pub fn key_of(event: &Event) -> &str {
    match event {
        Event::Started(run) => &run.key,
        other => other.key().unwrap_or(""),
    }
}

/// How long a child may take to print its first acknowledgement before the round fails.
const FIRST_ACK_WITHIN: Duration = Duration::from_secs(120);

/// Runs `inflight load TARGET --acks` (TARGET: a directory, or `--database URL --instance ID`)
/// until SIGKILL, `kill_after` after its first acknowledgement, and returns what it printed.
///
/// The child prints into a file, not a pipe: Wine's pipes have failed a read with "Internal
/// error" under load, and a file read after the child is dead has nothing left in flight. A
/// file, unlike a pipe, can keep part of the last line when the kill lands inside its write; that
/// line was never finished, so the call it announces never started (a submission) or its
/// acknowledgement never reached the gateway (an acknowledgement), and it is left out.
pub fn kill_round(
    target: &[impl AsRef<OsStr>],
    threads: usize,
    kill_after: Duration,
    extra: &[&str],
) -> Round {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("acks.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .arg("load")
        .args(target)
        .args(["--sessions", "24", "--seconds", "600", "--acks"])
        .args(["--threads", &threads.to_string()])
        .args(extra)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while !whole_lines(&std::fs::read(&out_path).unwrap())
        .iter()
        .any(|line| !line.starts_with("{\"submit\""))
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended ({status}) before it acknowledged anything");
        }
        if waited.elapsed() > FIRST_ACK_WITHIN {
            let _ = child.kill();
            panic!("the child acknowledged nothing within {FIRST_ACK_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        super::killed(&status),
        "the child must die by SIGKILL: {status}"
    );
    let mut round = Round::default();
    for line in whole_lines(&std::fs::read(&out_path).unwrap()) {
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a line from the child that is not JSON: {line:?}: {e}"));
        match v.get("submit") {
            Some(s) => round.submitted.push(event_of(s)),
            None => {
                let ack = event_of(&v);
                assert!(
                    round.submitted.contains(&ack),
                    "acknowledged before it was submitted: {line}"
                );
                round.acked.push(ack);
            }
        }
    }
    round
}

/// The lines of `bytes` that end in a newline; a last line without one (its write cut by the
/// kill, or still under way) is left out.
fn whole_lines(bytes: &[u8]) -> Vec<String> {
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last) => &bytes[..=last],
        None => &[][..],
    };
    whole
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8(line.to_vec()).expect("the child prints UTF-8"))
        .collect()
}

/// Each key's submissions in order over several rounds, and how many of them are acknowledged
/// for sure: what a log that compacts (so its events are no longer all there) is checked by.
#[derive(Default)]
pub struct Ledger {
    /// Each key's submissions, in order.
    pub submitted: HashMap<String, Vec<Event>>,
    /// How many of each key's submissions are acknowledged (a prefix: one thread owns a key).
    pub acked_upto: HashMap<String, usize>,
}

impl Ledger {
    /// Adds what one child printed.
    pub fn add(&mut self, round: Round) {
        for e in round.submitted {
            self.submitted
                .entry(key_of(&e).to_string())
                .or_default()
                .push(e);
        }
        for a in &round.acked {
            let events = &self.submitted[key_of(a)];
            let at = events
                .iter()
                .rposition(|e| e == a)
                .expect("acked was submitted")
                + 1;
            let upto = self.acked_upto.entry(key_of(a).to_string()).or_default();
            *upto = (*upto).max(at);
        }
    }

    /// Checks a recovered running set: every key in it was submitted, and each key's state is
    /// what a prefix of its submissions says, from its last acknowledged one on. (Each key
    /// alternates start(g) and complete(g) with g rising: "running g" after a start, "not
    /// running" after a completion.)
    pub fn check(&self, label: &str, running: &[InFlightRun]) {
        let running: HashMap<&str, u64> = running
            .iter()
            .map(|r| (r.run.key.as_str(), r.run.generation))
            .collect();
        for key in running.keys() {
            assert!(
                self.submitted.contains_key(*key),
                "{label}: {key} was never submitted"
            );
        }
        for (key, events) in &self.submitted {
            let from = self.acked_upto.get(key).copied().unwrap_or(0);
            let state_after = |n: usize| match n.checked_sub(1).map(|i| &events[i]) {
                Some(Event::Started(run)) => Some(run.generation),
                _ => None,
            };
            assert!(
                (from..=events.len()).any(|n| state_after(n) == running.get(key.as_str()).copied()),
                "{label}: {key} is {:?} in the log, which no prefix of its submissions from its \
                 last acknowledged one ({from} of {}) explains",
                running.get(key.as_str()),
                events.len()
            );
        }
    }
}
