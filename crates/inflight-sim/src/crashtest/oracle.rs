//! The oracle of the persistence model: what a recovered log may contain, given what each call
//! returned (O1, O2), and what state it must fold to (O7).

use std::collections::HashMap;
use std::fmt;

use inflight::event::{Event, Run};
use inflight::fold::{Applied, InFlightRun, Pending, Reason};

/// What a call that submitted an event returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned `Ok`: the event must survive every crash.
    Acked,
    /// The call returned an error, or a crash came during it: the event may or may not survive.
    Failed,
}

/// A broken promise, with what is needed to understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// O1: an acknowledged event is missing from the recovered log (or out of order).
    AckedLost {
        /// The event (boxed: a violation is rare, and the `Ok` side of a check is small).
        event: Box<Event>,
    },
    /// O2: the recovered log holds an event that was never submitted, a duplicate, an event out
    /// of submission order, or one that an earlier recovery had already found absent.
    Invented {
        /// The event.
        event: Box<Event>,
    },
    /// O7 or O6: the state or behaviour of the log differs from the model.
    Mismatch {
        /// What differs.
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AckedLost { event } => write!(f, "O1: acknowledged event lost: {event:?}"),
            Violation::Invented { event } => write!(
                f,
                "O2: event never submitted (or duplicated, reordered, resurrected): {event:?}"
            ),
            Violation::Mismatch { detail } => write!(f, "{detail}"),
        }
    }
}

/// Events compare equal for the oracle when they are the same event; a shutdown's and the log's
/// own records' timestamps come from the log's clock, so they match by kind and position alone.
fn same(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (Event::Shutdown { .. }, Event::Shutdown { .. })
        | (Event::Recovered { .. }, Event::Recovered { .. })
        | (Event::Retention { .. }, Event::Retention { .. }) => true,
        _ => a == b,
    }
}

/// A compaction's cut: the first `at` events of the history (and the base) are what its
/// snapshot holds, `model` their state.
#[derive(Clone, Debug)]
struct CutPoint {
    at: usize,
    model: Model,
    /// The compaction returned `Ok`: its snapshot must be what the log recovers from (or a
    /// later one).
    durable: bool,
}

/// Every event submitted since the last recovery, in submission order, with its outcome, and
/// the compactions cut since. After a recovery it is reset to the recovered events, which are
/// durable from then on: an event that was absent then may never reappear. The log's own
/// records (a recovery at each open, a retention at each compaction) are submitted too: the
/// harness knows when the log writes them.
#[derive(Clone, Debug, Default)]
pub struct History {
    events: Vec<(Event, Outcome)>,
    /// The state before the first event: the snapshot the last recovery started from.
    base: Model,
    /// The file name of that snapshot, if any.
    base_snapshot: Option<String>,
    cuts: Vec<CutPoint>,
}

/// Where a recovered log starts: from nothing or the snapshot of the last recovery, or from
/// the snapshot of a compaction cut since.
#[derive(Clone, Debug)]
pub struct Start {
    /// The state the recovered events are folded onto.
    pub model: Model,
    /// Index of the first history event after the start.
    at: usize,
}

impl History {
    /// An empty history: a log that does not exist yet.
    pub fn new() -> History {
        History::default()
    }

    /// A compaction cut the log: the events so far (all acknowledged: a failed one poisons the
    /// handle, and a poisoned handle cannot cut) are what its snapshot will hold.
    pub fn cut(&mut self) {
        let mut model = self.base.clone();
        for event in self.acked() {
            model.apply(event);
        }
        self.cuts.push(CutPoint {
            at: self.events.len(),
            model,
            durable: false,
        });
    }

    /// The last compaction cut returned `Ok`: its snapshot is durable.
    pub fn cut_durable(&mut self) {
        if let Some(cut) = self.cuts.last_mut() {
            cut.durable = true;
        }
    }

    /// Compactions whose snapshot was made durable since the last recovery.
    pub fn durable_cuts(&self) -> usize {
        self.cuts.iter().filter(|c| c.durable).count()
    }

