//! Fleets on a real PostgreSQL server (`INFLIGHT_PG_URL`; `.ci/run` starts a throwaway cluster
//! with `scripts/pg-cluster`): an instance killed with SIGKILL mid-load and taken over exactly,
//! a zombie refused every time and never seen, a connection cut mid-commit through a proxy,
//! and the errors a newcomer meets. The server killed mid-load is in `fleet_server_kill.rs`
//! (its own binary: it takes the server from every other test).
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::acks::{Ledger, kill_round};
use common::pg::{self, run};
use inflight::{Error, Event, Log, Opened, Options, Policy};
use inflight_postgres::Fleet;

/// The events of an instance's log, read-only, in log order, and what it folds to.
fn logged(url: &str, instance: &str) -> (Vec<Event>, inflight::ReadOnly) {
    let source = Fleet::new(url).source(instance).unwrap();
    let mut events = Vec::new();
    let found = inflight::inspect::for_each_event(&source, Policy::Strict, |_, e| {
        events.push(e.to_event())
    })
    .unwrap();
    (events, found)
}

#[test]
fn an_instance_killed_mid_load_is_taken_over_exactly() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("a");
    let target = ["--database", url.as_str(), "--instance", a.as_str()];
    let mut ledger = Ledger::default();
    let mut acked: HashSet<Event> = HashSet::new();
    let mut submitted: HashSet<Event> = HashSet::new();
    // Three lives of A, each killed: the log is reopened (recovered) twice before the takeover.
    for life in 0..3 {
        let round = kill_round(&target, 4, Duration::from_millis(300 + 200 * life), &[]);
        assert!(round.submitted.len() - round.acked.len() <= 4);
        acked.extend(round.acked.iter().cloned());
        submitted.extend(round.submitted.iter().cloned());
        ledger.add(round);
    }
    let (events, _) = logged(&url, &a);
    let user: Vec<&Event> = events.iter().filter(|e| !e.is_internal()).collect();
    let in_log: HashSet<&Event> = user.iter().copied().collect();
    assert_eq!(in_log.len(), user.len(), "an event twice in the log");
    for e in &acked {
        assert!(in_log.contains(e), "acknowledged {e:?} is not in A's log");
    }
    for e in &user {
        assert!(
            submitted.contains(*e),
            "{e:?} is in A's log but was never submitted"
        );
    }
    let taken = pg::take_over(&url, &a, "b").unwrap();
    assert!(!taken.was_open, "A is dead: its connection went with it");
    assert!(taken.taken_before.is_none());
    let expected = inflight_sim::crashtest::Model::of(&events).running();
    let keys = |runs: &[inflight::InFlightRun]| {
        runs.iter()
            .map(|r| (r.run.clone(), r.reason))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&taken.report.running), keys(&expected));
    ledger.check("takeover", &taken.report.running);
    // The takeover counts as one more recovery of each run: A was recovered twice before.
    assert!(!taken.report.running.is_empty());
    for r in &taken.report.running {
        let before = expected.iter().find(|e| e.run.key == r.run.key).unwrap();
        assert_eq!(r.recoveries, before.recoveries + 1, "{}", r.run.key);
    }
    // A repeat by the same survivor reports the same frozen log; another one is refused (the
    // runs are b's).
    let again = pg::take_over(&url, &a, "b").unwrap();
    assert_eq!(again.taken_before.as_deref(), Some("b"));
    assert_eq!(again.epoch, taken.epoch);
    assert_eq!(keys(&again.report.running), keys(&taken.report.running));
    let other = pg::take_over(&url, &a, "c").unwrap_err();
    assert!(
        matches!(&other, Error::AlreadyTakenOver { by, epoch, .. } if by == "b" && *epoch == taken.epoch),
        "{other}"
    );
    common::report_tier(
        "fleet-takeover",
        &format!(
            "fleet: 3 SIGKILLs of instance A under load, {} events acknowledged, {} in its log, all acknowledged ones there and nothing unsubmitted; the takeover reported {} runs in flight, exactly the model's",
            acked.len(),
            user.len(),
            taken.report.running.len()
        ),
    );
}

