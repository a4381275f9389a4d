//! The PostgreSQL server the fleet tests use: `INFLIGHT_PG_URL` (`.ci/run` starts a throwaway
//! cluster with `scripts/pg-cluster` and sets it). Without it the fleet tests say so and pass
//! empty, unless `INFLIGHT_PG_REQUIRED` is set (as CI sets it): then its absence fails them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use inflight::{Error, Generation, Log, Opened, Options, Run, UnixMs};

/// The server's URL, or `None` (said on stderr) when no server was given.
pub fn url() -> Option<String> {
    match std::env::var("INFLIGHT_PG_URL") {
        Ok(url) if !url.is_empty() => {
            static INIT: std::sync::Once = std::sync::Once::new();
            INIT.call_once(|| {
                inflight_postgres::Fleet::new(&url)
                    .create_schema()
                    .expect("the schema")
            });
            Some(url)
        }
        _ => {
            assert!(
                std::env::var_os("INFLIGHT_PG_REQUIRED").is_none(),
                "INFLIGHT_PG_REQUIRED is set but INFLIGHT_PG_URL is not: start a server with scripts/pg-cluster"
            );
            eprintln!(
                "skipped: set INFLIGHT_PG_URL (scripts/pg-cluster start DIR prints one) to run the fleet tests"
            );
            None
        }
    }
}

/// An instance id no other test or earlier run used: `NAME-PID-N-MILLIS`.
/// A takeover by `by`, created as an instance if the database has none of that name (the
/// tests' takers are often names that never opened a log).
#[allow(dead_code)]
pub fn take_over(
    url: &str,
    dead: &str,
    by: &str,
) -> inflight::Result<inflight_postgres::TakenOver> {
    inflight_postgres::Fleet::new(url).take_over_as(
        dead,
        by,
        inflight_postgres::Taker::CreateIfMissing,
    )
}

pub fn instance(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        inflight::environment::now_ms()
    )
}

/// Opens `instance` again once the server takes it: after a restart it refuses connections
/// for a while, and after a connection was cut it holds the old session's lock until it notices
/// the connection is gone.
pub fn reopen(url: &str, instance: &str) -> Opened {
    for _ in 0..400 {
        match inflight_postgres::Fleet::new(url).open(instance, Options::default()) {
            Err(Error::Database { .. } | Error::Locked { .. }) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{instance} could not be opened again within 20 s");
}

/// A run of the fleet tests: its session id named after the key and generation, started at the
/// generation's millisecond.
pub fn run(key: &str, generation: u64) -> Run {
    Run::new(
        key,
        format!("{key}-s{generation}"),
        Generation(generation),
        UnixMs(generation),
    )
}
