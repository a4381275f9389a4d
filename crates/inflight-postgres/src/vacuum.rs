//! Keeping the chunks table near the size of the logs it holds. A compaction deletes the
//! rows of the segments it replaced; until a vacuum marks their space free, the table grows
//! by everything written since, and autovacuum wakes once a minute at best
//! (`autovacuum_naptime`). So the writer that removed them asks for a vacuum of the fleet's
//! tables itself, on a connection and a thread of its own (the log's commits never wait
//! for it), at most one at a time and at most once per [`VACUUM_INTERVAL`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least time between two vacuums started by one log.
pub const VACUUM_INTERVAL: Duration = Duration::from_secs(5);

/// The statement: `SKIP_LOCKED` so that it never waits for another vacuum or a lock.
const VACUUM_SQL: &str = "VACUUM (SKIP_LOCKED) inflight_chunks, inflight_files";

/// A writer's vacuums.
#[derive(Debug)]
pub(super) struct Vacuums {
    /// The connection string (the writer's own), for the vacuum's connection.
    database: String,
    /// When the last one started.
    last: Mutex<Option<Instant>>,
    /// One is running.
    running: Arc<AtomicBool>,
    /// A failure was reported already (it is said once, not at every compaction).
    warned: Arc<AtomicBool>,
}

impl Vacuums {
    pub(super) fn new(database: &str) -> Vacuums {
        Vacuums {
            database: database.to_string(),
            last: Mutex::new(None),
            running: Arc::new(AtomicBool::new(false)),
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts a vacuum on a thread of its own, unless one runs or one started less than
    /// [`VACUUM_INTERVAL`] ago.
    pub(super) fn request(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < VACUUM_INTERVAL)
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        *last = Some(Instant::now());
        let (database, running, warned) = (
            self.database.clone(),
            self.running.clone(),
            self.warned.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("inflight-vacuum".to_string())
            .spawn(move || {
                let done = super::client::connect(&database)
                    .map_err(|e| e.to_string())
                    .and_then(|mut db| db.batch_execute(VACUUM_SQL).map_err(|e| e.to_string()));
                if let Err(e) = done
                    && !warned.swap(true, Ordering::AcqRel)
                {
                    tracing::warn!(
                        error = %e,
                        "the vacuum after a compaction failed; the chunks table is left to autovacuum (docs/FLEETS.md)"
                    );
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.running.store(false, Ordering::Release);
        }
    }
}
