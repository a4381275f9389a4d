//! Helpers shared by the PostgreSQL store's integration tests: the library's (its logs and
//! runs) and the database's.
#![allow(dead_code, unused_imports)]

#[path = "../../../inflight/tests/common/mod.rs"]
mod library;
pub mod pg;

pub use library::*;
