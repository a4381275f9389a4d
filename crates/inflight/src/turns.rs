//! A gateway's start-up decisions over the runs recovery found, with a turn store's meanings:
//! which interrupted runs become resume-pending, which are suspended as loops, which are
//! cleared. The plans are pure (runs, thresholds, an age limit and the time in; decisions
//! out); [`recover_interrupted`] and [`discard_interrupted`] carry them out on a log, every
//! decision accepted first and then waited for, so a thousand decisions share a few syncs.
//!
//! The rules, from the gateway's own store:
//!
//! - a run that is running (begun or resumed by this process) is not a leftover: untouched;
//! - a suspended run is never re-armed;
//! - a run that is a loop (its crash or graceful-stop count at its threshold) is suspended
//!   instead of promoted, so it is not resumed again;
//! - at an unclean start ([`plan_recovery`]): an interrupted run younger than the age limit
//!   (none when the limit is `None`) is promoted to resume-pending, with the reason
//!   `restart_interrupted` after a crash, `shutdown_timeout` when a clean shutdown's drain
//!   timed out; an older one is cleared (it is not resumed). A run pending already keeps its
//!   state and reason (a drain timeout's is more specific), and is not counted again;
//! - after a clean shutdown ([`plan_discard`]): a run the shutdown's drain cut is promoted
//!   (`shutdown_timeout`), so it is resumed rather than lost; one a crash had interrupted and
//!   nobody resumed since is cleared; pending runs keep their state.

use crate::error::Result;
use crate::event::{Event, Token};
use crate::fold::{Applied, InFlightRun, Reason, RunState, Thresholds};
use crate::log::Log;

/// The reason a run a crash interrupted is promoted with.
pub const RESTART_INTERRUPTED: &str = "restart_interrupted";
/// The reason a run a clean shutdown's drain cut is promoted with.
pub const SHUTDOWN_TIMEOUT: &str = "shutdown_timeout";

/// What to do with the runs a start-up found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Runs to promote to resume-pending: key and reason.
    pub promote: Vec<(String, &'static str)>,
    /// Runs to suspend, as loops: their keys.
    pub suspend: Vec<String>,
    /// Runs to clear (complete exactly, not resumed): key and token.
    pub clear: Vec<(String, Token)>,
}

fn reason_for(run: &InFlightRun) -> &'static str {
    match run.reason {
        Reason::Crash => RESTART_INTERRUPTED,
        Reason::Shutdown => SHUTDOWN_TIMEOUT,
    }
}

/// The decisions of an unclean start (see the module's rules). `max_age_ms` is the age limit
/// (`None`: no limit), measured from each run's start to `now_ms`. Pure.
pub fn plan_recovery<'a>(
    runs: impl IntoIterator<Item = &'a InFlightRun>,
    thresholds: Thresholds,
    max_age_ms: Option<u64>,
    now_ms: u64,
) -> Plan {
    plan(runs, thresholds, |run| {
        let age_ms = now_ms.saturating_sub(run.run.started_at_ms);
        match max_age_ms {
            Some(max) if age_ms > max => None,
            _ => Some(reason_for(run)),
        }
    })
}

/// The decisions of a start after a clean shutdown (see the module's rules). Pure.
pub fn plan_discard<'a>(
    runs: impl IntoIterator<Item = &'a InFlightRun>,
    thresholds: Thresholds,
) -> Plan {
    plan(runs, thresholds, |run| match run.reason {
        Reason::Shutdown => Some(SHUTDOWN_TIMEOUT),
        Reason::Crash => None,
    })
}

/// The rules both starts share: running and suspended runs are left alone, loops suspended,
/// pending runs kept; each interrupted run is promoted with the reason `interrupted` gives it,
/// or cleared where it gives none.
fn plan<'a>(
    runs: impl IntoIterator<Item = &'a InFlightRun>,
    thresholds: Thresholds,
    interrupted: impl Fn(&InFlightRun) -> Option<&'static str>,
) -> Plan {
    let mut plan = Plan::default();
    for run in runs {
        let key = &run.run.key;
        match run.state() {
            RunState::Running | RunState::Suspended => {}
            _ if thresholds.is_loop(run) => plan.suspend.push(key.clone()),
            RunState::Pending => {}
            RunState::Interrupted => match interrupted(run) {
                Some(reason) => plan.promote.push((key.clone(), reason)),
                None => plan.clear.push((key.clone(), run.run.token())),
            },
        }
    }
    plan
}

/// What carrying out a plan did: how many runs it promoted, suspended and cleared (a decision a
/// concurrent call made moot, such as a new turn on the key, counts in none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Runs newly promoted to resume-pending.
    pub promoted: usize,
    /// Runs suspended as loops.
    pub suspended: usize,
    /// Runs cleared.
    pub cleared: usize,
}

