//! Helpers shared by the command line's integration tests: the library's (its logs, runs and
//! the fleet's database) and the ones that run the `inflight` binary.
#![allow(dead_code, unused_imports)]

pub mod acks;
#[path = "../../../inflight/tests/common/mod.rs"]
mod library;
#[cfg(feature = "postgres")]
#[path = "../../../inflight-postgres/tests/common/pg.rs"]
pub mod pg;

pub use library::*;
