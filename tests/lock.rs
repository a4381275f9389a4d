//! One process owns a log directory at a time; a second opener gets an error naming the holder.

mod common;

use std::process::Command;

use common::{open, run};
use inflight::{Error, Log, Options, Policy};

#[test]
fn a_second_handle_in_the_same_process_is_refused() {
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
        Log::read_only(dir.path(), Policy::Strict)
            .unwrap()
            .report
            .running
            .len(),
        1
    );
}

#[test]
fn the_lock_is_released_when_the_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    drop(log);
    let (_log, _) = open(dir.path());
}