/// An age limit in seconds as a gateway gives it: at most 0, or infinite, is no limit
/// (`None`); otherwise milliseconds, rounded down. NaN is
/// [`Error::InvalidInput`](crate::Error::InvalidInput) for `max_age_seconds`.
///
/// ```
/// use inflight::turns::max_age_ms;
/// assert_eq!(max_age_ms(3600.0)?, Some(3_600_000));
/// assert_eq!(max_age_ms(0.0)?, None);
/// assert_eq!(max_age_ms(-5.0)?, None);
/// assert!(max_age_ms(f64::NAN).is_err());
/// # Ok::<(), inflight::Error>(())
/// ```
pub fn max_age_ms(seconds: f64) -> Result<Option<u64>> {
    if seconds.is_nan() {
        return Err(crate::Error::InvalidInput {
            field: "max_age_seconds",
            reason: "is NaN; it must be a number of seconds (at most 0: no limit)".into(),
            key: None,
        });
    }
    Ok((seconds > 0.0 && seconds.is_finite()).then_some((seconds * 1000.0) as u64))
}

/// Carries out [`plan_recovery`] on `log`'s runs in flight now: the gateway's
/// `recover_interrupted_turns`. Durable on return.
pub fn recover_interrupted(log: &Log, max_age_ms: Option<u64>) -> Result<Done> {
    let plan = plan_recovery(&log.running(), log.thresholds(), max_age_ms, log.now_ms());
    carry_out(log, plan)
}

/// Carries out [`plan_discard`] on `log`'s runs in flight now: the gateway's
/// `discard_active_turn_markers` after a clean shutdown. Durable on return.
pub fn discard_interrupted(log: &Log) -> Result<Done> {
    let plan = plan_discard(&log.running(), log.thresholds());
    carry_out(log, plan)
}

/// Every decision accepted, then every one waited for: they share frames and syncs.
fn carry_out(log: &Log, plan: Plan) -> Result<Done> {
    let at_ms = log.now_ms();
    let mut tickets = Vec::new();
    for (key, reason) in plan.promote {
        let reason = reason.to_string();
        tickets.push(log.submit(Event::Promoted { key, reason, at_ms })?);
    }
    for key in plan.suspend {
        tickets.push(log.submit(Event::Suspended { key, at_ms })?);
    }
    for (key, token) in plan.clear {
        let (generation, nonce) = (token.generation, token.nonce);
        let event = Event::Finished {
            key,
            generation,
            nonce,
            at_ms,
        };
        tickets.push(log.submit(event)?);
    }
    let mut done = Done::default();
    for ticket in &tickets {
        match log.wait(ticket)? {
            Applied::Promoted => done.promoted += 1,
            Applied::Suspended => done.suspended += 1,
            Applied::Completed => done.cleared += 1,
            _ => {}
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Generation, Pending, Run, UnixMs};

    const T: Thresholds = Thresholds {
        crashes: 3,
        stops: 3,
    };

    fn run(key: &str, started_at_ms: u64) -> InFlightRun {
        let mut run = InFlightRun::new(Run::new(key, "s", Generation(1), UnixMs(started_at_ms)));
        run.running = false;
        run.recoveries = 1;
        run
    }

    #[test]
    fn an_unclean_start_promotes_fresh_runs_clears_old_ones_and_suspends_loops() {
        let fresh = run("fresh", 9_000);
        let old = run("old", 1_000);
        let looping = InFlightRun {
            recoveries: 3,
            ..run("looping", 9_000)
        };
        let drained = InFlightRun {
            reason: Reason::Shutdown,
            ..run("drained", 9_000)
        };
        let pending = InFlightRun {
            pending: Some(Pending {
                reason: SHUTDOWN_TIMEOUT.into(),
                at_ms: 5,
            }),
            ..run("pending", 1_000)
        };
        let live = InFlightRun::new(Run::new("live", "s", Generation(1), UnixMs(1)));
        let all = [fresh, old, looping, drained, pending, live];
        let plan = plan_recovery(&all, T, Some(5_000), 10_000);
        assert_eq!(
            plan.promote,
            [
                ("fresh".to_string(), RESTART_INTERRUPTED),
                ("drained".to_string(), SHUTDOWN_TIMEOUT)
            ]
        );
        assert_eq!(plan.suspend, ["looping"]);
        assert_eq!(
            plan.clear.iter().map(|c| &c.0[..]).collect::<Vec<_>>(),
            ["old"]
        );
        // No age limit: the old one is promoted too.
        let plan = plan_recovery(&all, T, None, 10_000);
        assert_eq!(plan.promote.len(), 3);
        assert!(plan.clear.is_empty());
    }

    #[test]
    fn after_a_clean_shutdown_a_drained_run_is_kept_pending_not_lost() {
        let drained = InFlightRun {
            reason: Reason::Shutdown,
            ..run("drained", 1)
        };
        let crashed = run("crashed", 1);
        let plan = plan_discard(&[drained, crashed], T);
        assert_eq!(plan.promote, [("drained".to_string(), SHUTDOWN_TIMEOUT)]);
        assert_eq!(plan.clear.len(), 1);
    }

    #[test]
    fn an_age_limit_at_most_zero_is_no_limit() {
        assert_eq!(max_age_ms(0.0).unwrap(), None);
        assert_eq!(max_age_ms(f64::INFINITY).unwrap(), None);
        assert_eq!(max_age_ms(1.5).unwrap(), Some(1_500));
    }
}