#[test]
fn compaction_in_the_database_bounds_history_and_a_takeover_reads_the_snapshot() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("compacting");
    let target = ["--database", url.as_str(), "--instance", a.as_str()];
    let mut ledger = Ledger::default();
    let compact = ["--compact-after-bytes", "4000", "--segment-bytes", "12288"];
    for life in 0..3 {
        ledger.add(kill_round(
            &target,
            2,
            Duration::from_millis(400 + 150 * life),
            &compact,
        ));
    }
    let (_, found) = logged(&url, &a);
    assert!(found.report.snapshot.is_some(), "it compacted");
    let listed = Fleet::new(&url).instances().unwrap();
    let me = listed.iter().find(|i| i.instance == a).unwrap();
    assert!(
        me.files <= 6,
        "compaction removed what its snapshot covers: {} files left",
        me.files
    );
    let taken = pg::take_over(&url, &a, "b").unwrap();
    assert!(taken.report.snapshot.is_some());
    ledger.check("takeover after compactions", &taken.report.running);
}

#[test]
fn a_zombie_is_refused_every_time_and_nothing_it_writes_is_seen() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("zombie");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    let log = Arc::new(log);
    // Appenders run while the takeover happens; each remembers the calls that returned Ok.
    let stop = Arc::new(AtomicBool::new(false));
    let oks = Arc::new(Mutex::new(Vec::<Event>::new()));
    let refusals = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (log, stop, oks, refusals) =
                (log.clone(), stop.clone(), oks.clone(), refusals.clone());
            std::thread::spawn(move || {
                let mut g = 0;
                let mut refused_in_a_row = 0;
                while refused_in_a_row < 50 {
                    g += 1;
                    let key = format!("z{t}-{}", g % 5);
                    let r = run(&key, g);
                    match log.mark_running(r.clone()) {
                        Ok(_) => {
                            assert!(refused_in_a_row == 0, "an append succeeded after a refusal");
                            oks.lock().unwrap().push(Event::Started(r));
                        }
                        Err(Error::Fenced { by, .. }) => {
                            assert_eq!(by, "b");
                            refused_in_a_row += 1;
                            refusals.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("a zombie's append failed otherwise: {e}"),
                    }
                    if stop.load(Ordering::Relaxed) && refused_in_a_row == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let taken = pg::take_over(&url, &a, "b").unwrap();
    assert!(taken.was_open, "A's connection was alive: a zombie");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    // Every call that returned Ok is in what B took over; nothing after.
    let oks = oks.lock().unwrap();
    assert!(oks.len() > 50, "the zombie appended before the takeover");
    let (events, found) = logged(&url, &a);
    let in_log: HashSet<&Event> = events.iter().collect();
    for e in oks.iter() {
        assert!(
            in_log.contains(e),
            "acknowledged {e:?} is not in the log B took over"
        );
    }
    assert_eq!(
        events.iter().filter(|e| !e.is_internal()).count(),
        oks.len(),
        "only what was acknowledged is in the log: nothing the zombie tried after the fence"
    );
    assert_eq!(found.report.last_seq, taken.report.last_seq);
    assert_eq!(found.report.running, {
        let mut r = taken.report.running.clone();
        r.iter_mut().for_each(|r| {
            r.recoveries -= 1;
            r.running = true; // the takeover counted them interrupted
        });
        r
    });
    let refused = refusals.load(Ordering::Relaxed);
    assert!(refused >= 200);
    common::report_tier(
        "fleet-zombie",
        &format!(
            "fleet: a zombie with 4 appending threads through a takeover: {} calls returned Ok before it, all in the log taken over; {refused} calls after it, all refused with Error::Fenced, none in the log",
            oks.len()
        ),
    );
    // Every other way in is refused too: completions, compaction, a new open of A.
    assert!(matches!(
        log.mark_completed("z0-1", 1),
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(log.compact(), Err(Error::Fenced { .. })));
    assert!(log.figures().fenced);
    drop(log);
    let reopen = Fleet::new(&url).open(&a, Options::default());
    assert!(
        matches!(reopen, Err(Error::Fenced { ref by, .. }) if by == "b"),
        "{reopen:?}"
    );
    let (after, _) = logged(&url, &a);
    assert_eq!(after, events, "nothing changed after the takeover");
}

#[test]
fn two_survivors_taking_over_at_once_do_not_both_get_the_runs() {
    let Some(url) = pg::url() else { return };
    for round in 0..5 {
        let a = pg::instance("contested");
        let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
        for g in 1..=10 {
            log.mark_running(run(&format!("k{g}"), g)).unwrap();
        }
        drop(log);
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let takers: Vec<_> = ["b", "c", "d"]
            .into_iter()
            .map(|by| {
                let (url, a, barrier) = (url.clone(), a.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    pg::take_over(&url, &a, by)
                })
            })
            .collect();
        let results: Vec<_> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one taker gets the runs"
        );
        assert_eq!(won[0].report.running.len(), 10);
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::AlreadyTakenOver { by, .. } if *by == won[0].by),
                    "round {round}: {e}"
                );
            }
        }
    }
}

