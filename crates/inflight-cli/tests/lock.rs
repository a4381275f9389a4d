//! One process owns a log directory at a time; a second opener gets an error naming the holder.

mod common;

use std::process::Command;
use std::sync::Mutex;

use common::{open, run};
use inflight::{Error, Log, Options, Policy};

/// The tests here run one at a time. A flock belongs to the open file, which a child process
/// shares between its fork and its exec: while one test spawns a process, another test's
/// dropped handle could still be locked in that child for a moment.
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
