//! The oracle of the persistence model: what a recovered log may contain, given what each call
//! returned (O1, O2), and what state it must fold to (O7).

use std::fmt;

use crate::event::Event;
use crate::fold::RunningSet;

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
        /// The event.
        event: Event,
    },
    /// O2: the recovered log holds an event that was never submitted, a duplicate, an event out
    /// of submission order, or one that an earlier recovery had already found absent.
    Invented {
        /// The event.
        event: Event,
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

/// Events compare equal for the oracle when they are the same event; a shutdown's timestamp
/// comes from the log's clock, so shutdowns match by position alone.
fn same(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (Event::Shutdown { .. }, Event::Shutdown { .. }) => true,
        _ => a == b,
    }
}

/// Every event submitted since the last recovery, in submission order, with its outcome. After a
/// recovery it is reset to the recovered events, which are durable from then on: an event that
/// was absent then may never reappear.
#[derive(Clone, Debug, Default)]
pub struct History {
    events: Vec<(Event, Outcome)>,
}

impl History {
    /// An empty history: a log that does not exist yet.
    pub fn new() -> History {
        History::default()
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
                        event: event.clone(),
                    });
                };
                next += 1;
                if same(submitted, event) {
                    break;
                }
                if *outcome == Outcome::Acked {
                    return Err(Violation::AckedLost {
                        event: submitted.clone(),
                    });
                }
            }
        }
        match self.events[next..]
            .iter()
            .find(|(_, o)| *o == Outcome::Acked)
        {
            Some((event, _)) => Err(Violation::AckedLost {
                event: event.clone(),
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
                    event: event.clone(),
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

/// The fold of `events` (the generation rules): what a log holding them must report (O7).
pub fn fold(events: &[Event]) -> RunningSet {
    let mut set = RunningSet::new();
    for e in events {
        set.apply(e);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Run;

    fn start(key: &str) -> Event {
        Event::Started(Run::new(key, "s", 1, 1))
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
}
