//! An async gateway on tokio: each session's turn is a task, recorded through the async front
//! (`AsyncLog`), whose futures resolve once the event is durable. Tasks share syncs (group
//! commit), and a task waiting for the disk holds no thread.
//!
//! ```sh
//! cargo run --example async_gateway -- /tmp/async-gateway-log
//! ```

use std::path::PathBuf;
use std::time::Duration;

use inflight::asynclog::AsyncLog;
use inflight::{Log, Opened, Options};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("inflight-example-async-gateway"));
    let Opened { log, report } = Log::open(&dir, Options::default())?;
    for run in &report.running {
        println!("was in flight: {} ({:?})", run.run.key, run.reason);
    }
    let log = AsyncLog::new(log);

    // 200 sessions, one turn each, all at once.
    let turns: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let run = log
                    .begin_run(format!("agent:main:example:chat-{i}"), "session-1", None)
                    .await?;
                tokio::time::sleep(Duration::from_millis(10)).await; // the agent's work
                log.mark_completed(run.key, run.generation).await
            })
        })
        .collect();
    for turn in turns {
        turn.await??;
    }
    let figures = log.log().figures();
    println!(
        "200 turns recorded with {} syncs (group commit); in flight now: {}",
        figures.syncs,
        log.log().running().len()
    );
    log.close().await?;
    Ok(())
}