    /// O5: the states a recovery that used `snapshot` (a file name, or none) may start from,
    /// newest first: the newest durable cut or any later one, or, with no durable cut since,
    /// the last recovery's own start. Never a mix, never less.
    pub fn starts(&self, snapshot: Option<&str>) -> Vec<Start> {
        let newest_durable = self.cuts.iter().rposition(|c| c.durable);
        let mut starts = Vec::new();
        if snapshot.is_some() && snapshot != self.base_snapshot.as_deref() {
            // A snapshot written since the last recovery: a cut from the newest durable one on.
            for cut in self.cuts[newest_durable.unwrap_or(0)..].iter().rev() {
                starts.push(Start {
                    model: cut.model.clone(),
                    at: cut.at,
                });
            }
        }
        if newest_durable.is_none() && snapshot == self.base_snapshot.as_deref() {
            starts.push(Start {
                model: self.base.clone(),
                at: 0,
            });
        }
        starts
    }

    /// [`History::check`] of the events after `start`.
    pub fn check_from(&self, start: &Start, recovered: &[Event]) -> Result<(), Violation> {
        History {
            events: self.events[start.at..].to_vec(),
            ..History::default()
        }
        .check(recovered)
    }

    /// How many acknowledged events after `start` are not recovery records.
    pub fn acked_submitted_from(&self, start: &Start) -> usize {
        self.events[start.at..]
            .iter()
            .filter(|(e, o)| *o == Outcome::Acked && !matches!(e, Event::Recovered { .. }))
            .count()
    }

    /// After a successful recovery from `start` (through the snapshot file `snapshot`): the
    /// recovered events are now the durable history, on top of that start.
    pub fn reset_to(&mut self, start: Start, snapshot: Option<String>, recovered: &[Event]) {
        self.base = start.model;
        self.base_snapshot = snapshot;
        self.cuts.clear();
        self.reset(recovered);
    }

    /// The state before the first event (the snapshot the last recovery started from).
    pub fn base(&self) -> &Model {
        &self.base
    }

    /// Records a submitted event and what its call returned.
    pub fn submit(&mut self, event: Event, outcome: Outcome) {
        self.events.push((event, outcome));
    }

    /// The acknowledged events, in order.
    pub fn acked(&self) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(|(_, o)| *o == Outcome::Acked)
            .map(|(e, _)| e)
    }

    /// O1 and O2: `recovered` must be every acknowledged event in order, plus possibly some
    /// failed ones, in submission order, with nothing else.
    pub fn check(&self, recovered: &[Event]) -> Result<(), Violation> {
        let mut next = 0;
        for event in recovered {
            loop {
                let Some((submitted, outcome)) = self.events.get(next) else {
                    return Err(Violation::Invented {
                        event: Box::new(event.clone()),
                    });
                };
                next += 1;
                if same(submitted, event) {
                    break;
                }
                if *outcome == Outcome::Acked {
                    return Err(Violation::AckedLost {
                        event: Box::new(submitted.clone()),
                    });
                }
            }
        }
        match self.events[next..]
            .iter()
            .find(|(_, o)| *o == Outcome::Acked)
        {
            Some((event, _)) => Err(Violation::AckedLost {
                event: Box::new(event.clone()),
            }),
            None => Ok(()),
        }
    }

    /// O3, for media faults: `recovered` may lack acknowledged events (the caller then checks
    /// that the loss was reported, with its place), but may hold nothing that was not submitted,
    /// nothing twice and nothing out of order. Returns the acknowledged events missing.
    pub fn missing_acked(&self, recovered: &[Event]) -> Result<Vec<Event>, Violation> {
        let mut missing = Vec::new();
        let mut next = 0;
        for event in recovered {
            let Some(found) = self.events[next..]
                .iter()
                .position(|(submitted, _)| same(submitted, event))
            else {
                return Err(Violation::Invented {
                    event: Box::new(event.clone()),
                });
            };
            missing.extend(
                self.events[next..next + found]
                    .iter()
                    .filter(|(_, o)| *o == Outcome::Acked)
                    .map(|(e, _)| e.clone()),
            );
            next += found + 1;
        }
        missing.extend(
            self.events[next..]
                .iter()
                .filter(|(_, o)| *o == Outcome::Acked)
                .map(|(e, _)| e.clone()),
        );
        Ok(missing)
    }

    /// After a successful recovery: the recovered events are now the durable history.
    pub fn reset(&mut self, recovered: &[Event]) {
        self.events = recovered
            .iter()
            .map(|e| (e.clone(), Outcome::Acked))
            .collect();
    }
}