#[test]
fn a_store_is_acquired_once() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("once");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    log.mark_running(run("k", 1)).unwrap();
    log.close().unwrap();
    drop(log);
    // PostgreSQL's advisory locks are re-entrant in a session: the store refuses a second
    // taker itself, as a directory's flock does.
    let store = std::sync::Arc::new(Fleet::new(&url).open_store(&a).unwrap());
    let first = Log::open_in(store.clone(), Options::default()).unwrap();
    let second = Log::open_in(store.clone(), Options::default());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(first);
    let Opened { report, .. } = Log::open_in(store, Options::default()).unwrap();
    assert_eq!(
        report.running.len(),
        1,
        "the run k, in flight since the first open"
    );
}

#[test]
fn an_open_part_keeps_its_bytes_when_a_compaction_removes_it() {
    use inflight::store::LogSource;
    let Some(url) = pg::url() else { return };
    let a = pg::instance("inode");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    for g in 1..=50 {
        log.mark_running(run(&format!("k{g}"), g)).unwrap();
    }
    let source = Fleet::new(&url).source(&a).unwrap();
    let segment = inflight::layout::segment_name(1);
    let part = source.open_part(&segment).unwrap().expect("the segment");
    let before = part.read_whole(false).unwrap().to_vec();
    assert!(before.len() > 64);
    log.compact().unwrap();
    assert!(
        source.open_part(&segment).unwrap().is_none(),
        "the compaction removed the segment"
    );
    assert_eq!(part.read_whole(false).unwrap().to_vec(), before);
    assert_eq!(part.len().unwrap(), before.len() as u64);
    let mut tail = vec![0; 16];
    part.read_exact_at(&mut tail, before.len() as u64 - 16)
        .unwrap();
    assert_eq!(tail, before[before.len() - 16..]);
    let past = part.read_exact_at(&mut tail, before.len() as u64 - 8);
    assert!(
        matches!(&past, Err(e) if e.io_kind() == std::io::ErrorKind::UnexpectedEof),
        "{past:?}"
    );
}

#[test]
fn a_part_larger_than_one_value_goes_in_pieces_and_reads_back_whole() {
    use inflight::store::{LogSource, LogStore};
    let Some(url) = pg::url() else { return };
    let a = pg::instance("big");
    // A snapshot this size needs millions of runs; the store's own calls reach the limit
    // directly: a part of 64 MiB and a bit, installed as one change.
    let store = Fleet::new(&url).open_store(&a).unwrap();
    let (_lock, names) = store.acquire().unwrap();
    let bytes: Vec<u8> = (0..(64 << 20) + 12_345u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let path = store.install_snapshot(&names, 9, &bytes).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, "snapshot-00000000000000000009.json");
    let back = store
        .open_part(name)
        .unwrap()
        .unwrap()
        .read_whole(false)
        .unwrap();
    assert!(back[..] == bytes[..], "the pieces lay out the part");
    // And an append that large, to a segment.
    let mut appender = store.create_segment(1, b"header").unwrap();
    appender.append(6, &bytes).unwrap();
    let segment = inflight::layout::segment_name(1);
    let back = store
        .open_part(&segment)
        .unwrap()
        .unwrap()
        .read_whole(false)
        .unwrap();
    assert!(back[..6] == b"header"[..] && back[6..] == bytes[..]);
    assert_eq!(
        store
            .remove_covered(&store.list().unwrap(), 2, &[])
            .unwrap(),
        (1, 1)
    );
}

