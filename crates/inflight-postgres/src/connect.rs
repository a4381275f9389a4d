//! Reaching the database: the connection, the instance ids, the schema, the list of
//! instances, and forgetting a retired one.

use std::path::PathBuf;

use super::client::{Db, DbError};

use super::{Fleet, PgSource, schema};
use inflight::error::{Error, Result};
use inflight::limits::INSTANCE_BYTES_MAX;

/// The path under which an instance's log is named in reports and errors: `pg:INSTANCE`
/// (its files are `pg:INSTANCE/NAME`).
pub fn instance_path(instance: &str) -> PathBuf {
    PathBuf::from(format!("pg:{instance}"))
}

/// Connects to `database` (a `postgres://` URL, `key=value` pairs, or empty for libpq's
/// environment; see [`client::connect`](super::client::connect)), and returns the client,
/// which names the database as messages show it.
pub(super) fn connect(database: &str) -> Result<(Db, String)> {
    let db = super::client::connect(database)?;
    let shown = db.shown().to_string();
    Ok((db, shown))
}

/// The error of a failed statement on `database` (as messages name it): for `map_err`.
pub(super) fn failed(database: &str) -> impl Fn(DbError) -> Error + Copy + '_ {
    move |e| Error::Database {
        database: database.to_string(),
        cause: e.to_string(),
    }
}

/// Checks an instance id: 1 to [`INSTANCE_BYTES_MAX`] bytes of ASCII letters, digits and
/// `-_.:@`.
pub(super) fn check_instance(field: &'static str, id: &str) -> Result<()> {
    let bad = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)));
    let reason = if id.is_empty() {
        Some("is empty".to_string())
    } else if id.len() > INSTANCE_BYTES_MAX {
        Some(format!(
            "is {} bytes long; at most {INSTANCE_BYTES_MAX}",
            id.len()
        ))
    } else {
        bad.map(|c| {
            format!("{id:?} holds {c:?}; an instance id is ASCII letters, digits and -_.:@")
        })
    };
    match reason {
        Some(reason) => Err(Error::InvalidInput {
            field,
            reason,
            key: None,
        }),
        None => Ok(()),
    }
}

/// Connects to `database`, checks its schema and returns the client.
pub(super) fn connect_checked(database: &str) -> Result<(Db, String)> {
    let (mut client, shown) = connect(database)?;
    schema::check(&mut client, &shown)?;
    Ok((client, shown))
}

impl Fleet {
    /// Creates the fleet's tables in the database, or checks the ones there (safe to repeat,
    /// and from several processes at once). The command line's `inflight fleet init`.
    pub fn create_schema(&self) -> Result<()> {
        let (mut client, shown) = connect(&self.database)?;
        schema::create(&mut client, &shown)
    }

    /// The reading side of `instance`'s log, for the offline tools
    /// ([`Reader`](inflight::inspect::Reader), [`read_only_from`](inflight::inspect::read_only_from),
    /// [`state_at`](inflight::inspect::state_at)): it takes no lock and changes no row.
    /// [`Error::NoInstance`] if it never opened a log there.
    pub fn source(&self, instance: &str) -> Result<PgSource> {
        check_instance("instance", instance)?;
        let (mut client, shown) = connect_checked(&self.database)?;
        let known = client
            .query_opt(
                "SELECT 1 FROM inflight_instances WHERE instance = $1",
                &[&instance],
            )
            .map_err(failed(&shown))?;
        if known.is_none() {
            return Err(Error::NoInstance {
                database: shown,
                instance: instance.to_string(),
            });
        }
        Ok(PgSource::new(client, instance))
    }

