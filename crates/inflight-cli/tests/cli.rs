//! The command line: documented exit codes, one-line errors, the JSON report's fields, the ack
//! stream of `load`, and the demo's end-to-end check.

mod common;

use std::process::{Command, Output};

use common::{frame_offsets, open, run, segment};

fn inflight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(args)
        .output()
        .expect("run inflight")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn replay_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 3).with_meta("{\"platform\":\"telegram\"}"))
        .unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed("b", 1).unwrap();
    drop(log);

    let out = inflight(&["replay", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let running = v["running"].as_array().unwrap();
    assert_eq!(running.len(), 1);
    let r = &running[0];
    assert_eq!(r["key"], "a");
    assert_eq!(r["session_id"], "a-s3");
    assert_eq!(r["generation"], 3);
    assert_eq!(r["started_at_ms"], 1_003);
    assert_eq!(r["reason"], "crash");
    assert_eq!(r["meta"], "{\"platform\":\"telegram\"}");
    assert_eq!(v["torn_tail_bytes"], 0);
    assert_eq!(v["corruption"], serde_json::json!([]));
    assert_eq!(v["stale_ignored"], 0);
    assert_eq!(v["clean_shutdown"], false);
    assert!(v["coverage_since_ms"].as_u64().unwrap() > 0);
}

#[test]
fn replay_of_a_missing_directory_exits_5_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = inflight(&["replay", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn replay_strict_exits_3_on_corruption_and_default_reports_it() {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b", "c"], "");
    let path = segment(dir.path(), 1);
    let offsets = frame_offsets(&bytes);
    bytes[offsets[1] + 18] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let d = dir.path().to_str().unwrap();

    let out = inflight(&["replay", d, "--strict"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("at byte {}", offsets[1])), "{err}");

    let out = inflight(&["replay", d, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corruption"].as_array().unwrap().len(), 1);
    assert_eq!(v["corruption"][0]["start_offset"], offsets[1]);
    assert_eq!(v["running"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "replay changes no byte"
    );

    let out = inflight(&["replay", d]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CORRUPTION"));
}

/// The stdout of `load --acks`: (submissions, acknowledgements), each an event object in the
/// order printed, after checking that every acknowledgement follows its own submission.
fn submissions_and_acks(stdout: &[u8]) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let (mut submitted, mut acked) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v.get("submit") {
            Some(event) => submitted.push(event.clone()),
            None => {
                assert!(submitted.contains(&v), "acknowledged before submitted: {v}");
                acked.push(v);
            }
        }
    }
    (submitted, acked)
}

#[test]
fn load_submits_and_acks_every_event_as_json_lines_and_alternates_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("log");
    let d = d.to_str().unwrap();
    let args = [
        "load",
        d,
        "--sessions",
        "4",
        "--events",
        "40",
        "--threads",
        "2",
        "--acks",
    ];
    let out = inflight(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let (submitted, lines) = submissions_and_acks(&out.stdout);
    assert_eq!(lines.len(), 40);
    let mut state: std::collections::BTreeMap<String, (u64, bool)> = Default::default();
    for l in &lines {
        let key = l["key"].as_str().unwrap().to_string();
        let g = l["generation"].as_u64().unwrap();
        let (last, running) = state.get(&key).copied().unwrap_or((0, false));
        match l["event"].as_str().unwrap() {
            "started" => {
                assert!(!running && g == last + 1, "{l}");
                assert!(l["session_id"].is_string());
                assert!(l["started_at_ms"].as_u64().unwrap() > 0, "{l}");
                assert!(l["meta"].is_string(), "{l}");
                state.insert(key, (g, true));
            }
            "completed" => {
                assert!(running && g == last, "{l}");
                assert!(l["at_ms"].as_u64().unwrap() > 0, "{l}");
                state.insert(key, (g, false));
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert!(stderr(&out).contains("events/s"));

    // The lines name the events exactly as the log holds them.
    let mut logged = Vec::new();
    inflight::inspect::for_each_event(
        &inflight::store::FileSource::new(&inflight::FsStorage::default(), d),
        inflight::Policy::Strict,
        |_, e| logged.push(e.to_event()),
    )
    .unwrap();
    let logged: Vec<serde_json::Value> = logged
        .iter()
        .filter_map(|e| match e {
            inflight::Event::Started(r) => Some(serde_json::json!({
                "event": "started", "key": r.key, "session_id": r.session_id,
                "generation": r.generation, "started_at_ms": r.started_at_ms, "meta": r.meta,
            })),
            inflight::Event::Completed {
                key,
                generation,
                at_ms,
            } => Some(serde_json::json!({
                "event": "completed", "key": key, "generation": generation, "at_ms": at_ms,
            })),
            _ => None,
        })
        .collect();
    let by_key = |events: &[serde_json::Value]| {
        let mut m: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
        for e in events {
            m.entry(e["key"].as_str().unwrap().to_string())
                .or_default()
                .push(e.clone());
        }
        m
    };
    // Per key (threads interleave freely), a clean run acknowledges what it submits, and the log
    // holds exactly that, in that order.
    assert_eq!(by_key(&submitted), by_key(&lines));
    assert_eq!(by_key(&logged), by_key(&lines));

    // A second run continues above each key's high-water mark.
    let out = inflight(&["load", d, "--sessions", "4", "--events", "8", "--acks"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, acked) = submissions_and_acks(&out.stdout);
    let first = &acked[0];
    let key = first["key"].as_str().unwrap();
    assert_eq!(first["event"], "started");
    assert_eq!(first["generation"].as_u64().unwrap(), state[key].0 + 1);
}

#[test]
fn demo_recovers_every_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let out = inflight(&[
        "demo",
        "--dir",
        d.to_str().unwrap(),
        "--sessions",
        "50",
        "--threads",
        "2",
        "--kill-after-ms",
        "300",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("result: PASS"), "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(inflight(&["replay"]).status.code(), Some(2));
    assert_eq!(inflight(&["frobnicate"]).status.code(), Some(2));
    let help = inflight(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
}

#[test]
fn replay_applies_the_fallback_only_where_the_log_cannot_speak() {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = open(dir.path());
    let coverage = report.coverage_since_ms.unwrap();
    log.mark_running(run("open-for-long", 1)).unwrap(); // started long ago, still open
    log.mark_running(run("finished", 1)).unwrap();
    log.mark_completed("finished", 1).unwrap();
    drop(log);
    let now = coverage + 60_000;
    let sessions = dir.path().join("sessions.jsonl");
    std::fs::write(
        &sessions,
        format!(
            "{{\"key\":\"finished\",\"last_active_ms\":{}}}\n\
             {{\"key\":\"early\",\"last_active_ms\":{}}}\n\
             \n\
             {{\"key\":\"stale\",\"last_active_ms\":{}}}\n",
            now - 1_000,
            coverage - 10_000,
            coverage - 600_000
        ),
    )
    .unwrap();
    let args = |d: &str| {
        vec![
            "replay".to_string(),
            d.to_string(),
            "--json".into(),
            "--sessions".into(),
            sessions.to_str().unwrap().into(),
            "--window".into(),
            "120".into(),
            "--now".into(),
            now.to_string(),
        ]
    };
    let run_json = |d: &str| {
        let a = args(d);
        let out = inflight(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = run_json(dir.path().to_str().unwrap());
    let v_flagged_with_log = serde_json::json!([
        {"key": "early", "reason": "before-coverage"},
        {"key": "open-for-long", "reason": "log"},
    ]);
    assert_eq!(v["flagged"], v_flagged_with_log);
    assert_eq!(
        v["running"].as_array().unwrap().len(),
        1,
        "the report is still there"
    );
    // No log at all: every session active within the window is a guess, and that is no error.
    let missing = dir.path().join("nothing-here");
    let v = run_json(missing.to_str().unwrap());
    assert_eq!(v["log_found"], false);
    assert_eq!(
        v["flagged"],
        serde_json::json!([
            {"key": "early", "reason": "no-log"},
            {"key": "finished", "reason": "no-log"},
        ])
    );
    // The same sessions from standard input (`--sessions -`) give the same answer.
    let mut a = args(dir.path().to_str().unwrap());
    a[4] = "-".into();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(&a)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(&sessions).unwrap(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_stdin: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_stdin["flagged"], v_flagged_with_log);
    // Bytes that are not text are invalid input, named as such.
    std::fs::write(&sessions, b"{\"key\":\"a\xff\"}\n").unwrap();
    let a = args(dir.path().to_str().unwrap());
    let out = inflight(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    // Without --sessions a missing log is still exit 5; a bad sessions line is exit 6.
    let out = inflight(&["replay", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    std::fs::write(&sessions, "{\"key\":\"a\"}\n").unwrap();
    let a = args(dir.path().to_str().unwrap());
    let out = inflight(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

/// Writes `text` as a checkpoint file in `dir` and imports it into `dir/log`.
fn import_json(dir: &std::path::Path, text: &str) -> (Output, std::path::PathBuf) {
    let file = dir.join("agent_checkpoints.json");
    std::fs::write(&file, text).unwrap();
    let log = dir.join("log");
    let out = inflight(&["import-json", file.to_str().unwrap(), log.to_str().unwrap()]);
    (out, log)
}

#[test]
fn import_json_brings_a_checkpoint_into_a_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = import_json(
        dir.path(),
        r#"{
            "agent:main:telegram:dm:4242": {"session_id": "20261126_104512_9f1c2ab0", "started_at": 1764150000.1239},
            "agent:main:http:c-5": {"session_id": "20261126_2", "started_at": 1764150001}
        }"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 2 running run(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = inflight(&["replay", log.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let running: Vec<_> = v["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["session_id"].as_str().unwrap().to_string(),
                r["generation"].as_u64().unwrap(),
                r["started_at_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        running,
        [
            (
                "agent:main:http:c-5".into(),
                "20261126_2".into(),
                1,
                1_764_150_001_000
            ),
            (
                "agent:main:telegram:dm:4242".into(),
                "20261126_104512_9f1c2ab0".into(),
                1,
                1_764_150_000_123
            ),
        ]
    );
}

#[test]
fn import_json_refuses_a_malformed_file_with_one_line_naming_the_key_and_writes_nothing() {
    let long_key = "k".repeat(inflight::limits::KEY_BYTES_MAX + 1);
    let over_limit = format!(
        r#"{{"ok": {{"session_id": "s", "started_at": 1}}, "{long_key}": {{"session_id": "s", "started_at": 1}}}}"#
    );
    let cases = [
        (
            r#"{"a": {"session_id": "s", "started_at": 1},"#,
            "EOF while parsing",
        ),
        ("[]", "the file must be one JSON object"),
        (
            r#"{"a": {"started_at": 1}}"#,
            r#"key "a": missing field "session_id""#,
        ),
        (
            r#"{"a": {"session_id": 7, "started_at": 1}}"#,
            "session_id must be a string",
        ),
        (
            r#"{"a": {"session_id": "s", "started_at": "noon"}}"#,
            "started_at must be a number",
        ),
        (
            r#"{"a": {"session_id": "s", "started_at": -5}}"#,
            "before the Unix epoch",
        ),
        (
            r#"{"a": {"session_id": "s", "started_at": 1764150000123}}"#,
            "not milliseconds",
        ),
        (
            r#"{"a": {"session_id": "s", "started_at": 1}, "a": {"session_id": "t", "started_at": 2}}"#,
            "given twice",
        ),
        (over_limit.as_str(), "over the limit"),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (out, log) = import_json(dir.path(), text);
        assert_eq!(out.status.code(), Some(6), "{text}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("agent_checkpoints.json"), "{err}");
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(!log.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "{text}");
    }
}

#[test]
fn import_json_into_an_existing_log_exits_8_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (existing, _) = open(&log);
    existing.mark_running(run("a", 4)).unwrap();
    drop(existing);
    let before = std::fs::read(segment(&log, 1)).unwrap();

    let (out, _) = import_json(dir.path(), r#"{"b": {"session_id": "s", "started_at": 1}}"#);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("already holds an inflight log"), "{err}");
    assert_eq!(std::fs::read(segment(&log, 1)).unwrap(), before);
    let (_log, report) = open(&log);
    assert_eq!(common::running(&report), [("a".into(), 4)]);
}

#[test]
fn import_json_of_a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let log = dir.path().join("log");
    let out = inflight(&[
        "import-json",
        missing.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
    assert!(!log.exists());
}

#[test]
fn compact_writes_a_snapshot_jq_can_read_and_refuses_a_held_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 3)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed("b", 1).unwrap();
    // A gateway holds the log: refused, with one line naming the holder.
    let out = inflight(&["compact", d]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1);
    assert!(stderr(&out).contains(&std::process::id().to_string()));
    drop(log);

    let out = inflight(&["compact", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["running"].as_u64(), v["marks"].as_u64()),
        (Some(1), Some(2))
    );
    let snapshot = std::fs::read(v["snapshot"].as_str().unwrap()).unwrap();
    let snapshot: serde_json::Value = serde_json::from_slice(&snapshot).unwrap();
    // A row per key: a's with its run (14 members, recoveries the tenth), b's mark alone.
    let rows = &snapshot["body"]["keys"];
    assert_eq!(
        (&rows[0][0], rows[0].as_array().unwrap().len()),
        (&"a".into(), 14)
    );
    assert_eq!(rows[0][9], 0);
    assert_eq!(
        (&rows[1][0], rows[1].as_array().unwrap().len()),
        (&"b".into(), 3)
    );

    let out = inflight(&["replay", d, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["snapshot"]["file"]
            .as_str()
            .unwrap()
            .starts_with("snapshot-")
    );
    assert_eq!(v["running"][0]["key"], "a");

    let out = inflight(&["compact", d, "--retention", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_damaged_snapshot_exits_3_under_strict_and_is_a_gap_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    let done = log.compact().unwrap();
    log.mark_running(run("b", 1)).unwrap();
    drop(log);
    let mut bytes = std::fs::read(&done.snapshot).unwrap();
    let i = bytes.len() - 10;
    bytes[i] ^= 0x01;
    std::fs::write(&done.snapshot, bytes).unwrap();

    let out = inflight(&["replay", d, "--strict"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("snapshot"), "{}", stderr(&out));
    let out = inflight(&["replay", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corruption"].as_array().unwrap().len(), 1);
    assert_eq!(v["snapshot"], serde_json::Value::Null);
    assert_eq!(
        v["running"][0]["key"], "b",
        "only what came after the snapshot"
    );
    let out = inflight(&["compact", d, "--strict"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn compact_of_a_path_with_no_log_exits_5_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let out = inflight(&["compact", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1);
    assert!(!missing.exists());
}

#[test]
fn bench_measures_the_limit_and_every_thread_count_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = inflight(&[
        "bench",
        "--quick",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    let threads: Vec<u64> = results
        .iter()
        .map(|r| r["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, [1, 1, 1, 4, 16, 64]);
    assert!(results[0]["what"].as_str().unwrap().contains("growing"));
    assert!(results[1]["what"].as_str().unwrap().contains("overwrite"));
    assert!(results[1]["what"].as_str().unwrap().contains("the limit"));
    for r in results {
        assert!(r["events"].as_u64().unwrap() > 0, "{r}");
        assert!(r["p50_us"].as_u64().unwrap() <= r["p99_us"].as_u64().unwrap());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the bench removes its temporary directory"
    );
}

#[test]
fn load_on_a_key_at_the_largest_generation_fails_instead_of_wrapping() {
    // Finding: with a snapshot whose marks were at u64::MAX, `load` allocated generation 0,
    // acknowledged it, and the start was stale, so it was not running afterwards.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("load:0", u64::MAX)).unwrap();
    log.mark_completed("load:0", u64::MAX).unwrap();
    log.compact().unwrap();
    drop(log);
    let d = dir.path().to_str().unwrap();
    let out = inflight(&["load", d, "--sessions", "1", "--events", "4"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no generation left"),
        "{}",
        stderr(&out)
    );
    let (_log, report) = open(dir.path());
    assert!(report.running.is_empty());
    assert_eq!(report.counters.stale_starts, 0, "nothing stale was written");
}

#[cfg(not(feature = "prometheus"))]
#[test]
fn load_metrics_without_the_prometheus_feature_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = inflight(&[
        "load",
        log.to_str().unwrap(),
        "--events",
        "10",
        "--metrics",
        "127.0.0.1:9187",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("default features (`cargo build --release -p inflight-cli`)"),
        "{}",
        stderr(&out)
    );
    assert!(!log.exists(), "nothing is created");
}

#[test]
fn replay_dump_and_stats_show_the_gateways_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (log, _) = open(dir.path());
    let waiting = log
        .begin_run("agent:main:http:waiting", "s1", None)
        .unwrap();
    let looped = log.begin_run("agent:main:http:looped", "s2", None).unwrap();
    let done = log.begin_run("agent:main:http:done", "s3", None).unwrap();
    log.progress(&waiting, Some("reply_ready".into())).unwrap();
    log.complete_run(&done).unwrap();
    drop(log);
    let (log, _) = open(dir.path()); // a crash: both are interrupted
    log.mark_resume_pending(&waiting.key, "restart_interrupted")
        .unwrap();
    log.suspend(&looped.key).unwrap();
    drop(log);

    let out = inflight(&["replay", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.lines().any(|l| l.contains("agent:main:http:waiting")
            && l.contains("pending (restart_interrupted)")
            && l.contains("reply_ready")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("agent:main:http:looped") && l.contains("suspended")),
        "{text}"
    );
    let out = inflight(&["replay", d, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"][1]["pending"]["reason"], "restart_interrupted");
    assert_eq!(v["running"][1]["running"], false);
    assert!(v["running"][0]["suspended_at_ms"].is_u64());
    assert_eq!(v["stop_loop_threshold"], 3);

    let out = inflight(&["dump", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        format!(
            "finished   agent:main:http:done  generation 1  token {}",
            done.token()
        ),
        "progress   agent:main:http:waiting  generation 1  meta reply_ready".to_string(),
        "pending    agent:main:http:waiting  reason restart_interrupted".to_string(),
        "suspended  agent:main:http:looped".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected} in {text}");
    }
    let out = inflight(&["dump", d, "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("\"event\":\"finished\"")
            && l.contains(&format!("\"token\":\"{}\"", done.token()))),
        "{text}"
    );
    let out = inflight(&["stats", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("decisions:  1 finished by token, 1 resume-pending, 1 suspended"),
        "{text}"
    );
}

#[test]
fn completions_and_the_manual_page_come_from_the_commands_themselves() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = inflight(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        // Every command is offered, and the options of one of them.
        for command in ["replay", "verify", "takeover", "import-json", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
        assert!(script.contains("--database"), "{shell} lacks --database");
    }
    let out = inflight(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));

    let out = inflight(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH inflight 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        "inflight\\-replay",
    ] {
        assert!(page.contains(section), "the page lacks {section}");
    }
}

#[test]
fn import_json_reads_standard_input_given_as_a_dash() {
    use std::io::Write;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(["import-json", "-", dir.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"agent:main:telegram:dm:1": {"session_id": "s1", "started_at": 1764150000.5}}"#,
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from standard input"));
    let (_log, report) = open(&dir);
    assert_eq!(report.running.len(), 1);
    assert_eq!(report.running[0].run.key, "agent:main:telegram:dm:1");

    // A malformed one is named as standard input, with where it breaks.
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args([
            "import-json",
            "-",
            parent.path().join("other").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{\"k\": ").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input"), "{}", stderr(&out));
}

/// `inflight ARGS` on a terminal (a pseudo-terminal from util-linux's `script`): everything it
/// wrote there, stdout and stderr together. `None` where `script` is missing.
#[cfg(target_os = "linux")]
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let mut command = String::from(env!("CARGO_BIN_EXE_inflight"));
    for arg in args {
        command.push_str(&format!(" '{arg}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .ok()?;
    assert!(out.status.success(), "{command}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
#[cfg(target_os = "linux")]
fn a_progress_bar_on_a_terminal_only_and_never_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let dir = dir.to_str().unwrap();
    // A load of a second and a half redraws its bar every 100 ms: drawn for certain.
    let Some(shown) = on_a_terminal(&["load", dir, "--seconds", "1.5"]) else {
        eprintln!("no `script` here: the progress bar is not checked");
        return;
    };
    assert!(shown.contains("s, ETA"), "no bar on a terminal: {shown:?}");
    assert!(
        shown.contains("events/s"),
        "the summary is still printed: {shown:?}"
    );
    // Not on a pipe: stderr holds nothing but what it held before.
    let piped = inflight(&["load", dir, "--seconds", "0.5"]);
    assert!(piped.status.success());
    assert!(!stderr(&piped).contains("ETA"), "{}", stderr(&piped));
    // And never under --json, even on a terminal: the output is JSON and only JSON.
    let json = on_a_terminal(&["stats", dir, "--json"]).unwrap();
    let value: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert!(value.is_object());
    let json = on_a_terminal(&["compact", dir, "--json"]).unwrap();
    let value: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert!(value["snapshot"].is_string());
}
