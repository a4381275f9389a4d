//! Files with a log's names that are not regular files (docs/FORMAT.md, "Files"): a FIFO, a
//! directory, a dangling symbolic link or a loop of them named like a segment or a snapshot is
//! damage that every reader reports alike, and nothing opens it, so nothing blocks; a symbolic
//! link to a regular file is followed. Run as the real binary (each command with a deadline, so
//! a reader that blocks fails the test instead of hanging it) and as the library's open.

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{live, open, run, segment};
use inflight::{Log, Options, Policy};

/// What a command did: its exit code and output, or `None` if it was still running at the
/// deadline (then it was killed).
fn inflight(args: &[&str]) -> Option<(i32, String, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run inflight");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Some((
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    ))
}

/// A closed log with runs `a` and `b` in flight and `c` completed; what replay finds in it.
fn log() -> (tempfile::TempDir, Vec<(String, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for key in ["a", "b", "c"] {
        log.mark_running(run(key, 1)).unwrap();
    }
    log.mark_completed("c", 1).unwrap();
    let running = live(&log);
    drop(log);
    (dir, running)
}

fn snapshot_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("snapshot-{n:020}.json"))
}

/// The special files this test makes, each under a log's name.
#[derive(Clone, Copy, Debug)]
enum Special {
    Fifo,
    Directory,
    DanglingLink,
    LinkLoop,
}

impl Special {
    const ALL: [Special; 4] = [
        Special::Fifo,
        Special::Directory,
        Special::DanglingLink,
        Special::LinkLoop,
    ];

    fn make(self, path: &Path) {
        match self {
            Special::Fifo => {
                let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
                assert!(ok, "mkfifo {}", path.display());
            }
            Special::Directory => std::fs::create_dir(path).unwrap(),
            Special::DanglingLink => std::os::unix::fs::symlink("nowhere", path).unwrap(),
            Special::LinkLoop => {
                std::os::unix::fs::symlink(path.file_name().unwrap(), path).unwrap()
            }
        }
    }

    /// How the reader names it.
    fn what(self) -> &'static str {
        match self {
            Special::Fifo => "a FIFO",
            Special::Directory => "a directory",
            Special::DanglingLink => "a symbolic link to nothing",
            Special::LinkLoop => "a symbolic link",
        }
    }
}

/// Every reader, against a log holding `special` at `path`: none blocks, each reports the
/// file as damage naming it, and the running set is the clean log's.
fn readers_agree(special: Special, name: &str, dir: &Path, running: &[(String, u64)]) {
    let d = dir.to_str().unwrap();
    let context = format!("{special:?} named {name}");
    let done = |args: &[&str]| {
        inflight(args).unwrap_or_else(|| panic!("{context}: `inflight {}` blocked", args.join(" ")))
    };

    let (code, out, err) = done(&["replay", "--json", d]);
    assert_eq!(code, 0, "{context}: replay: {err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = report["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b"], "{context}");
    let corruption = report["corruption"].as_array().unwrap();
    assert_eq!(corruption.len(), 1, "{context}: {corruption:?}");
    assert_eq!(corruption[0]["segment"], name, "{context}");
    let detail = corruption[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not a regular file") && detail.contains(special.what()),
        "{context}: {detail}"
    );

    let (code, _, err) = done(&["replay", "--strict", d]);
    assert_eq!(code, 3, "{context}: replay --strict: {err}");
    assert!(err.contains(name), "{context}: {err}");

    let (code, out, err) = done(&["verify", d]);
    assert_eq!(code, 14, "{context}: verify: {out}{err}");
    assert!(
        out.contains(name) && out.contains("not a regular file"),
        "{context}: {out}"
    );

    for tool in ["dump", "stats"] {
        let (code, _, err) = done(&[tool, d]);
        assert_eq!(code, 0, "{context}: {tool}: {err}");
    }

    // A read-write open goes on past it (in a new segment when it is a segment's name), and
    // leaves it as it was.
    let opened = Log::open(dir, Options::default()).unwrap();
    assert_eq!(live(&opened.log), running, "{context}");
    assert_eq!(opened.report.corruption.len(), 1, "{context}");
    opened.log.mark_running(run("d", 1)).unwrap();
    drop(opened);
    let kind = std::fs::symlink_metadata(dir.join(name))
        .unwrap()
        .file_type();
    assert!(!kind.is_file(), "{context}: the open replaced it");
    let again = inflight::inspect::read_only(dir, Policy::SkipDamaged).unwrap();
    assert_eq!(running_keys(&again.report), ["a", "b", "d"], "{context}");

    // A compaction goes on past it too: it removes the regular segments it covers and leaves
    // the entry as it was; and so does the next one (a directory used to stop every
    // compaction, and the log grew without bound).
    for round in 0..2 {
        let (code, out, err) = done(&["compact", "--json", d]);
        assert_eq!(code, 0, "{context}: compact {round}: {err}");
        let compacted: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            compacted["segments_removed"].as_u64().unwrap() >= 1,
            "{context}: compact {round}: {compacted}"
        );
        let kind = std::fs::symlink_metadata(dir.join(name))
            .unwrap()
            .file_type();
        assert!(!kind.is_file(), "{context}: compact {round} removed it");
        let again = Log::open(dir, Options::default()).unwrap();
        assert_eq!(
            running_keys(&again.report),
            ["a", "b", "d"],
            "{context}: after compact {round}"
        );
        // A new segment for the next round to cover.
        again.log.mark_running(run("e", round + 1)).unwrap();
        again.log.mark_completed("e", round + 1).unwrap();
    }
}