    /// The instances that have a log in the database, by id. The command line's `inflight
    /// fleet list`.
    pub fn instances(&self) -> Result<Vec<Instance>> {
        let (mut client, shown) = connect_checked(&self.database)?;
        let rows = client
            .query(
                "SELECT i.instance, i.epoch, i.taken_by,
                        EXISTS (SELECT 1 FROM pg_locks l
                                WHERE l.locktype = 'advisory' AND l.granted
                                  AND l.objsubid = 1
                                  AND l.database = (SELECT oid FROM pg_database
                                                    WHERE datname = current_database())
                                  AND ((l.classid::bigint << 32) | l.objid::bigint)
                                      = hashtextextended(i.instance, 7236634526)),
                        (SELECT count(*) FROM inflight_files f WHERE f.instance = i.instance),
                        (SELECT coalesce(sum(length(c.data)), 0)::bigint
                           FROM inflight_files f JOIN inflight_chunks c ON c.file_id = f.id
                          WHERE f.instance = i.instance)
                 FROM inflight_instances i ORDER BY i.instance",
                &[],
            )
            .map_err(failed(&shown))?;
        Ok(rows
            .iter()
            .map(|r| Instance {
                instance: r.get(0),
                epoch: r.get::<_, i64>(1) as u64,
                taken_by: r.get(2),
                open: r.get(3),
                files: r.get::<_, i64>(4) as u64,
                bytes: r.get::<_, i64>(5) as u64,
            })
            .collect())
    }

    /// Removes the log of a retired instance (one taken over: its runs are its taker's now)
    /// from the database, keeping its row, so its fence stays: the id can never write again,
    /// and an open of it still fails with [`Error::Fenced`]. Deleting the rows by hand would
    /// drop the fence (a new row starts at epoch 0). The frozen log is gone with it: a
    /// takeover repeated afterwards finds nothing ([`Error::NotFound`]), so forget an instance
    /// once its taker has recorded its runs. An instance that was not taken over is refused
    /// ([`Error::InvalidInput`]: its log may be live); an unknown one is
    /// [`Error::NoInstance`]. Forgetting twice removes nothing the second time. One
    /// transaction: all of the log, or nothing. The command line's `inflight fleet forget`.
    pub fn forget(&self, instance: &str) -> Result<Forgotten> {
        check_instance("instance", instance)?;
        let (mut client, shown) = connect_checked(&self.database)?;
        let failed = failed(&shown);
        let mut tx = client.transaction().map_err(failed)?;
        let row = tx
            .query_opt(
                "SELECT taken_by FROM inflight_instances WHERE instance = $1 FOR UPDATE",
                &[&instance],
            )
            .map_err(failed)?;
        let Some(row) = row else {
            return Err(Error::NoInstance {
                database: shown.clone(),
                instance: instance.to_string(),
            });
        };
        let Some(taken_by) = row.get::<_, Option<String>>(0) else {
            return Err(Error::InvalidInput {
                field: "instance",
                reason: format!(
                    "{instance:?} was not taken over: its log may be live, and its runs are its own; take it over first (`inflight takeover {instance} --by SURVIVOR`)"
                ),
                key: None,
            });
        };
        let sizes = tx
            .query_one(
                "SELECT count(DISTINCT f.id), coalesce(sum(length(c.data)), 0)::bigint
                   FROM inflight_files f LEFT JOIN inflight_chunks c ON c.file_id = f.id
                  WHERE f.instance = $1",
                &[&instance],
            )
            .map_err(failed)?;
        // The chunks go with their files (ON DELETE CASCADE); the instance's row stays.
        tx.execute(
            "DELETE FROM inflight_files WHERE instance = $1",
            &[&instance],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(Forgotten {
            instance: instance.to_string(),
            taken_by,
            files: sizes.get::<_, i64>(0) as u64,
            bytes: sizes.get::<_, i64>(1) as u64,
        })
    }
}

/// An instance of a fleet, as [`Fleet::instances`] lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Instance {
    /// Its id.
    pub instance: String,
    /// Its fencing epoch: raised by each read-write open and by a takeover.
    pub epoch: u64,
    /// Who took it over, if anyone did (its log is then read-only for good).
    pub taken_by: Option<String>,
    /// Whether a process holds its log open now (its advisory lock is held).
    pub open: bool,
    /// Files (segments and snapshots) its log holds.
    pub files: u64,
    /// Bytes those files hold.
    pub bytes: u64,
}

/// What [`Fleet::forget`] removed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    /// The instance whose log was removed.
    pub instance: String,
    /// The instance that had taken it over (its fence stays).
    pub taken_by: String,
    /// Files removed (segments, snapshots).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}
