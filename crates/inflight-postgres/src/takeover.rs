//! Takeover: a surviving instance fences a dead one's log in one transaction, then replays it.
//!
//! The fence is the instance's row: the takeover raises its epoch and records who took it,
//! under the row's exclusive lock. Every change the old owner makes checks the epoch under a
//! share lock on the same row in the same transaction as the change, so each of its commits
//! either came before the takeover (and the replay, which reads after the takeover committed,
//! sees it) or inserts nothing and fails with [`Error::Fenced`]. No clock is involved.

use super::client::{Db, Tx};
use serde::Serialize;

use super::connect::{check_instance, connect_checked, failed};
use super::store::{LOCK_SQL, UNLOCK_SQL};
use super::{Fleet, PgSource};
use inflight::environment::now_ms;
use inflight::error::{Error, Result};
use inflight::event::UnixMs;
use inflight::fold::RunningSet;
use inflight::inspect::recover_frozen;
use inflight::recovery::{Policy, RecoveryReport};

/// What a takeover found and did ([`Fleet::take_over`]).
#[derive(Clone, Debug, Serialize)]
pub struct TakenOver {
    /// The instance taken over.
    pub instance: String,
    /// The instance that took it over, as it named itself.
    pub by: String,
    /// The fencing epoch the instance is at now; the old owner's writes carry an older one.
    pub epoch: u64,
    /// Whether the old owner still held its log open (its connection was alive: a zombie,
    /// or a machine that only looked dead). It is fenced all the same.
    pub was_open: bool,
    /// Set when this taker had already taken the instance over before this call (a repeat):
    /// the report is the same frozen log's again, and its runs may already be resumed.
    pub taken_before: Option<String>,
    /// The dead instance's recovery: its interrupted runs, each with its reason and its loop
    /// counts (this takeover counted as one more crash for each run that was running), the
    /// loops,
    /// a torn tail (reported, left in place: the log is read-only now), damage, coverage.
    pub report: RecoveryReport,
    /// The state its log folds to (for the time-window fallback).
    #[serde(skip)]
    pub set: RunningSet,
}

/// Whether a takeover's taker must be an instance the database knows already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Taker {
    /// The taker opened its own log before (the surviving instance does, at its start-up);
    /// an unknown taker is [`Error::UnknownTaker`], most often a typo that would hand the
    /// runs to nobody.
    #[default]
    Existing,
    /// The taker is created (as an instance with no log yet) if the database has none of that
    /// name: for an operator taking runs over on behalf of an instance that starts later.
    CreateIfMissing,
}

impl Fleet {
    /// Takes over the log of `dead_instance` for the instance `by`: fences it and replays it.
    /// From the moment this call's transaction commits, any append, compaction or open by the
    /// old instance fails with [`Error::Fenced`] and leaves nothing the new owner can see.
    /// Returns the runs it had in flight, exactly what it acknowledged, for `by` to resume
    /// under its own log: record each there with [`Log::adopt`](inflight::Log::adopt) before
    /// acting on it, which carries its loop counts and its pending or suspended state, so that
    /// a run that takes down one instance after another is counted as it would be on one.
    ///
    /// A takeover by `by` of an instance `by` already took over fences nothing new and reports
    /// its frozen log again ([`TakenOver::taken_before`]), so a survivor that crashed
    /// mid-takeover can repeat it; another taker gets [`Error::AlreadyTakenOver`] (its runs are
    /// the first taker's: take over that one if it died too). Two takeovers at once are
    /// ordered by the instance's row lock: one wins, the other gets that error.
    /// [`Error::NoInstance`] if the instance never opened a log there; [`Error::NotFound`] if
    /// it opened one but never wrote a segment (nothing was acknowledged: the time-window
    /// fallback's `no-log` case).
    ///
    /// The taker must be an instance of the database that is not retired itself (taken over
    /// by another): an unknown one is [`Error::UnknownTaker`] (see [`Fleet::take_over_as`] to
    /// create it), a retired one [`Error::Fenced`], and nothing is fenced.
    pub fn take_over(&self, dead_instance: &str, by: &str) -> Result<TakenOver> {
        self.take_over_as(dead_instance, by, Taker::Existing)
    }