/// The keys of the runs a recovery found in flight, in its order.
fn running_keys(report: &inflight::RecoveryReport) -> Vec<String> {
    report.running.iter().map(|r| r.run.key.clone()).collect()
}

#[test]
fn a_special_file_named_like_a_segment_is_damage_and_blocks_nothing() {
    for special in Special::ALL {
        let (dir, running) = log();
        let name = segment(dir.path(), 7);
        special.make(&name);
        let name = name.file_name().unwrap().to_str().unwrap().to_string();
        readers_agree(special, &name, dir.path(), &running);
    }
}

#[test]
fn a_special_file_named_like_a_snapshot_is_damage_and_blocks_nothing() {
    for special in Special::ALL {
        let (dir, running) = log();
        let name = snapshot_path(dir.path(), 99);
        special.make(&name);
        let name = name.file_name().unwrap().to_str().unwrap().to_string();
        readers_agree(special, &name, dir.path(), &running);
    }
}

#[test]
fn a_symbolic_link_to_a_segment_is_followed() {
    let (dir, running) = log();
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("moved.log");
    std::fs::rename(segment(dir.path(), 1), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, segment(dir.path(), 1)).unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = inflight(&["verify", d]).expect("verify blocked");
    assert_eq!((code, out.contains("clean")), (0, true), "{out}{err}");
    let recovered = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    let keys: Vec<(String, u64)> = recovered
        .report
        .running
        .iter()
        .map(|r| (r.run.key.clone(), r.run.generation))
        .collect();
    assert_eq!(keys, running);
    // A read-write open makes the segment it appends to durable by writing a copy and
    // renaming it into place: the link becomes a regular file holding the same records, and
    // the file it pointed to is left as it was.
    let before = std::fs::read(&moved).unwrap();
    let opened = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(live(&opened.log), running);
    drop(opened);
    assert!(
        std::fs::symlink_metadata(segment(dir.path(), 1))
            .unwrap()
            .is_file()
    );
    assert_eq!(std::fs::read(&moved).unwrap(), before);
}

#[test]
fn an_older_snapshot_of_an_unsupported_version_is_a_finding_replay_does_not_need() {
    let (dir, running) = log();
    {
        let (log, _) = open(dir.path());
        log.compact().unwrap();
    }
    let start = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".json"))
        .expect("a snapshot");
    let version = inflight::snapshot::SNAPSHOT_VERSION;
    let newer = std::fs::read_to_string(&start).unwrap().replacen(
        &format!("\"inflight_snapshot\":{version}"),
        &format!("\"inflight_snapshot\":{}", version + 1),
        1,
    );
    let older = snapshot_path(dir.path(), 1);
    std::fs::write(&older, newer).unwrap();
    let d = dir.path().to_str().unwrap();
    // Replay starts from the newest valid snapshot and never reads one below it.
    for args in [&["replay", d][..], &["replay", "--strict", d][..]] {
        let (code, _, err) = inflight(args).unwrap();
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let recovered = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(recovered.report.running.len(), running.len());
    // The tools that check every file report it, as damage, naming the version.
    let (code, out, _) = inflight(&["verify", d]).unwrap();
    assert_eq!(code, 14, "{out}");
    assert!(
        out.contains("snapshot-00000000000000000001.json")
            && out.contains(&format!("version {}", version + 1)),
        "{out}"
    );
    let (code, out, _) = inflight(&["dump", d]).unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("DAMAGED SNAPSHOT snapshot-00000000000000000001.json"),
        "{out}"
    );
}
