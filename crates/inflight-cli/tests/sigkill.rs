//! Tier 4 of the persistence model: a real child process appends as fast as it can and is killed
//! with SIGKILL at random instants, again and again on the same log. The child (`inflight load
//! --acks`) prints each event on its pipe before the call that records it (a submission) and
//! again after the call returned `Ok` (an acknowledgement). After every kill:
//!
//! - O1: every acknowledged event is in the log, exactly (kind, key, generation, session id,
//!   timestamp, meta);
//! - O2: every event in the log was submitted, exactly, and appears once;
//! - each key's events in the log come in that key's submission order;
//! - the running set the open reports is the reference model's fold of exactly those events.
//!
//! A second test kills a child that compacts in the background every few kilobytes, so kills land
//! during compactions too. The events a snapshot covers are no longer in the segments, so it
//! checks the state instead: under the strict policy the log must replay without damage, and
//! each key's running run must be what its submissions say, up to at least its last
//! acknowledged event.
//!
//! `INFLIGHT_SIGKILL_ROUNDS` sets the number of kills (default 20; half that for the second).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::acks::{Ledger, key_of, kill_round};
use inflight::store::FileSource;
use inflight::{Event, FsStorage, Policy};

const THREADS: usize = 2;

#[test]
fn every_acknowledged_event_survives_repeated_sigkill() {
    let rounds: usize = std::env::var("INFLIGHT_SIGKILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut acked: HashSet<Event> = HashSet::new();
    let mut submitted: HashSet<Event> = HashSet::new();
    // Each key's submissions, in the order printed (one thread owns a key, so this is the order
    // of its calls).
    let mut order: HashMap<String, Vec<Event>> = HashMap::new();
    let (mut total_acks, mut total_submitted, mut in_flight_recovered) = (0, 0, 0);

    for round in 0..rounds {
        let this = kill_round(
            &[dir.as_os_str()],
            THREADS,
            Duration::from_millis(rng.u64(5..250)),
            &[],
        );
        // Each thread has at most one call under way when the kill comes.
        let unacked = this.submitted.len() - this.acked.len();
        assert!(
            unacked <= THREADS,
            "round {round}: {unacked} submissions without acknowledgement"
        );
        total_acks += this.acked.len();
        total_submitted += this.submitted.len();
        for e in &this.submitted {
            order
                .entry(key_of(e).to_string())
                .or_default()
                .push(e.clone());
        }
        submitted.extend(this.submitted);
        acked.extend(this.acked);

        let mut all_logged: Vec<Event> = Vec::new();
        let found = inflight::inspect::for_each_event(
            &FileSource::new(&FsStorage::default(), &dir),
            Policy::Strict,
            |_, e| all_logged.push(e.to_event()),
        )
        .unwrap_or_else(|e| panic!("round {round}: the log does not replay under --strict: {e}"));
        assert!(
            found.report.snapshot.is_none(),
            "round {round}: no compaction was asked for"
        );
        // The log's own records (a recovery at each open that found runs in flight) were never
        // submitted: the checks of what was submitted leave them out.
        let logged: Vec<Event> = all_logged
            .iter()
            .filter(|e| !e.is_internal())
            .cloned()
            .collect();
        let recoveries = all_logged.len() - logged.len();
        assert!(
            recoveries <= round,
            "round {round}: {recoveries} recovery records, more than the {round} reopens"
        );
        let logged_set: HashSet<&Event> = logged.iter().collect();
        assert_eq!(
            logged_set.len(),
            logged.len(),
            "round {round}: a duplicated event"
        );
        // O1.
        for a in &acked {
            assert!(
                logged_set.contains(a),
                "round {round}: acknowledged {a:?} is not in the log"
            );
        }
        // O2: nothing invented, not even one field.
        for e in &logged {
            assert!(
                submitted.contains(e),
                "round {round}: {e:?} is in the log but was never submitted"
            );
        }
        in_flight_recovered = logged.iter().filter(|e| !acked.contains(*e)).count();
        // Each key's events in the log follow its submission order.
        let mut logged_by_key: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in &logged {
            logged_by_key.entry(key_of(e)).or_default().push(e);
        }
        for (key, events) in &logged_by_key {
            let mut submissions = order[*key].iter();
            for e in events {
                assert!(
                    submissions.any(|s| s == *e),
                    "round {round}: {key}'s events in the log are not in its submission order: {events:?}"
                );
            }
        }
        // What an open reports as running is the reference model's fold of exactly those
        // events, runs and reasons.
        let expected = inflight_sim::crashtest::Model::of(&all_logged).running();
        assert_eq!(found.report.running, expected, "round {round}");
    }
    common::report_tier(
        "4",
        &format!(
            "tier 4: {rounds} SIGKILLs, {total_submitted} events submitted, {total_acks} acknowledged, all recovered exactly; nothing unsubmitted in the log; {in_flight_recovered} unacknowledged (in flight at a kill) in the final log"
        ),
    );
}

#[test]
fn kills_during_background_compactions_lose_nothing_acknowledged() {
    let rounds: usize = std::env::var("INFLIGHT_SIGKILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(10, |n: usize| n.div_ceil(2));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut rng = fastrand::Rng::with_seed(0xc0_4ac7);
    let mut ledger = Ledger::default();
    let (mut snapshots, mut compacted_rounds) = (0, 0);
    for round in 0..rounds {
        let compact = ["--compact-after-bytes", "3000", "--segment-bytes", "12288"];
        let this = kill_round(
            &[dir.as_os_str()],
            THREADS,
            Duration::from_millis(rng.u64(50..600)),
            &compact,
        );
        ledger.add(this);
        let found = inflight::inspect::read_only(&dir, Policy::Strict).unwrap_or_else(|e| {
            panic!("round {round}: the log does not replay under --strict: {e}")
        });
        if found.report.snapshot.is_some() {
            snapshots += 1;
        }
        if found.report.counters.retentions > 0 {
            compacted_rounds += 1;
        }
        ledger.check(&format!("round {round}"), &found.report.running);
    }
    assert!(
        snapshots > 0 && compacted_rounds > 0,
        "no compaction happened"
    );
    common::report_tier(
        "4c",
        &format!(
            "tier 4 with compaction: {rounds} SIGKILLs of a child compacting every 3 KB, a snapshot present after {snapshots}; every key's state explained by its submissions up to its last acknowledgement"
        ),
    );
}