/// A second, deliberately plain implementation of the contract's rules, written apart from
/// [`RunningSet`](inflight::RunningSet) (hash maps, no shared code) so that the two can disagree:
/// the harness checks the log's live state and every recovery against it (O7).
///
/// The rules, from the contract: a key's high-water mark is the highest generation of any start
/// or completion by generation seen for it; a start below the mark is stale; any other start
/// becomes the key's running run, keeping the counts and pending state of the run it replaces
/// unless that one was suspended; a completion with no run is unknown; one below the run's
/// generation is stale; any other removes the run; an exact completion removes the run only if
/// generation and nonce are its own; a shutdown marks every running run as interrupted by it.
/// The log's own records: a recovery counts one more crash or graceful stop for every run that
/// was running, which stops running; a retention forgets the marks of keys with no run whose
/// latest event is older than its cut-off. The gateway's decisions (promote, suspend, clear,
/// progress) apply to the key's run when they can, and an adoption becomes the key's run as it
/// was elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Each key's mark: the highest generation, and the latest event's time.
    marks: HashMap<String, (u64, u64)>,
    /// Each key's run in flight.
    running: HashMap<String, ModelRun>,
    stale: u64,
    unknown_completions: u64,
}

/// A run in flight, as the model keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelRun {
    run: Run,
    by_shutdown: bool,
    crashes: u32,
    stops: u32,
    /// Begun or resumed since its last interruption.
    live: bool,
    pending: Option<Pending>,
    suspended: Option<u64>,
}

impl ModelRun {
    fn fresh(run: Run) -> ModelRun {
        ModelRun {
            run,
            by_shutdown: false,
            crashes: 0,
            stops: 0,
            live: true,
            pending: None,
            suspended: None,
        }
    }
}

impl Model {
    /// An empty model: a log with no events.
    pub fn new() -> Model {
        Model::default()
    }

    /// The model of a log holding `events`.
    pub fn of(events: &[Event]) -> Model {
        let mut model = Model::new();
        for event in events {
            model.apply(event);
        }
        model
    }

