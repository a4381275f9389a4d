//! The time-window fallback, pure: which of the gateway's sessions to treat as interrupted,
//! and why. The log answers precisely for what it covers; the window is a guess, used only
//! where the log cannot speak: when there is no log, around a gap that corruption left, and
//! before the log began recording. No clock inside: the caller passes the current time.
//!
//! ```
//! use inflight::fallback::{Flag, LogView, Session, flag};
//!
//! // No log at all: every session active within the window is a guess.
//! let sessions = [
//!     Session::new("agent:main:telegram:dm:4242", 1_000_000),
//!     Session::new("agent:main:http:c-5", 100_000),
//! ];
//! let flagged = flag(LogView::Missing, &sessions, 120_000, 1_060_000);
//! assert_eq!(flagged.len(), 1);
//! assert_eq!(flagged[0].key, "agent:main:telegram:dm:4242");
//! assert_eq!(flagged[0].reason, Flag::NoLog);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fold::RunningSet;
use crate::recovery::RecoveryReport;

/// Why a key is to be treated as interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Flag {
    /// The log says so, precisely: the key's run is in the recovered running set, however long
    /// ago it started.
    Log,
    /// A guess: the key was active within the window around a damaged region's time range, and
    /// the log holds nothing for it after that region.
    Gap,
    /// A guess: there is no log (no directory, or no log in it, or none of it could be read),
    /// and the key was active within the window.
    NoLog,
    /// A guess: the key was last active within the window but before the log began recording.
    BeforeCoverage,
    /// The log says so, precisely, and more: the key's run is in the recovered running set and
    /// has been found interrupted by a crash at [`RecoveryReport::crash_loop_threshold`] or
    /// more consecutive recoveries. Suspend it rather than resume it again.
    CrashLoop,
    /// The log says so, precisely, and more: the key's run is in the recovered running set and
    /// graceful stops interrupted it while it ran at [`RecoveryReport::stop_loop_threshold`] or
    /// more consecutive restarts (a run whose tool restarts the gateway). Suspend it rather
    /// than resume it again.
    RebootLoop,
}

impl Flag {
    /// `log`, `gap`, `no-log` or `before-coverage`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Log => "log",
            Flag::Gap => "gap",
            Flag::NoLog => "no-log",
            Flag::BeforeCoverage => "before-coverage",
            Flag::CrashLoop => "crash-loop",
            Flag::RebootLoop => "reboot-loop",
        }
    }

    /// True for [`Flag::Log`], [`Flag::CrashLoop`] and [`Flag::RebootLoop`]: the log's own
    /// answer, not a guess.
    pub fn is_precise(self) -> bool {
        matches!(self, Flag::Log | Flag::CrashLoop | Flag::RebootLoop)
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One of the gateway's sessions: its key and when it was last active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session's routing key.
    pub key: String,
    /// When the gateway last saw activity on it, in milliseconds since the Unix epoch.
    pub last_active_ms: u64,
}

impl Session {
    /// A session of `key`, last active at `last_active_ms`.
    pub fn new(key: impl Into<String>, last_active_ms: u64) -> Session {
        Session {
            key: key.into(),
            last_active_ms,
        }
    }
}

/// A key to treat as interrupted, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    /// The session's routing key.
    pub key: String,
    /// Why: the log's precise answer, or which guess.
    pub reason: Flag,
}

/// What the log can say.
#[derive(Clone, Copy, Debug)]
pub enum LogView<'a> {
    /// There is no log: no directory, or no log in it.
    Missing,
    /// A replayed log: its report, and the state it folds to (each key's last event time).
    Present {
        /// What recovery found.
        report: &'a RecoveryReport,
        /// The folded state: [`ReadOnly::set`](crate::ReadOnly::set) or the open log's.
        set: &'a RunningSet,
    },
}