    /// [`Fleet::take_over`], with the taker created when it is missing and `taker` says so.
    pub fn take_over_as(&self, dead_instance: &str, by: &str, taker: Taker) -> Result<TakenOver> {
        let database = self.database.as_str();
        check_instance("instance", dead_instance)?;
        check_instance("by", by)?;
        if dead_instance == by {
            return Err(Error::InvalidInput {
                field: "by",
                reason: format!(
                    "is the instance taken over ({by:?}); an instance takes over another one"
                ),
                key: None,
            });
        }
        let span = tracing::info_span!(
            "takeover",
            instance = dead_instance,
            by,
            epoch = tracing::field::Empty,
            running = tracing::field::Empty,
        )
        .entered();
        let (mut client, shown) = connect_checked(database)?;
        let fence = fence(&mut client, &shown, dead_instance, by, taker)?;
        inflight::metrics::taken_over();
        span.record("epoch", fence.epoch);
        let source = PgSource::new(client, dead_instance);
        // Read once: the log is fenced, so nothing changes it under the reading. The takeover
        // counts as one more recovery of each run in flight, as an open counts itself (not
        // written: the taker records what it resumes in its own log).
        let frozen = recover_frozen(&source, Policy::SkipDamaged, UnixMs(now_ms()))?;
        let (report, set) = (frozen.report, frozen.set);
        span.record("running", report.running.len());
        tracing::info!(
            instance = dead_instance,
            by,
            epoch = fence.epoch,
            running = report.running.len(),
            was_open = fence.was_open,
            "took over"
        );
        Ok(TakenOver {
            instance: dead_instance.to_string(),
            by: by.to_string(),
            epoch: fence.epoch,
            was_open: fence.was_open,
            taken_before: fence.taken_before,
            report,
            set,
        })
    }
}

/// What the fence found and did.
struct Fence {
    epoch: u64,
    was_open: bool,
    taken_before: Option<String>,
}

/// The takeover's one transaction: the instance's row locked, checked, its epoch raised and
/// its taker recorded (unless this taker had taken it already), committed.
fn fence(
    client: &mut Db,
    shown: &str,
    dead_instance: &str,
    by: &str,
    taker: Taker,
) -> Result<Fence> {
    let failed = failed(shown);
    let mut tx = client.transaction().map_err(failed)?;
    // The fence must survive a crash of the server whatever its default (with
    // synchronous_commit off, a lost epoch would unfence the old owner). A lock held by a
    // session that stalls is not waited for without end: the session's statement timeout
    // bounds the wait, and the server ends a stalled holder's idle transaction after 10 s.
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .map_err(failed)?;
    let row = tx
        .query_opt(
            "SELECT epoch, taken_by FROM inflight_instances WHERE instance = $1 FOR UPDATE",
            &[&dead_instance],
        )
        .map_err(failed)?;
    let Some(row) = row else {
        return Err(Error::NoInstance {
            database: shown.to_string(),
            instance: dead_instance.to_string(),
        });
    };
    check_taker(&mut tx, shown, by, taker)?;
    let taken_before: Option<String> = row.get(1);
    if let Some(first) = &taken_before
        && first != by
    {
        // Its runs are the first taker's: a second taker must not resume them too.
        return Err(Error::AlreadyTakenOver {
            instance: dead_instance.to_string(),
            by: first.clone(),
            epoch: row.get::<_, i64>(0) as u64,
        });
    }
    let got_lock: bool = tx
        .query_one(LOCK_SQL, &[&dead_instance])
        .map_err(failed)?
        .get(0);
    if got_lock {
        // Let go of it before the commit: an open of the instance racing this takeover then
        // waits for the row and is refused as fenced, rather than as locked.
        tx.query_one(UNLOCK_SQL, &[&dead_instance])
            .map_err(failed)?;
    }
    let epoch: i64 = if taken_before.is_some() {
        row.get(0)
    } else {
        tx.query_one(
            "UPDATE inflight_instances SET epoch = epoch + 1, taken_by = $2, taken_at = now()
             WHERE instance = $1 RETURNING epoch",
            &[&dead_instance, &by],
        )
        .map_err(failed)?
        .get(0)
    };
    tx.commit().map_err(failed)?;
    Ok(Fence {
        epoch: epoch as u64,
        was_open: !got_lock,
        taken_before,
    })
}

/// The taker is an instance of the database, not retired (in the takeover's transaction, its
/// row shared-locked, so a takeover of the taker itself is ordered with this one); created
/// first when `taker` says so.
fn check_taker(tx: &mut Tx<'_>, shown: &str, by: &str, taker: Taker) -> Result<()> {
    let failed = failed(shown);
    if taker == Taker::CreateIfMissing {
        tx.execute(
            "INSERT INTO inflight_instances (instance, epoch) VALUES ($1, 0)
             ON CONFLICT DO NOTHING",
            &[&by],
        )
        .map_err(&failed)?;
    }
    let row = tx
        .query_opt(
            "SELECT epoch, taken_by FROM inflight_instances WHERE instance = $1 FOR SHARE",
            &[&by],
        )
        .map_err(&failed)?;
    let Some(row) = row else {
        return Err(Error::UnknownTaker {
            database: shown.to_string(),
            by: by.to_string(),
        });
    };
    match row.get::<_, Option<String>>(1) {
        // Retired: taken over itself, it can never write again, so it may not take runs.
        Some(retired_by) => Err(Error::Fenced {
            instance: by.to_string(),
            by: retired_by,
            epoch: row.get::<_, i64>(0) as u64,
        }),
        None => Ok(()),
    }
}