/// A TCP proxy on loopback in front of the server that can drop a connection at the next
/// packet the client sends: after forwarding `forward` bytes of it, without relaying any reply.
struct Proxy {
    port: u16,
    /// `Some(n)`: cut at the next client packet after n of its bytes.
    arm: Arc<Mutex<Option<usize>>>,
    cuts: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(server: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let arm: Arc<Mutex<Option<usize>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let (server, arm2, cuts2) = (server.to_string(), arm.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = TcpStream::connect(&server).unwrap();
                let (arm, cuts) = (arm2.clone(), cuts2.clone());
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                // Server to client: relayed unless the connection was cut.
                std::thread::spawn(move || pipe(u2, c2));
                std::thread::spawn(move || {
                    let (mut client, mut upstream) = (client, upstream);
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let cut = arm.lock().unwrap().take();
                        if let Some(forward) = cut {
                            let forward = forward.min(n);
                            let _ = upstream.write_all(&buf[..forward]);
                            // The client hears nothing more: its socket is shut first, so no
                            // reply the server sends can reach it.
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            std::thread::sleep(Duration::from_millis(50));
                            let _ = upstream.shutdown(std::net::Shutdown::Both);
                            cuts.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        if upstream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Proxy { port, arm, cuts }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The `host:port` of a `postgres://user@host:port/db` URL, and the URL through `port`.
fn through(url: &str, port: u16) -> (String, String) {
    let rest = url.split_once('@').unwrap().1;
    let hostport = rest.split('/').next().unwrap().to_string();
    let proxied = url.replace(&hostport, &format!("127.0.0.1:{port}"));
    (hostport, proxied)
}

#[test]
fn a_connection_cut_mid_commit_is_decided_by_what_committed() {
    let Some(url) = pg::url() else { return };
    let (server, _) = through(&url, 0);
    let proxy = Proxy::start(&server);
    let (_, proxied) = through(&url, proxy.port);
    // 0: nothing of the commit reaches the server; 7: half of a message header; usize::MAX:
    // all of it, and the reply is lost. Each in a fresh instance, several times.
    let mut outcomes = Vec::new();
    for (i, forward) in [0, 7, usize::MAX, 0, usize::MAX, 23, usize::MAX]
        .into_iter()
        .enumerate()
    {
        let a = pg::instance("cut");
        let Opened { log, .. } = Fleet::new(&proxied).open(&a, Options::default()).unwrap();
        for g in 1..=20 {
            log.mark_running(run(&format!("k{g}"), g)).unwrap();
        }
        *proxy.arm.lock().unwrap() = Some(forward);
        let cut_run = run("cut", 1);
        let err = log.mark_running(cut_run.clone()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("whether the last statement committed is decided by the server"),
            "{i}: {text}"
        );
        assert!(matches!(
            log.mark_running(run("after", 1)),
            Err(Error::Poisoned { .. })
        ));
        drop(log);
        // The reopen (straight to the server) reads what committed: every acknowledged run,
        // and the cut batch whole or not at all. The server holds the old session's lock
        // until it sees the connection gone.
        let Opened { log, report } = pg::reopen(&url, &a);
        let keys: HashSet<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
        for g in 1..=20 {
            assert!(keys.contains(format!("k{g}").as_str()), "{i}: k{g} lost");
        }
        assert!(!keys.contains("after"));
        let committed = keys.contains("cut");
        if committed {
            let r = report.running.iter().find(|r| r.run.key == "cut").unwrap();
            assert_eq!(r.run, cut_run, "the batch committed whole");
        }
        match forward {
            // The server never saw the statement whole: it cannot have committed.
            0 | 7 | 23 => assert!(!committed, "{i}: a statement never sent committed"),
            // The whole statement reached the server: it committed; only the reply was lost.
            _ => assert!(committed, "{i}: the server had the whole statement"),
        }
        outcomes.push(committed);
        log.close().unwrap();
    }
    assert_eq!(proxy.cuts.load(Ordering::Relaxed), 7);
    assert!(outcomes.contains(&true) && outcomes.contains(&false));
    let committed = outcomes.iter().filter(|c| **c).count();
    common::report_tier(
        "fleet-cut",
        &format!(
            "fleet: 7 connections cut mid-commit by a proxy: {committed} batches the server had whole were found by the reopen, {} cut before the whole statement were not; every acknowledged run kept",
            outcomes.len() - committed
        ),
    );
}

#[test]
fn bad_input_and_a_database_without_the_schema_are_clear_errors() {
    let Some(url) = pg::url() else { return };
    let open = |db: &str, id: &str| Fleet::new(db).open(id, Options::default()).map(|_| ());
    // Not a connection string.
    let e = open("postgres://[nope", "a").unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "database",
                ..
            }
        ),
        "{e}"
    );
    // Nothing listening.
    let (_, nowhere) = through(&url, 1);
    let e = open(&nowhere, "a").unwrap_err();
    assert!(matches!(e, Error::Database { .. }), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert!(!e.to_string().contains("password"));
    // Bad instance ids.
    let long = "x".repeat(129);
    for id in ["", "a b", "ü", long.as_str()] {
        let e = open(&url, id).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "instance",
                    ..
                }
            ),
            "{id:?}: {e}"
        );
    }
    // A database without the schema.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let bare = format!("inflight_bare_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {bare}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {bare}"))
        .unwrap();
    let bare_url = format!("{}/{bare}", url.rsplit_once('/').unwrap().0);
    for e in [
        open(&bare_url, "a").unwrap_err(),
        Fleet::new(&bare_url).take_over("a", "b").unwrap_err(),
        Fleet::new(&bare_url)
            .read_only("a", Policy::SkipDamaged)
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::NoSchema { .. }), "{e}");
        assert!(e.to_string().contains("inflight fleet init"), "{e}");
    }
    // The CLI says the same in one line, with its exit code.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = cli(&["replay", "--database", &bare_url, "--instance", "a"]);
    assert_eq!(code, Some(11), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _) = cli(&["verify", "--database", &bare_url, "--instance", "a"]);
    assert_eq!(code, Some(11));
    let (code, err) = cli(&["takeover", "nobody", "--by", "b", "--database", &url]);
    assert_eq!(code, Some(11), "{err}");
    assert!(err.contains("no log of instance \"nobody\""), "{err}");
    let (code, _) = cli(&["takeover", "x y", "--by", "b", "--database", &url]);
    assert_eq!(code, Some(6));
    let (code, _) = cli(&["fleet", "init", "--database", &bare_url]);
    assert_eq!(code, Some(0));
    let (code, err) = cli(&["replay", "--database", &bare_url, "--instance", "a"]);
    assert_eq!(code, Some(11), "{err}");
    assert!(err.contains("no log of instance"), "{err}");
    drop(admin);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE {bare} WITH (FORCE)"))
        .unwrap();
    // Takeover of oneself, of nobody; a second opener while the first lives.
    let a = pg::instance("busy");
    assert!(matches!(
        Fleet::new(&url).take_over(&a, &a),
        Err(Error::InvalidInput { field: "by", .. })
    ));
    assert!(matches!(
        pg::take_over(&url, &a, "b"),
        Err(Error::NoInstance { .. })
    ));
    let first = Fleet::new(&url).open(&a, Options::default()).unwrap();
    let second = Fleet::new(&url).open(&a, Options::default()).unwrap_err();
    assert!(matches!(second, Error::Locked { .. }), "{second}");
    // Named as what it is: an instance's log in the database, not a directory.
    let message = second.to_string();
    assert!(
        message.contains(&format!("instance {a:?}")) && !message.contains("log directory"),
        "{message}"
    );
    let listed = Fleet::new(&url).instances().unwrap();
    assert!(listed.iter().any(|i| i.instance == a && i.open));
    drop(first);
    let listed = Fleet::new(&url).instances().unwrap();
    assert!(listed.iter().any(|i| i.instance == a && !i.open));
    let _reopened = Fleet::new(&url).open(&a, Options::default()).unwrap();
}