/// The keys to treat as interrupted, ordered by key, each with its reason. `window_ms` is how
/// far back from `now_ms` a session counts as recently active; a session listed twice counts
/// with its latest activity. The rules:
///
/// - every run in the log's running set is flagged [`Flag::Log`], whatever its age, or
///   [`Flag::CrashLoop`] when it is one of [`RecoveryReport::crash_loops`],
///   [`Flag::RebootLoop`] when it is one of [`RecoveryReport::stop_loops`] only;
/// - with no log, or one with neither a snapshot nor a readable segment header (it cannot
///   speak for anything),
///   every session active within the window is flagged [`Flag::NoLog`];
/// - otherwise a session is a guess only where the log cannot speak for it: active within the
///   window but before the log's coverage began ([`Flag::BeforeCoverage`]); or active within
///   `window_ms` of a damaged region's time range (from the record before it to the record after
///   it, or to `now_ms` when it reaches the end of the log) with no event of its key in the log
///   after that range ([`Flag::Gap`]).
///
/// A key the log covers is never flagged by a guess.
pub fn flag(log: LogView<'_>, sessions: &[Session], window_ms: u64, now_ms: u64) -> Vec<Flagged> {
    let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
    for s in sessions {
        let t = latest.entry(s.key.as_str()).or_insert(s.last_active_ms);
        *t = (*t).max(s.last_active_ms);
    }
    let recent = |t: u64| t.saturating_add(window_ms) >= now_ms;
    let mut flagged: BTreeMap<String, Flag> = BTreeMap::new();
    let (report, set) = match log {
        LogView::Present { report, set } if report.coverage_since_ms.is_some() => (report, set),
        _ => {
            for (key, &t) in &latest {
                if recent(t) {
                    flagged.insert(key.to_string(), Flag::NoLog);
                }
            }
            return into_list(flagged);
        }
    };
    for run in &report.running {
        flagged.insert(run.run.key.clone(), Flag::Log);
    }
    for run in report.stop_loops() {
        flagged.insert(run.run.key.clone(), Flag::RebootLoop);
    }
    for run in report.crash_loops() {
        flagged.insert(run.run.key.clone(), Flag::CrashLoop);
    }
    let coverage = report.coverage_since_ms.unwrap_or(0);
    for (key, &t) in &latest {
        if flagged.contains_key(*key) {
            continue;
        }
        let last_logged = set.mark(key).map(|m| m.last_event_ms);
        if recent(t) && t < coverage && last_logged.is_none() {
            flagged.insert(key.to_string(), Flag::BeforeCoverage);
            continue;
        }
        let in_a_gap = report
            .corruption
            .iter()
            .chain(&report.gaps_before_snapshot)
            .any(|c| {
                let start = c.after_ms.unwrap_or(coverage);
                let end = c.before_ms.unwrap_or(now_ms);
                let near =
                    t.saturating_add(window_ms) >= start && t <= end.saturating_add(window_ms);
                let spoken_after = last_logged.is_some_and(|l| c.before_ms.is_some_and(|b| l >= b));
                near && !spoken_after
            });
        if in_a_gap {
            flagged.insert(key.to_string(), Flag::Gap);
        }
    }
    into_list(flagged)
}

