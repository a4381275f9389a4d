//! Where a command finds its log: a directory, or with `--database URL --instance ID` an
//! instance's log in a fleet's PostgreSQL database.

use std::path::PathBuf;

use clap::Args;
use inflight::store::{FileSource, LogSource};
use inflight::{Log, Opened, Options};

use super::Failure;

/// A log directory, or an instance's log in a database.
#[derive(Clone, Debug, Args)]
pub(super) struct Source {
    /// The log directory (leave it out with --database and --instance).
    #[arg(required_unless_present = "database", conflicts_with = "database")]
    dir: Option<PathBuf>,
    /// A fleet's PostgreSQL database: use the log of --instance kept there instead of a
    /// directory. A postgres://USER@HOST:PORT/DBNAME URL (?sslmode=verify-full&sslrootcert=FILE,
    /// connect_timeout, statement_timeout), libpq's key=value pairs, or "" for libpq's PG*
    /// environment and ~/.pgpass. See docs/FLEETS.md.
    #[arg(long, value_name = "URL", requires = "instance")]
    database: Option<String>,
    /// The instance whose log to use, with --database.
    #[arg(long, value_name = "ID", requires = "database")]
    instance: Option<String>,
}

impl Source {
    /// The log as reports and errors name it: the directory, or `pg:INSTANCE`.
    pub(super) fn path(&self) -> PathBuf {
        match (&self.dir, &self.instance) {
            (Some(dir), _) => dir.clone(),
            (None, Some(instance)) => PathBuf::from(format!("pg:{instance}")),
            (None, None) => unreachable!("clap requires a directory or --database"),
        }
    }

    /// What a read-only tool reads: the directory (segments mapped), or the instance's rows in
    /// the database.
    pub(super) fn reading(&self) -> Result<Box<dyn LogSource>, Failure> {
        match (&self.dir, &self.database, &self.instance) {
            (Some(dir), _, _) => Ok(Box::new(FileSource::at(dir))),
            (None, Some(database), Some(instance)) => database_source(database, instance),
            _ => unreachable!("clap requires a directory or --database"),
        }
    }

    /// Opens the log read-write (`inflight load`).
    pub(super) fn open(&self, options: Options) -> Result<Opened, Failure> {
        match (&self.dir, &self.database, &self.instance) {
            (Some(dir), _, _) => Ok(Log::open(dir, options)?),
            (None, Some(database), Some(instance)) => open_database(database, instance, options),
            _ => unreachable!("clap requires a directory or --database"),
        }
    }
}

#[cfg(feature = "postgres")]
fn database_source(database: &str, instance: &str) -> Result<Box<dyn LogSource>, Failure> {
    Ok(Box::new(
        inflight_postgres::Fleet::new(database).source(instance)?,
    ))
}

#[cfg(feature = "postgres")]
fn open_database(database: &str, instance: &str, options: Options) -> Result<Opened, Failure> {
    Ok(inflight_postgres::Fleet::new(database).open(instance, options)?)
}

#[cfg(not(feature = "postgres"))]
fn database_source(_: &str, _: &str) -> Result<Box<dyn LogSource>, Failure> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn open_database(_: &str, _: &str, _: Options) -> Result<Opened, Failure> {
    Err(no_postgres())
}

/// A build without the database backend.
#[cfg(not(feature = "postgres"))]
pub(super) fn no_postgres() -> Failure {
    Failure::new(
        2,
        "this inflight was built without the `postgres` feature: --database needs it; build it with its default features (`cargo build --release -p inflight-cli`)",
    )
}
