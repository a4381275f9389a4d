//! The fleet's tables in PostgreSQL: created once per database, checked at every connect.
//!
//! - `inflight_instances`: one row per instance, its fencing epoch (raised by every read-write
//!   open and by the takeover) and, once taken over, by whom and when;
//! - `inflight_files`: an instance's log files by name (segments, snapshots), as a directory
//!   would hold them;
//! - `inflight_chunks`: the bytes written to a file, one row per synced write (a group-commit
//!   batch is one CRC-framed record, so one row), in the order written.

use super::client::Db;
use tokio_postgres::error::SqlState;

use inflight::error::{Error, Result};

/// The version of these tables this build creates and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The statements that create the schema (idempotent: `IF NOT EXISTS`).
pub const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS inflight_schema (
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS inflight_instances (
    instance  text PRIMARY KEY,
    epoch     bigint NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    taken_by  text,
    taken_at  timestamptz
);
CREATE TABLE IF NOT EXISTS inflight_files (
    id       bigserial PRIMARY KEY,
    instance text NOT NULL REFERENCES inflight_instances (instance),
    name     text NOT NULL,
    UNIQUE (instance, name)
);
CREATE TABLE IF NOT EXISTS inflight_chunks (
    file_id bigint NOT NULL REFERENCES inflight_files (id) ON DELETE CASCADE,
    seq     bigserial,
    off     bigint NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (file_id, seq)
);
-- Frames are checksummed and mostly small: compressing them gains nothing.
ALTER TABLE inflight_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
-- Compaction deletes rows as fast as they are written: autovacuum should not wait for a
-- fifth of the table to be dead (the default) before it visits (the writer's own vacuum
-- after a compaction does most of the work; docs/FLEETS.md).
ALTER TABLE inflight_chunks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
";

/// Creates the schema in the database `client` is connected to, in one transaction, or checks
/// the one that is there. Safe to run again, and from several processes at once.
pub(super) fn create(client: &mut Db, database: &str) -> Result<()> {
    let failed = super::connect::failed(database);
    let mut tx = client.transaction().map_err(failed)?;
    // Two creators at once would race on the catalog: one waits for the other.
    tx.execute("SELECT pg_advisory_xact_lock(7236634526823940195)", &[])
        .map_err(failed)?;
    tx.batch_execute(SCHEMA_SQL).map_err(failed)?;
    let versions: Vec<i32> = tx
        .query("SELECT version FROM inflight_schema", &[])
        .map_err(failed)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    match versions.as_slice() {
        [] => {
            tx.execute(
                "INSERT INTO inflight_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .map_err(failed)?;
        }
        [SCHEMA_VERSION] => {}
        other => return Err(version_error(database, other)),
    }
    tx.commit().map_err(failed)
}

/// Checks that the database holds the schema this build reads.
pub(super) fn check(client: &mut Db, database: &str) -> Result<()> {
    let rows = match client.query("SELECT version FROM inflight_schema", &[]) {
        Ok(rows) => rows,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            return Err(Error::NoSchema {
                database: database.to_string(),
                detail: "there is no table inflight_schema".to_string(),
            });
        }
        Err(e) => return Err(super::connect::failed(database)(e)),
    };
    let versions: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
    match versions.as_slice() {
        [SCHEMA_VERSION] => Ok(()),
        other => Err(version_error(database, other)),
    }
}

fn version_error(database: &str, versions: &[i32]) -> Error {
    Error::NoSchema {
        database: database.to_string(),
        detail: format!(
            "inflight_schema holds {versions:?}, and this build reads version {SCHEMA_VERSION} only"
        ),
    }
}