    /// Applies one event and says what it did, in the log's vocabulary.
    pub fn apply(&mut self, event: &Event) -> Applied {
        match event {
            Event::Started(run) => {
                let mark = self.marks.get(&run.key).map(|m| m.0);
                self.raise(&run.key, run.generation, run.started_at_ms);
                if mark.is_some_and(|m| run.generation < m) {
                    self.stale += 1;
                    return Applied::StaleStart {
                        high_water: mark.unwrap_or(0),
                    };
                }
                let mut new = ModelRun::fresh(run.clone());
                let old = self.running.remove(&run.key);
                if let Some(old) = old.as_ref().filter(|o| o.suspended.is_none()) {
                    new.crashes = old.crashes;
                    new.stops = old.stops;
                    new.pending = old.pending.clone();
                }
                self.running.insert(run.key.clone(), new);
                Applied::Started {
                    superseded: old.map(|o| o.run.generation),
                }
            }
            Event::Completed {
                key,
                generation,
                at_ms,
            } => {
                self.raise(key, *generation, *at_ms);
                let Some(entry) = self.running.get(key) else {
                    self.unknown_completions += 1;
                    return Applied::UnknownCompletion;
                };
                if *generation < entry.run.generation {
                    self.stale += 1;
                    return Applied::StaleCompletion {
                        running_generation: entry.run.generation,
                    };
                }
                self.running.remove(key);
                Applied::Completed
            }
            Event::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => {
                let Some(entry) = self.running.get(key) else {
                    self.unknown_completions += 1;
                    return Applied::UnknownCompletion;
                };
                if entry.run.generation != *generation || entry.run.nonce != *nonce {
                    return Applied::Unmatched {
                        running_generation: Some(entry.run.generation),
                    };
                }
                self.touch(key, *at_ms);
                self.running.remove(key);
                Applied::Completed
            }
            Event::Shutdown { .. } => {
                let mut interrupted = 0;
                for entry in self.running.values_mut().filter(|e| e.live) {
                    entry.by_shutdown = true;
                    interrupted += 1;
                }
                Applied::Shutdown { interrupted }
            }
            Event::Recovered { .. } => {
                let (mut crashed, mut stopped) = (0, 0);
                for entry in self.running.values_mut().filter(|e| e.live) {
                    entry.live = false;
                    if entry.by_shutdown {
                        entry.stops = entry.stops.saturating_add(1);
                        stopped += 1;
                    } else {
                        entry.crashes = entry.crashes.saturating_add(1);
                        crashed += 1;
                    }
                }
                Applied::Recovered { crashed, stopped }
            }
            Event::Retention {
                forget_before_ms, ..
            } => {
                let before = self.marks.len();
                let running = &self.running;
                self.marks.retain(|key, (_, last)| {
                    *last >= *forget_before_ms || running.contains_key(key)
                });
                Applied::Retention {
                    forgotten: before - self.marks.len(),
                }
            }
            Event::Promoted { key, reason, at_ms } => self.decide(key, *at_ms, |e| {
                if e.suspended.is_some() {
                    return None;
                }
                e.pending = Some(Pending {
                    reason: reason.clone(),
                    at_ms: *at_ms,
                });
                Some(Applied::Promoted)
            }),
            Event::Suspended { key, at_ms } => self.decide(key, *at_ms, |e| {
                e.suspended = Some(*at_ms);
                e.pending = None;
                Some(Applied::Suspended)
            }),
            Event::Cleared { key, at_ms } => {
                let applied = self.decide(key, *at_ms, |e| {
                    e.pending.take()?;
                    Some(Applied::Cleared { removed: !e.live })
                });
                if applied == (Applied::Cleared { removed: true }) {
                    self.running.remove(key);
                }
                applied
            }
            Event::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => self.decide(key, *at_ms, |e| {
                if e.run.generation != *generation || e.run.nonce != *nonce {
                    return None;
                }
                e.run.meta = meta.clone();
                Some(Applied::Progressed)
            }),
            Event::Adopted(a) => {
                let key = &a.run.key;
                let mark = self.marks.get(key).map(|m| m.0);
                self.raise(key, a.run.generation, a.at_ms);
                if mark.is_some_and(|m| a.run.generation < m) {
                    self.stale += 1;
                    return Applied::StaleStart {
                        high_water: mark.unwrap_or(0),
                    };
                }
                let old = self.running.remove(key);
                let new = ModelRun {
                    run: a.run.clone(),
                    by_shutdown: a.reason == Reason::Shutdown,
                    crashes: a.recoveries.max(old.as_ref().map_or(0, |o| o.crashes)),
                    stops: a.stops.max(old.as_ref().map_or(0, |o| o.stops)),
                    live: false,
                    pending: a.pending.clone(),
                    suspended: a.suspended_at_ms,
                };
                self.running.insert(key.clone(), new);
                Applied::Adopted {
                    superseded: old.map(|o| o.run.generation),
                }
            }
        }
    }

    /// A decision on the key's run: `f` says what it did, or `None` where it does not apply.
    fn decide(
        &mut self,
        key: &str,
        at_ms: u64,
        f: impl FnOnce(&mut ModelRun) -> Option<Applied>,
    ) -> Applied {
        let Some(entry) = self.running.get_mut(key) else {
            return Applied::Unmatched {
                running_generation: None,
            };
        };
        let generation = entry.run.generation;
        match f(entry) {
            Some(applied) => {
                self.touch(key, at_ms);
                applied
            }
            None => Applied::Unmatched {
                running_generation: Some(generation),
            },
        }
    }

    fn raise(&mut self, key: &str, generation: u64, at_ms: u64) {
        let mark = self
            .marks
            .entry(key.to_string())
            .or_insert((generation, at_ms));
        mark.0 = mark.0.max(generation);
        mark.1 = mark.1.max(at_ms);
    }

    /// The key's latest event is at least `at_ms` (the key has a mark: it has a run).
    fn touch(&mut self, key: &str, at_ms: u64) {
        if let Some(mark) = self.marks.get_mut(key) {
            mark.1 = mark.1.max(at_ms);
        }
    }

    /// Equal but for what a recovery record changes (the counts, and whether a run is still
    /// running), which depends on whether a recovery's record survived.
    pub fn same_ignoring_recoveries(&self, other: &Model) -> bool {
        let zeroed = |m: &Model| {
            let mut m = m.clone();
            for entry in m.running.values_mut() {
                (entry.crashes, entry.stops, entry.live) = (0, 0, false);
            }
            m
        };
        zeroed(self) == zeroed(other)
    }