fn into_list(flagged: BTreeMap<String, Flag>) -> Vec<Flagged> {
    flagged
        .into_iter()
        .map(|(key, reason)| Flagged { key, reason })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Generation, Reason, Run, UnixMs};
    use crate::recovery::Corruption;

    const WINDOW: u64 = 120_000;
    const NOW: u64 = 10_000_000;

    fn log_of(events: &[Event], coverage: u64) -> (RecoveryReport, RunningSet) {
        let mut set = RunningSet::new();
        for e in events {
            set.apply(e);
        }
        let report = RecoveryReport {
            running: set.entries().cloned().collect(),
            coverage_since_ms: Some(coverage),
            crash_loop_threshold: 3,
            stop_loop_threshold: 3,
            ..RecoveryReport::default()
        };
        (report, set)
    }

    fn start(key: &str, at: u64) -> Event {
        Event::Started(Run::new(key, "s", Generation(1), UnixMs(at)))
    }

    fn done(key: &str, at: u64) -> Event {
        Event::Completed {
            key: key.into(),
            generation: 1,
            at_ms: at,
        }
    }

    fn flags(
        report: &RecoveryReport,
        set: &RunningSet,
        sessions: &[Session],
    ) -> Vec<(String, Flag)> {
        flag(LogView::Present { report, set }, sessions, WINDOW, NOW)
            .into_iter()
            .map(|f| (f.key, f.reason))
            .collect()
    }

    #[test]
    fn a_session_active_in_the_window_whose_run_completed_in_the_log_is_not_flagged() {
        let (report, set) = log_of(&[start("a", NOW - 50_000), done("a", NOW - 10_000)], 1);
        assert_eq!(
            flags(&report, &set, &[Session::new("a", NOW - 10_000)]),
            vec![]
        );
    }

    #[test]
    fn a_run_older_than_the_window_still_open_in_the_log_is_flagged_log() {
        let (report, set) = log_of(&[start("old", NOW - 3_600_000)], 1);
        let sessions = [Session::new("old", NOW - 3_600_000)];
        assert_eq!(
            flags(&report, &set, &sessions),
            vec![("old".into(), Flag::Log)]
        );
        // Even when the gateway does not list it.
        assert_eq!(flags(&report, &set, &[]), vec![("old".into(), Flag::Log)]);
    }

    #[test]
    fn a_key_active_before_coverage_and_inside_the_window_is_flagged_before_coverage() {
        let coverage = NOW - 30_000;
        let (report, set) = log_of(&[], coverage);
        let sessions = [
            Session::new("early", NOW - 60_000), // in the window, before coverage
            Session::new("ancient", NOW - 600_000), // outside the window
            Session::new("covered", NOW - 10_000), // after coverage: the log speaks
        ];
        assert_eq!(
            flags(&report, &set, &sessions),
            vec![("early".into(), Flag::BeforeCoverage)]
        );
    }

    #[test]
    fn a_key_touched_around_a_gap_with_nothing_after_it_is_flagged_gap() {
        let (mut report, set) = log_of(
            &[
                start("x", NOW - 500_000),
                done("x", NOW - 490_000),
                start("y", NOW - 100),
            ],
            1,
        );
        report.corruption.push(Corruption {
            segment: "00000000000000000001.log".into(),
            start_offset: 64,
            end_offset: 200,
            after_seq: 2,
            before_seq: Some(3),
            after_ms: Some(NOW - 480_000),
            before_ms: Some(NOW - 400_000),
            detail: String::new(),
        });
        let sessions = [
            Session::new("lost", NOW - 450_000), // inside the gap's range, nothing logged
            Session::new("near", NOW - 390_000), // within the window after it
            Session::new("far", NOW - 100_000),  // far from the gap, not recent enough
            Session::new("x", NOW - 470_000),    // in range, but logged before: flagged too
        ];
        assert_eq!(
            flags(&report, &set, &sessions),
            vec![
                ("lost".into(), Flag::Gap),
                ("near".into(), Flag::Gap),
                ("x".into(), Flag::Gap),
                ("y".into(), Flag::Log),
            ]
        );
        // A key whose log goes on after the gap is covered: never flagged.
        let (mut report, set) = log_of(&[done("z", NOW - 300_000)], 1);
        report.corruption = vec![Corruption {
            before_ms: Some(NOW - 400_000),
            after_ms: Some(NOW - 480_000),
            ..report_gap()
        }];
        assert_eq!(
            flags(&report, &set, &[Session::new("z", NOW - 450_000)]),
            vec![]
        );
    }

    fn report_gap() -> Corruption {
        Corruption {
            segment: "s".into(),
            start_offset: 0,
            end_offset: 1,
            after_seq: 0,
            before_seq: None,
            after_ms: None,
            before_ms: None,
            detail: String::new(),
        }
    }

    #[test]
    fn no_log_flags_every_session_active_within_the_window() {
        let sessions = [
            Session::new("a", NOW - 1),
            Session::new("b", NOW - WINDOW),
            Session::new("c", NOW - WINDOW - 1),
            Session::new("c", NOW - 2), // listed twice: the latest counts
        ];
        let got: Vec<_> = flag(LogView::Missing, &sessions, WINDOW, NOW)
            .into_iter()
            .map(|f| (f.key, f.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), Flag::NoLog),
                ("b".into(), Flag::NoLog),
                ("c".into(), Flag::NoLog)
            ]
        );
        // A log of which no header could be read cannot speak either.
        let report = RecoveryReport::default();
        let set = RunningSet::new();
        assert_eq!(
            flags(&report, &set, &[Session::new("a", NOW)]),
            vec![("a".into(), Flag::NoLog)]
        );
    }

    #[test]
    fn flags_read_as_the_contract_names_them() {
        let all = [
            Flag::Log,
            Flag::Gap,
            Flag::NoLog,
            Flag::BeforeCoverage,
            Flag::CrashLoop,
            Flag::RebootLoop,
        ];
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(
            json,
            r#"["log","gap","no-log","before-coverage","crash-loop","reboot-loop"]"#
        );
        assert!(Flag::Log.is_precise() && !Flag::Gap.is_precise());
        assert!(Flag::CrashLoop.is_precise());
    }

    #[test]
    fn a_run_interrupted_while_running_at_the_threshold_is_a_crash_loop() {
        let recovered = Event::Recovered { at_ms: 0 };
        // "loops" is resumed after each recovery and crashes again; "once" completes after the
        // first, starts again, is interrupted by the second recovery and never resumed.
        let mut events = vec![start("loops", 10), start("once", 10), recovered.clone()];
        events.extend([done("once", 11), start("once", 12), start("loops", 12)]);
        events.extend([recovered.clone(), start("loops", 13), recovered.clone()]);
        let (mut report, set) = log_of(&events, 0);
        let counts: Vec<u32> = report.running.iter().map(|r| r.recoveries).collect();
        assert_eq!(counts, [3, 1]);
        assert_eq!(
            flags(&report, &set, &[]),
            [
                ("loops".to_string(), Flag::CrashLoop),
                ("once".to_string(), Flag::Log)
            ]
        );
        // A run that waits and never runs again keeps its count: more restarts add nothing.
        let mut waiting = events.clone();
        waiting.extend([recovered.clone(), recovered.clone()]);
        let (waiting_report, _) = log_of(&waiting, 0);
        let counts: Vec<u32> = waiting_report
            .running
            .iter()
            .map(|r| r.recoveries)
            .collect();
        assert_eq!(counts, [3, 1]);
        report.crash_loop_threshold = 0; // detection off
        assert_eq!(flags(&report, &set, &[])[0].1, Flag::Log);
        report.crash_loop_threshold = 2;
        assert_eq!(flags(&report, &set, &[])[1].1, Flag::Log);
    }

    #[test]
    fn a_run_interrupted_by_graceful_stops_at_the_threshold_is_a_reboot_loop() {
        let stop = |at| {
            [
                Event::Shutdown { at_ms: at },
                Event::Recovered { at_ms: at },
            ]
        };
        // "reboots" restarts the gateway through a graceful stop each time it is resumed.
        let mut events = vec![start("reboots", 10)];
        for at in [20, 30, 40] {
            events.extend(stop(at));
            events.push(start("reboots", at + 1));
        }
        events.pop();
        let (report, set) = log_of(&events, 0);
        let run = &report.running[0];
        assert_eq!(
            (run.stops, run.recoveries, run.reason),
            (3, 0, Reason::Shutdown)
        );
        assert_eq!(flags(&report, &set, &[])[0].1, Flag::RebootLoop);
        assert!(Flag::RebootLoop.is_precise());
    }
}
