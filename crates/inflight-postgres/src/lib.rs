//! `inflight-postgres`: the PostgreSQL store of [`inflight`]. Each instance of a gateway
//! keeps its log in a shared database under its own instance id, and a surviving instance can
//! take over a dead one's runs exactly, with the dead one fenced.
//!
//! The log is the same: the same segments of CRC-framed records and JSON snapshots, stored as
//! rows instead of files, so one writer, one reader and one fold serve a directory and a
//! database. The writer goes through [`PgStore`], the library's log-level store seam
//! ([`LogStore`](inflight::store::LogStore)) answered with rows; the offline tools read
//! through [`PgSource`], its reading side ([`LogSource`](inflight::store::LogSource)). A group
//! commit is one transaction holding the batch's one record, and a call returns once it
//! committed.
//!
//! A [`Fleet`] is the database, and the fleet's operations on it:
//! - [`Fleet::create_schema`] once per database (`inflight fleet init`);
//! - [`Fleet::open`] instead of [`Log::open`](inflight::Log::open): the instance's log,
//!   replayed, ready for appends;
//! - [`Fleet::take_over`] (`inflight takeover`): a dead instance's running set, with reasons
//!   and crash-loop counts, and from the moment it commits, nothing the dead instance writes
//!   is accepted ([`Error::Fenced`](inflight::Error::Fenced));
//! - [`Fleet::instances`] (`inflight fleet list`) and [`Fleet::forget`] (`inflight fleet
//!   forget`): a retired instance's log removed, its fence kept;
//! - [`Fleet::read_only`] and [`Fleet::source`] for the offline tools (`inflight
//!   replay --database URL --instance ID`, and `dump`, `verify`, `stats`).
//!
//! docs/FLEETS.md has the tables, the fencing argument, what `synchronous_commit` means for
//! the promise, and the figures.
//!
//! ```no_run
//! use inflight::{Generation, Opened, Options, Run, UnixMs};
//! use inflight_postgres::Fleet;
//!
//! let fleet = Fleet::new("postgres://gateway@127.0.0.1/gateway");
//! fleet.create_schema()?; // once; safe to repeat
//! let Opened { log, report } = fleet.open("gateway-1", Options::default())?;
//! log.mark_running(Run::new("agent:main:http:c-5", "s-1", Generation(1), UnixMs(1_000)))?;
//! # drop((log, report));
//!
//! // On another machine, once gateway-1 is known dead:
//! let taken = fleet.take_over("gateway-1", "gateway-2")?;
//! for run in &taken.report.running {
//!     println!("resume {} here (reason {}, recoveries {})", run.run.key, run.reason, run.recoveries);
//! }
//! # Ok::<(), inflight::Error>(())
//! ```

#![warn(missing_docs)]

mod client;
mod connect;
mod conninfo;
mod open;
mod schema;
mod source;
mod store;
mod takeover;
mod tls;
mod vacuum;

pub use client::GRACE;
pub use connect::{Forgotten, Instance, instance_path};
pub use conninfo::{CONNECT_TIMEOUT, STATEMENT_TIMEOUT};
pub use schema::{SCHEMA_SQL, SCHEMA_VERSION};
pub use source::PgSource;
pub use store::PgStore;
pub use takeover::{TakenOver, Taker};
pub use vacuum::VACUUM_INTERVAL;

/// A fleet's database, and the fleet's operations on it: the schema, an instance's own log, the
/// list of instances, a takeover, a read-only replay of an instance's log, forgetting a
/// retired one. A `Fleet` is only where the database is (a `postgres://` URL, `key=value`
/// pairs, or empty for libpq's environment): cheap to clone, and each call connects on its
/// own (an open log keeps its connection).
#[derive(Clone, PartialEq, Eq)]
pub struct Fleet {
    database: String,
}

impl Fleet {
    /// The fleet whose database is at `database`. Nothing is connected until a call.
    pub fn new(database: impl AsRef<str>) -> Fleet {
        Fleet {
            database: database.as_ref().to_string(),
        }
    }

    /// Where the database is, as given (it may hold a password: do not log it).
    pub fn database(&self) -> &str {
        &self.database
    }
}

/// Shows no address: it may hold a password.
impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// The examples of `docs/FLEETS.md`, compiled as doctests (they need a server to run).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/FLEETS.md")]
pub struct FleetsDoctests;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct PostgresReadmeDoctests;