#[test]
fn the_offline_tools_and_takeover_read_the_database_from_the_command_line() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("cli");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    for g in 1..=30 {
        log.mark_running(run(&format!("k{}", g % 7), g)).unwrap();
        if g % 3 == 0 {
            log.mark_completed(&format!("k{}", g % 7), g).unwrap();
        }
    }
    let live = common::live(&log);
    drop(log);
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let db = ["--database", url.as_str(), "--instance", a.as_str()];
    let replay: serde_json::Value =
        serde_json::from_str(&cli(&[&["replay", "--json"][..], &db].concat())).unwrap();
    let running: Vec<(String, u64)> = replay["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["generation"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = running.clone();
    sorted.sort();
    assert_eq!(sorted, live);
    assert!(cli(&[&["verify"][..], &db].concat()).contains("clean"));
    let dump = cli(&[&["dump", "--json"][..], &db].concat());
    let events = dump
        .lines()
        .filter(|l| l.contains("\"item\":\"event\""))
        .count();
    assert_eq!(events, 40);
    let stats: serde_json::Value =
        serde_json::from_str(&cli(&[&["stats", "--json"][..], &db].concat())).unwrap();
    assert!(stats.is_object());
    // The fallback over the fleet: a session the log covers is the log's; one active before
    // the log began is a guess.
    let tmp = tempfile::tempdir().unwrap();
    let sessions = tmp.path().join("sessions.jsonl");
    let now = inflight::environment::now_ms();
    std::fs::write(
        &sessions,
        format!(
            "{{\"key\":\"{}\",\"last_active_ms\":{now}}}\n{{\"key\":\"old\",\"last_active_ms\":{}}}\n",
            running[0].0,
            now - 3_600_000
        ),
    )
    .unwrap();
    let out = cli(&[
        "takeover",
        &a,
        "--by",
        "b",
        "--create-taker",
        "--database",
        &url,
        "--json",
        "--sessions",
        sessions.to_str().unwrap(),
        "--window",
        "7200",
        "--now",
        &now.to_string(),
    ]);
    let taken: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(taken["by"], "b");
    assert_eq!(
        taken["report"]["running"].as_array().unwrap().len(),
        live.len()
    );
    let flagged = taken["flagged"].as_array().unwrap();
    let reasons: Vec<(&str, &str)> = flagged
        .iter()
        .map(|f| (f["key"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons.contains(&(running[0].0.as_str(), "log")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&("old", "before-coverage")), "{reasons:?}");
    let listed = cli(&["fleet", "list", "--database", &url]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&a) && l.ends_with(" b")),
        "{listed}"
    );
}

