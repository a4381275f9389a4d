//! A small gateway in Rust: worker threads run agent turns for their sessions, each turn
//! recorded in the log (begun before the work, completed after it), and a start-up that
//! reads what the last process left in flight and decides, per session, to resume it or to
//! suspend it (a session that keeps crashing the gateway).
//!
//! ```sh
//! cargo run --example gateway -- /tmp/gateway-log      # run it, then again: it recovers
//! ```
//!
//! Kill it with Ctrl-C (or `kill -9`) while it runs and start it again: the turns that were
//! in flight are listed, each with how often it was interrupted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inflight::{Log, Opened, Options};

/// How many worker threads, and the sessions each serves.
const WORKERS: usize = 4;
const SESSIONS_PER_WORKER: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("inflight-example-gateway"));

    // Start-up: the log replays, and says what was in flight when the last process stopped.
    let Opened { log, report } = Log::open(&dir, Options::default())?;
    println!(
        "log at {}: {} turn(s) were in flight",
        dir.display(),
        report.running.len()
    );
    for run in &report.running {
        // A turn that took the gateway down again and again is suspended, not retried.
        if report.is_loop(run) {
            println!(
                "  suspend {} (interrupted {} times)",
                run.run.key, run.recoveries
            );
            log.suspend(&run.run.key)?;
        } else {
            println!("  resume {} from {:?}", run.run.key, run.run.meta);
            // A real gateway re-queues the turn here; this one records it as resumed by
            // beginning it again below.
        }
    }

    // Work: each worker runs turns for its sessions, recording each one around the work.
    let log = Arc::new(log);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || -> inflight::Result<u64> {
                let mut turns = 0;
                for round in 0..50u64 {
                    let session = format!(
                        "agent:main:example:w{w}-s{}",
                        round as usize % SESSIONS_PER_WORKER
                    );
                    // Durable before the turn starts: a crash from here on leaves it in flight.
                    let run = log.begin_run(
                        &session,
                        "session-1",
                        Some(format!("{{\"round\":{round}}}")),
                    )?;
                    std::thread::sleep(Duration::from_millis(100)); // the agent's work
                    // Durable when this returns: the turn is no longer in flight.
                    log.complete_run(&run)?;
                    turns += 1;
                }
                Ok(turns)
            })
        })
        .collect();
    let mut turns = 0;
    for worker in workers {
        turns += worker.join().expect("a worker panicked")?;
    }
    println!("{turns} turns run and completed; nothing is in flight now");
    // A graceful stop: the next start knows it was not a crash.
    log.close()?;
    Ok(())
}
