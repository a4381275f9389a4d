//! Takeover: a surviving instance fences a dead one's log in one transaction, then replays it.
//!
//! The fence is the instance's row: the takeover raises its epoch and records who took it,
//! under the row's exclusive lock. Every change the old owner makes checks the epoch under a
//! share lock on the same row in the same transaction as the change, so each of its commits
//! either came before the takeover (and the replay, which reads after the takeover committed,
//! sees it) or inserts nothing and fails with [`Error::Fenced`]. No clock is involved.

use serde::Serialize;

use super::connect::{check_instance, connect_checked};
use super::storage::LOCK_SQL;
use super::{PgStorage, instance_path};
use crate::environment::now_ms;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::fold::RunningSet;
use crate::log::Log;
use crate::read::files::{LogReader, Start};
use crate::recovery::{Policy, RecoveryReport, replay};

/// What a takeover found and did ([`Log::take_over`]).
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
    /// Set when the instance had already been taken over (by this name or another) before this
    /// call: the report is the same frozen log's again, and its runs may already be resumed
    /// there.
    pub taken_before: Option<String>,
    /// The dead instance's recovery: its interrupted runs, each with its reason and the
    /// consecutive recoveries that found it (this takeover counted as one), the crash loops,
    /// a torn tail (reported, left in place: the log is read-only now), damage, coverage.
    pub report: RecoveryReport,
    /// The state its log folds to (for the time-window fallback).
    #[serde(skip)]
    pub set: RunningSet,
}

impl Log {
    /// Takes over the log of `dead_instance` in `database` for the instance `by` (feature
    /// `postgres`): fences it and replays it. From the moment this call's transaction commits,
    /// any append, compaction or open by the old instance fails with [`Error::Fenced`] and
    /// leaves nothing the new owner can see. Returns the runs it had in flight, exactly what it
    /// acknowledged, for `by` to resume under its own log (record each there with
    /// [`Log::mark_running`] before acting on it).
    ///
    /// A takeover of an instance already taken over fences nothing new and reports its frozen
    /// log again ([`TakenOver::taken_before`]), so a survivor that crashed mid-takeover can
    /// repeat it. [`Error::NoInstance`] if the instance never opened a log there;
    /// [`Error::NotFound`] if it opened one but never wrote a segment (nothing was
    /// acknowledged: the time-window fallback's `no-log` case).
    pub fn take_over(database: &str, dead_instance: &str, by: &str) -> Result<TakenOver> {
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
        let failed = |e: postgres::Error| Error::Database {
            database: shown.clone(),
            cause: super::connect::describe(&e),
        };
        let mut tx = client.transaction().map_err(failed)?;
        let row = tx
            .query_opt(
                "SELECT epoch, taken_by FROM inflight_instances WHERE instance = $1 FOR UPDATE",
                &[&dead_instance],
            )
            .map_err(failed)?;
        let Some(row) = row else {
            return Err(Error::NoInstance {
                database: shown,
                instance: dead_instance.to_string(),
            });
        };
        let taken_before: Option<String> = row.get(1);
        let got_lock: bool = tx
            .query_one(LOCK_SQL, &[&dead_instance])
            .map_err(failed)?
            .get(0);
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
        // The advisory lock is the session's, not the transaction's: let go of it.
        if got_lock {
            client
                .query_one(
                    "SELECT pg_advisory_unlock(hashtextextended($1, 7236634526))",
                    &[&dead_instance],
                )
                .map_err(failed)?;
        }
        crate::metrics::taken_over();
        span.record("epoch", epoch);
        let storage = PgStorage::new(client, dead_instance).map_err(failed)?;
        let root = instance_path(dead_instance);
        let names = LogReader::new(&storage, &root, Start::Newest).list_log()?;
        let replayed = replay(
            &storage,
            &root,
            &names,
            Policy::SkipDamaged,
            None,
            &mut |_, _| {},
        )?;
        let mut set = replayed.set;
        if !set.is_empty() {
            // The takeover is a recovery of these runs: each counts one more, as an open would
            // (crash-loop detection); it is not written, the log being fenced.
            set.apply(&Event::Recovered { at_ms: now_ms() });
        }
        let coverage = replayed.found.coverage_since_ms;
        let report = RecoveryReport::of(
            replayed.found,
            &set,
            false,
            coverage,
            crate::limits::CRASH_LOOP_THRESHOLD_DEFAULT,
        );
        span.record("running", report.running.len());
        tracing::info!(
            instance = dead_instance,
            by,
            epoch,
            running = report.running.len(),
            was_open = !got_lock,
            "took over"
        );
        Ok(TakenOver {
            instance: dead_instance.to_string(),
            by: taken_before.clone().unwrap_or_else(|| by.to_string()),
            epoch: epoch as u64,
            was_open: !got_lock,
            taken_before,
            report,
            set,
        })
    }
}
