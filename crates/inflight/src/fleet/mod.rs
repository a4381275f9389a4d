//! Fleets (feature `postgres`): each instance of a gateway keeps its log in a shared
//! PostgreSQL database under its own instance id, and a surviving instance can take over a
//! dead one's runs exactly, with the dead one fenced.
//!
//! The log is the same: the same segments of CRC-framed records and JSON snapshots, stored as
//! rows instead of files ([`PgStorage`], behind the same [`Storage`](crate::Storage) seam), so
//! one writer, one reader and one fold serve a directory and a database. A group commit is one
//! transaction holding the batch's one record, and a call returns once it committed.
//!
//! - [`create_schema`] once per database (`inflight fleet init`);
//! - [`Log::open_database`](crate::Log::open_database) instead of [`Log::open`](crate::Log::open):
//!   the instance's log, replayed, ready for appends;
//! - [`fleet::take_over`](crate::fleet::take_over) (`inflight takeover`): a dead instance's running
//!   set, with reasons and crash-loop counts, and from the moment it commits, nothing the dead
//!   instance writes is accepted ([`Error::Fenced`](crate::Error::Fenced));
//! - [`forget`] (`inflight fleet forget`): a retired instance's log removed, its fence kept;
//! - [`fleet::read_only`](crate::fleet::read_only) and [`read_only_storage`] for
//!   the offline tools (`inflight replay --database URL --instance ID`, and `dump`, `verify`,
//!   `stats`).
//!
//! docs/FLEETS.md has the tables, the fencing argument, what `synchronous_commit` means for
//! the promise, and the figures.
//!
//! ```no_run
//! use inflight::{Log, Opened, Options, Run, Generation, UnixMs};
//!
//! let db = "postgres://gateway@127.0.0.1/gateway";
//! inflight::fleet::create_schema(db)?; // once; safe to repeat
//! let Opened { log, report } = Log::open_database(db, "gateway-1", Options::default())?;
//! log.mark_running(Run::new("agent:main:http:c-5", "s-1", Generation(1), UnixMs(1_000)))?;
//! # drop((log, report));
//!
//! // On another machine, once gateway-1 is known dead:
//! let taken = inflight::fleet::take_over(db, "gateway-1", "gateway-2")?;
//! for run in &taken.report.running {
//!     println!("resume {} here (reason {}, recoveries {})", run.run.key, run.reason, run.recoveries);
//! }
//! # Ok::<(), inflight::Error>(())
//! ```

mod client;
mod connect;
mod conninfo;
mod open;
mod schema;
mod storage;
mod takeover;
mod tls;
mod vacuum;

pub use client::{GRACE, describe};
pub use connect::{
    Forgotten, Instance, create_schema, forget, instance_path, instances, read_only_storage,
};
pub use conninfo::{CONNECT_TIMEOUT, STATEMENT_TIMEOUT};
pub use open::{open_storage, read_only};
pub use schema::{SCHEMA_SQL, SCHEMA_VERSION};
pub use storage::PgStorage;
pub use takeover::{TakenOver, Taker, take_over, take_over_as};
pub use vacuum::VACUUM_INTERVAL;
