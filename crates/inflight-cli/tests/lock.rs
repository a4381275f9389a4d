//! One process owns a log directory at a time; a second opener gets an error naming the holder.

mod common;

use std::process::Command;
use std::sync::Mutex;

use common::{open, run};
use inflight::{Error, Log, Options, Policy};

/// The tests here run one at a time: one spawns processes as fast as it can, and another
/// holds a lock in a child process of its own.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_second_handle_in_the_same_process_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = open(dir.path());
    match Log::open(dir.path(), Options::default()) {
        Err(Error::Locked { holder_pid, .. }) => {
            assert_eq!(holder_pid, Some(std::process::id()))
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_second_process_gets_an_error_naming_the_holder() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .arg("load")
        .arg(dir.path())
        .args(["--events", "10"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code for a locked directory"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("process {}", std::process::id())),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");

    // Read-only tools need no lock.
    let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .arg("replay")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    drop(log);
    assert_eq!(
        inflight::inspect::read_only(dir.path(), Policy::Strict)
            .unwrap()
            .report
            .running
            .len(),
        1
    );
}

#[test]
fn the_lock_is_released_when_the_handle_is_dropped() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    drop(log);
    let (_log, _) = open(dir.path());
}

/// A lock this process lets go of while an open waits for it is taken: the open tries its own
/// process's lock again for `LOCK_OWN_PROCESS_WAIT` before it reports it held.
#[test]
fn a_lock_this_process_lets_go_of_while_an_open_waits_is_taken() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(log);
    });
    let reopened = Log::open(dir.path(), Options::default());
    releaser.join().unwrap();
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

/// The case it is for: a gateway that drops its log handle and opens the log again while
/// another thread spawns processes (each child holds a copy of the lock between its fork and
/// its exec) is never refused its own lock.
#[cfg(unix)]
#[test]
fn a_reopen_while_another_thread_spawns_processes_is_never_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let (stop, spawned) = (stop.clone(), spawned.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                Command::new("true").status().unwrap();
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let reopens = 300;
    for i in 0..reopens {
        let opened = Log::open(dir.path(), Options::default());
        assert!(opened.is_ok(), "reopen {i}: {:?}", opened.err());
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().unwrap();
    // Coverage: the reopens raced processes being spawned, many of them.
    assert!(spawned.load(Ordering::Relaxed) >= 10, "{spawned:?}");
}
