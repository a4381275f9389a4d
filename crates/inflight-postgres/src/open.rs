//! Opening an instance's log in the database: read-write (the owner) and read-only (the
//! offline tools).

use std::sync::Arc;

use super::client::Db;
use super::connect::{check_instance, connect_checked, failed};
use super::{Fleet, PgStore};
use inflight::error::Result;
use inflight::inspect::{ReadOnly, read_only_from};
use inflight::log::{Log, Opened};
use inflight::options::Options;
use inflight::recovery::Policy;

impl Fleet {
    /// Opens (creating if missing) the log of `instance` in the database, and replays it:
    /// [`Log::open`] for a fleet. The schema must be there ([`Fleet::create_schema`];
    /// [`Error::NoSchema`](inflight::Error::NoSchema) otherwise).
    ///
    /// The open takes the instance's advisory lock, held for the connection's life, so a second
    /// opener of the same instance gets [`Error::Locked`](inflight::Error::Locked) while this one
    /// lives, and raises the instance's fencing epoch. An instance that was taken over
    /// ([`Fleet::take_over`]) is refused with [`Error::Fenced`](inflight::Error::Fenced): its runs
    /// belong to the instance that took them over; start under a new id.
    ///
    /// Each group commit is one transaction, and a call returns once it committed: durable as
    /// the server's `synchronous_commit` makes a commit (docs/FLEETS.md). A failed or lost
    /// commit poisons the handle as a failed fdatasync does; a reopen reads what committed.
    pub fn open(&self, instance: &str, options: Options) -> Result<Opened> {
        Log::open_in(Arc::new(self.open_store(instance)?), options)
    }

    /// Replays the log of `instance` without taking its lock or changing a row:
    /// [`inspect::read_only`](inflight::inspect::read_only) for a fleet, the command line's
    /// `inflight replay --database URL --instance ID`. Safe on a live instance's log.
    pub fn read_only(&self, instance: &str, policy: Policy) -> Result<ReadOnly> {
        read_only_from(&self.source(instance)?, policy)
    }

    /// The store of `instance`'s log, for writing: what [`Fleet::open`] opens, for
    /// [`Log::open_in`] (the instance's row is created if missing). It changes nothing until
    /// the log acquires it ([`LogStore::acquire`](inflight::store::LogStore::acquire): the
    /// advisory lock and a raised epoch), and it is acquired once.
    pub fn open_store(&self, instance: &str) -> Result<PgStore> {
        check_instance("instance", instance)?;
        let (mut client, shown) = connect_checked(&self.database)?;
        let failed = failed(&shown);
        client
            .execute(
                "INSERT INTO inflight_instances (instance, epoch) VALUES ($1, 0)
                 ON CONFLICT DO NOTHING",
                &[&instance],
            )
            .map_err(failed)?;
        warn_if_not_durable(&mut client, &shown);
        PgStore::new(client, instance, &self.database).map_err(failed)
    }
}

/// Warns when the server's settings void the promise that an acknowledged event survives a
/// crash of the server (docs/FLEETS.md): `synchronous_commit = off`, `fsync = off`.
fn warn_if_not_durable(client: &mut Db, database: &str) {
    let Ok(row) = client.query_one(
        "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
        &[],
    ) else {
        return;
    };
    for (i, setting) in ["synchronous_commit", "fsync"].into_iter().enumerate() {
        if row.get::<_, String>(i) == "off" {
            tracing::warn!(
                database,
                setting,
                value = "off",
                "the server acknowledges commits it may lose in a crash: an event that returned Ok may be missing after one"
            );
        }
    }
}