#[test]
fn a_run_that_takes_down_one_instance_after_another_is_a_crash_loop_across_the_fleet() {
    let Some(url) = pg::url() else { return };
    let key = "agent:main:telegram:dm:poison";
    let instances: Vec<String> = (0..4).map(|i| pg::instance(&format!("chain{i}"))).collect();
    // The first instance begins the run, which brings the process down.
    let first = Fleet::new(&url)
        .open(&instances[0], Options::default())
        .unwrap()
        .log;
    first
        .begin_run(key, "s1", Some(r#"{"resume_from":"m-1"}"#.into()))
        .unwrap();
    drop(first);
    let mut counts = Vec::new();
    for pair in instances.windows(2) {
        let (dead, survivor) = (&pair[0], &pair[1]);
        let log = Fleet::new(&url)
            .open(survivor, Options::default())
            .unwrap()
            .log;
        let taken = Fleet::new(&url).take_over(dead, survivor).unwrap();
        let run = taken
            .report
            .running
            .iter()
            .find(|r| r.run.key == key)
            .expect("the dead instance's run");
        counts.push(run.recoveries);
        if taken.report.crash_loops().any(|r| r.run.key == key) {
            break; // the survivor suspends it instead of resuming it again
        }
        // The survivor records the run in its own log, as it was, and resumes it: and dies.
        let adopted = log.adopt(run).unwrap();
        assert_eq!(adopted.meta, run.run.meta, "the run's meta comes along");
        assert_eq!(log.in_flight(key).unwrap().recoveries, run.recoveries);
        log.begin_run(key, &adopted.session_id, adopted.meta.clone())
            .unwrap();
        drop(log);
    }
    // Restarted in place it would count 1, 2, 3 and be flagged at 3: the fleet does the same.
    assert_eq!(counts, [1, 2, 3]);
}

#[test]
fn a_takeover_refuses_an_unknown_or_retired_taker_and_fences_nothing() {
    let Some(url) = pg::url() else { return };
    let (dead, typo, survivor, retired) = (
        pg::instance("dead"),
        pg::instance("typo"),
        pg::instance("survivor"),
        pg::instance("retired"),
    );
    for instance in [&dead, &survivor, &retired] {
        let Opened { log, .. } = Fleet::new(&url).open(instance, Options::default()).unwrap();
        log.mark_running(run("k", 1)).unwrap();
        drop(log);
    }
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code().unwrap_or(-1), err)
    };
    pg::take_over(&url, &retired, &survivor).unwrap();
    // A typo as the taker: refused, and the dead instance is not fenced (its runs would go to
    // nobody, and the real survivor would be refused).
    let unknown = Fleet::new(&url).take_over(&dead, &typo).unwrap_err();
    assert!(
        matches!(&unknown, Error::UnknownTaker { by, .. } if *by == typo),
        "{unknown}"
    );
    // A retired taker (taken over itself) can never write again: it may not take runs.
    let fenced = Fleet::new(&url).take_over(&dead, &retired).unwrap_err();
    assert!(
        matches!(&fenced, Error::Fenced { instance, by, .. } if *instance == retired && *by == survivor),
        "{fenced}"
    );
    let (code, err) = cli(&["takeover", &dead, "--by", &typo, "--database", &url]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("--create-taker"), "{err}");
    let (code, _) = cli(&["takeover", &dead, "--by", &retired, "--database", &url]);
    assert_eq!(code, 10);
    // Nothing was fenced: the real survivor takes it over, first.
    let taken = Fleet::new(&url).take_over(&dead, &survivor).unwrap();
    assert!(taken.taken_before.is_none());
    // Asked to, a takeover creates its taker.
    let other = pg::instance("later");
    let dead2 = pg::instance("dead2");
    drop(Fleet::new(&url).open(&dead2, Options::default()).unwrap());
    let (code, err) = cli(&[
        "takeover",
        &dead2,
        "--by",
        &other,
        "--create-taker",
        "--database",
        &url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        Fleet::new(&url)
            .instances()
            .unwrap()
            .iter()
            .any(|i| i.instance == other)
    );
}

#[test]
fn a_retired_instances_log_is_forgotten_and_its_fence_kept() {
    let Some(url) = pg::url() else { return };
    let (dead, survivor) = (pg::instance("forgotten"), pg::instance("keeper"));
    let live = pg::instance("live");
    for instance in [&dead, &survivor, &live] {
        let Opened { log, .. } = Fleet::new(&url).open(instance, Options::default()).unwrap();
        log.mark_running(run("k", 1)).unwrap();
        if instance != &live {
            drop(log);
        } else {
            std::mem::forget(log); // holds its log open for the test's life
        }
    }
    // A live instance's log (not taken over) is never removed.
    let refused = Fleet::new(&url).forget(&live).unwrap_err();
    assert!(matches!(refused, Error::InvalidInput { .. }), "{refused}");
    assert!(matches!(
        Fleet::new(&url).forget(&pg::instance("nobody")),
        Err(Error::NoInstance { .. })
    ));
    Fleet::new(&url).take_over(&dead, &survivor).unwrap();
    let forgotten = Fleet::new(&url).forget(&dead).unwrap();
    assert_eq!(forgotten.taken_by, survivor);
    assert!(
        forgotten.files >= 1 && forgotten.bytes > 64,
        "{forgotten:?}"
    );
    let listed = Fleet::new(&url).instances().unwrap();
    let row = listed.iter().find(|i| i.instance == dead).unwrap();
    assert_eq!(
        (row.files, row.bytes, row.taken_by.as_deref()),
        (0, 0, Some(survivor.as_str()))
    );
    // The fence stays: the id can never write again.
    assert!(matches!(
        Fleet::new(&url).open(&dead, Options::default()),
        Err(Error::Fenced { .. })
    ));
    // Twice removes nothing more; the live instance's log is untouched.
    assert_eq!(Fleet::new(&url).forget(&dead).unwrap().files, 0);
    let live_row = Fleet::new(&url).instances().unwrap();
    assert!(live_row.iter().any(|i| i.instance == live && i.files >= 1));
    let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(["fleet", "forget", &live, "--database", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}
