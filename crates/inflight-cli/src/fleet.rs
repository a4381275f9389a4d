//! `inflight takeover` and `inflight fleet`: a fleet's logs in PostgreSQL.

use clap::{Args, Subcommand};

use super::CliResult;
#[cfg(feature = "postgres")]
use super::Failure;

/// Arguments of `inflight takeover`.
#[derive(Debug, Args)]
pub(super) struct TakeoverArgs {
    /// The instance to take over (the dead one).
    instance: String,
    /// The fleet's PostgreSQL database: a postgres://USER@HOST:PORT/DBNAME URL
    /// (?sslmode=verify-full&sslrootcert=FILE, connect_timeout, statement_timeout), libpq's
    /// key=value pairs, or "" for libpq's PG* environment and ~/.pgpass.
    #[arg(long, value_name = "URL", env = "INFLIGHT_DATABASE")]
    database: String,
    /// The instance taking over (recorded in the database as the new owner).
    #[arg(long, value_name = "ID")]
    by: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    fallback: super::FallbackArgs,
    /// Create the taker (--by) as an instance with no log yet if the database has none of
    /// that name. Without it an unknown taker is refused (exit 11): the surviving instance
    /// opens its own log before it takes another over, so an unknown id is most often a typo.
    #[arg(long)]
    create_taker: bool,
    /// Consecutive crashes (this takeover included) that interrupted a run while it ran at
    /// which it counts as a crash loop.
    #[arg(long, value_name = "N", default_value_t = 3)]
    crash_loop_threshold: u32,
    /// Consecutive graceful stops that interrupted a run while it ran at which it counts as a
    /// reboot loop.
    #[arg(long, value_name = "N", default_value_t = 3)]
    stop_loop_threshold: u32,
}

/// Arguments of `inflight fleet`.
#[derive(Debug, Args)]
pub(super) struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Create the fleet's tables in the database (once; safe to repeat).
    Init(DatabaseArg),
    /// List the instances with a log in the database: fencing epoch, who took it over, whether
    /// a process holds it open now, its files and bytes.
    List(ListArgs),
    /// Remove the log of an instance that was taken over (retired: its runs are its taker's),
    /// keeping its fence: the id can never write again. A takeover repeated afterwards finds
    /// nothing, so forget it once the taker has recorded its runs. An instance that was not
    /// taken over is refused (exit 6).
    ///
    /// Example: inflight fleet forget gateway-1 --database postgres://gw@127.0.0.1/gw
    Forget(ForgetArgs),
}

#[derive(Debug, Args)]
struct ForgetArgs {
    /// The retired instance.
    instance: String,
    #[command(flatten)]
    database: DatabaseArg,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DatabaseArg {
    /// The fleet's PostgreSQL database: a postgres://USER@HOST:PORT/DBNAME URL
    /// (?sslmode=verify-full&sslrootcert=FILE, connect_timeout, statement_timeout), libpq's
    /// key=value pairs, or "" for libpq's PG* environment and ~/.pgpass.
    #[arg(long, value_name = "URL", env = "INFLIGHT_DATABASE")]
    database: String,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// Print one JSON object a line instead of a table.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "postgres")]
pub(super) fn takeover(args: TakeoverArgs) -> CliResult {
    use inflight::fallback::LogView;

    use super::replay::{print_found, print_no_log};

    let sessions = args.fallback.sessions()?;
    let taker = match args.create_taker {
        true => inflight_postgres::Taker::CreateIfMissing,
        false => inflight_postgres::Taker::Existing,
    };
    let taken = match inflight_postgres::Fleet::new(&args.database).take_over_as(
        &args.instance,
        &args.by,
        taker,
    ) {
        // It opened a log and never wrote a segment: nothing was acknowledged, and with
        // --sessions the fallback speaks for everything.
        Err(inflight::Error::NotFound { .. }) if sessions.is_some() => None,
        other => Some(other?),
    };
    let flagged = args.fallback.flag(
        sessions,
        taken.as_ref().map(|t| LogView::Present {
            report: &t.report,
            set: &t.set,
        }),
    );
    let Some(mut taken) = taken else {
        let line = format!(
            "took over {} for {}: it never wrote its log, so every session active within the window is a guess",
            args.instance, args.by
        );
        return print_no_log(args.json, flagged, &line);
    };
    taken.report.crash_loop_threshold = args.crash_loop_threshold;
    taken.report.stop_loop_threshold = args.stop_loop_threshold;
    if !args.json {
        print_takeover(&taken);
    }
    print_found(args.json, &taken, flagged)
}

/// A takeover, as text: what it did, and the dead instance's report.
#[cfg(feature = "postgres")]
fn print_takeover(taken: &inflight_postgres::TakenOver) {
    use super::replay::print_report;

    match &taken.taken_before {
        Some(before) => println!(
            "{} was taken over before, by {before} too (fencing epoch {}): its frozen log again, and its runs may already be resumed",
            taken.instance, taken.epoch
        ),
        None => println!(
            "took over {} for {} at fencing epoch {}{}",
            taken.instance,
            taken.by,
            taken.epoch,
            if taken.was_open {
                " (it still held its log open: that process is fenced now)"
            } else {
                ""
            }
        ),
    }
    print_report(
        &inflight_postgres::instance_path(&taken.instance),
        &taken.report,
    );
}

#[cfg(feature = "postgres")]
pub(super) fn fleet(args: FleetArgs) -> CliResult {
    match args.command {
        FleetCommand::Init(db) => {
            inflight_postgres::Fleet::new(&db.database).create_schema()?;
            println!(
                "the fleet's tables (schema version {}) are in the database",
                inflight_postgres::SCHEMA_VERSION
            );
        }
        FleetCommand::Forget(args) => {
            let forgotten =
                inflight_postgres::Fleet::new(&args.database.database).forget(&args.instance)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&forgotten)
                        .map_err(|e| Failure::new(1, e.to_string()))?
                );
            } else {
                println!(
                    "forgot {}'s log ({} file(s), {} bytes); its fence stays: taken over by {}, it can never write again",
                    forgotten.instance, forgotten.files, forgotten.bytes, forgotten.taken_by
                );
            }
        }
        FleetCommand::List(list) => {
            let instances = inflight_postgres::Fleet::new(&list.database.database).instances()?;
            if list.json {
                for i in &instances {
                    println!(
                        "{}",
                        serde_json::to_string(i).map_err(|e| Failure::new(1, e.to_string()))?
                    );
                }
                return Ok(());
            }
            println!(
                "{:<32} {:>6} {:<6} {:>6} {:>12}  taken over by",
                "instance", "epoch", "open", "files", "bytes"
            );
            for i in &instances {
                println!(
                    "{:<32} {:>6} {:<6} {:>6} {:>12}  {}",
                    i.instance,
                    i.epoch,
                    if i.open { "yes" } else { "no" },
                    i.files,
                    i.bytes,
                    i.taken_by.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}

#[cfg(not(feature = "postgres"))]
pub(super) fn takeover(_: TakeoverArgs) -> CliResult {
    Err(super::source::no_postgres())
}

#[cfg(not(feature = "postgres"))]
pub(super) fn fleet(_: FleetArgs) -> CliResult {
    Err(super::source::no_postgres())
}