    /// The marks the model holds, as `(key, generation)` pairs ordered by key.
    pub fn marks(&self) -> Vec<(String, u64)> {
        let mut marks: Vec<(String, u64)> =
            self.marks.iter().map(|(k, m)| (k.clone(), m.0)).collect();
        marks.sort();
        marks
    }

    /// The runs in flight with the reason they would be reported with, ordered by key.
    pub fn running(&self) -> Vec<InFlightRun> {
        let mut runs: Vec<InFlightRun> = self
            .running
            .values()
            .map(|e| InFlightRun {
                run: e.run.clone(),
                reason: if e.by_shutdown {
                    Reason::Shutdown
                } else {
                    Reason::Crash
                },
                recoveries: e.crashes,
                stops: e.stops,
                running: e.live,
                pending: e.pending.clone(),
                suspended_at_ms: e.suspended,
            })
            .collect();
        runs.sort_by(|a, b| a.run.key.cmp(&b.run.key));
        runs
    }

    /// Stale starts plus stale completions.
    pub fn stale_ignored(&self) -> u64 {
        self.stale
    }

    /// Completions of keys with no running run.
    pub fn unknown_completions(&self) -> u64 {
        self.unknown_completions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inflight::event::Run;
    use inflight::event::{Generation, UnixMs};

    fn start(key: &str) -> Event {
        Event::Started(Run::new(key, "s", Generation(1), UnixMs(1)))
    }

    #[test]
    fn acked_events_must_all_be_recovered_in_order() {
        let mut h = History::new();
        h.submit(start("a"), Outcome::Acked);
        h.submit(start("b"), Outcome::Failed);
        h.submit(start("c"), Outcome::Acked);
        assert!(h.check(&[start("a"), start("c")]).is_ok());
        assert!(h.check(&[start("a"), start("b"), start("c")]).is_ok());
        assert!(matches!(
            h.check(&[start("a")]),
            Err(Violation::AckedLost { .. })
        ));
        assert!(matches!(
            h.check(&[start("c"), start("a")]),
            Err(Violation::AckedLost { .. })
        ));
        assert!(matches!(
            h.check(&[start("a"), start("c"), start("c")]),
            Err(Violation::Invented { .. })
        ));
        assert!(matches!(
            h.check(&[start("a"), start("x"), start("c")]),
            Err(Violation::AckedLost { .. }) | Err(Violation::Invented { .. })
        ));
    }

    #[test]
    fn an_event_absent_at_one_recovery_may_not_come_back() {
        let mut h = History::new();
        h.submit(start("a"), Outcome::Acked);
        h.submit(start("b"), Outcome::Failed);
        h.reset(&[start("a")]);
        assert!(matches!(
            h.check(&[start("a"), start("b")]),
            Err(Violation::Invented { .. })
        ));
    }

    #[test]
    fn the_model_follows_the_generation_rules() {
        let run = |key: &str, g| Event::Started(Run::new(key, "s", Generation(g), UnixMs(1)));
        let done = |key: &str, g| Event::Completed {
            key: key.into(),
            generation: g,
            at_ms: 2,
        };
        let mut m = Model::new();
        assert_eq!(m.apply(&done("a", 3)), Applied::UnknownCompletion);
        assert_eq!(m.apply(&run("a", 2)), Applied::StaleStart { high_water: 3 });
        assert_eq!(m.apply(&run("a", 3)), Applied::Started { superseded: None });
        assert_eq!(
            m.apply(&run("a", 4)),
            Applied::Started {
                superseded: Some(3)
            }
        );
        assert_eq!(
            m.apply(&done("a", 3)),
            Applied::StaleCompletion {
                running_generation: 4
            }
        );
        assert_eq!(m.apply(&run("b", 1)), Applied::Started { superseded: None });
        assert_eq!(
            m.apply(&Event::Shutdown { at_ms: 3 }),
            Applied::Shutdown { interrupted: 2 }
        );
        assert_eq!(m.apply(&done("b", 1)), Applied::Completed);
        assert_eq!((m.stale_ignored(), m.unknown_completions()), (2, 1));
        let running = m.running();
        assert_eq!(running.len(), 1);
        assert_eq!(
            (running[0].run.generation, running[0].reason),
            (4, Reason::Shutdown)
        );
    }
}
