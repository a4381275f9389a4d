//! The offline tools: `dump` (and `--follow`), `verify`, `stats` and `replay --at`, run as the
//! real binary against logs built here (clean, damaged, compacted, from a newer format, and
//! live), checking what they print; and the library walk they share, checked against replay.

mod common;

use inflight::storage::StoreResult;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{frame_offsets, open, run, segment, small_segments};
use inflight::frame::{FORMAT_VERSION, SEGMENT_HEADER_BYTES, SegmentHeader, encode_frame};
use inflight::inspect::{Item, Point, Unknowable, state_at, walk};
use inflight::store::FileSource;
use inflight::{Event, FsStorage, Generation, Log, Options, Policy, Run, UnixMs};

fn inflight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(args)
        .output()
        .expect("run inflight")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn d(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

/// Every file of `dir` with its bytes, to show that a command changed none.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

/// A log of four records with a stale start (seq 3) and a stale completion (seq 5): a starts
/// (1), a is superseded (2), a's old generation starts late (3), b starts (4), a's first run
/// completes late (5), a completes (6).
fn log_with_stale_records(dir: &Path) {
    let options = Options::default().record_stale_starts(true);
    let log = Log::open(dir, options).unwrap().log;
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("a", 2)).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed_at("a", 1, UnixMs(3_000)).unwrap();
    log.mark_completed_at("a", 2, UnixMs(5_000)).unwrap();
}

#[test]
fn dump_prints_every_event_with_its_place_and_marks_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    log_with_stale_records(dir.path());
    let bytes = std::fs::read(segment(dir.path(), 1)).unwrap();
    let offsets = frame_offsets(&bytes);

    let out = inflight(&["dump", d(dir.path())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}"); // segment, six events, end
    assert!(
        lines[0].starts_with("-- segment 00000000000000000001.log"),
        "{text}"
    );
    for (i, line) in lines[1..7].iter().enumerate() {
        let place = format!("00000000000000000001.log:{}", offsets[i]);
        assert!(
            line.trim_start().starts_with(&format!("{} ", i + 1)),
            "{line}"
        );
        assert!(line.contains(&place), "{line} lacks {place}");
    }
    assert!(lines[1].contains("started    a  generation 1  session a-s1"));
    assert!(lines[1].contains("1970-01-01T00:00:01.001Z") && lines[1].contains("1001"));
    assert!(
        lines[2].contains("(replaces generation 1, still in flight)"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("STALE: below the key's high-water mark 2"),
        "{}",
        lines[3]
    );
    assert!(
        lines[5].contains("STALE: generation 2 is running"),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].contains("completed  a  generation 2  (ran 4.0s)"),
        "{}",
        lines[6]
    );
    assert!(!lines[4].contains("STALE") && !lines[6].contains("STALE"));
    assert!(
        lines[7].starts_with("-- end: the last record is record 6"),
        "{}",
        lines[7]
    );
    assert!(lines[7].contains("1 run(s) in flight"), "{}", lines[7]);
}

#[test]
fn dump_json_is_one_object_a_line_and_the_filters_select_events() {
    let dir = tempfile::tempdir().unwrap();
    log_with_stale_records(dir.path());

    let all = json_lines(&inflight(&["dump", d(dir.path()), "--json"]));
    let items: Vec<&str> = all.iter().map(|v| v["item"].as_str().unwrap()).collect();
    assert_eq!(
        items,
        [
            "segment", "event", "event", "event", "event", "event", "event", "end"
        ]
    );
    let stale: Vec<u64> = all
        .iter()
        .filter(|v| v["stale"] == true)
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(stale, [3, 5]);
    let e = &all[1];
    assert_eq!(e["event"], "started");
    assert_eq!(e["key"], "a");
    assert_eq!(e["session_id"], "a-s1");
    assert_eq!(e["generation"], 1);
    assert_eq!(e["at_ms"], 1_001);
    assert_eq!(e["at"], "1970-01-01T00:00:01.001Z");
    assert_eq!(e["offset"], SEGMENT_HEADER_BYTES);
    assert_eq!(e["meta"], serde_json::Value::Null);
    assert_eq!(all[3]["fold"], "stale_start");
    assert_eq!(all[3]["high_water"], 2);
    assert_eq!(all[5]["fold"], "stale_completion");
    assert_eq!(all[5]["running_generation"], 2);
    assert_eq!(all[6]["ran_ms"], 5_000 - 1_002);
    assert_eq!(all[7]["last_seq"], 6);
    assert_eq!(all[7]["running"], 1);

    let seqs = |args: &[&str]| -> Vec<u64> {
        let mut full = vec!["dump", d(dir.path()), "--json"];
        full.extend_from_slice(args);
        let out = inflight(&full);
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out)
            .iter()
            .filter(|v| v["item"] == "event")
            .map(|v| v["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&["--key", "b"]), [4]);
    assert_eq!(seqs(&["--from", "2", "--to", "4"]), [2, 3, 4]);
    assert_eq!(seqs(&["--since", "5000"]), [6]);
    assert_eq!(seqs(&["--since", "1970-01-01T00:00:05Z"]), [6]);
    assert_eq!(seqs(&["--since", "1970-01-01 00:00:02.5"]), [5, 6]);
    let bad = inflight(&["dump", d(dir.path()), "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn dump_shows_corruption_where_it_lies_and_verify_exits_14_naming_it() {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b", "c", "d"], "");
    let offsets = frame_offsets(&bytes);
    bytes[offsets[1] + 20] ^= 0x40; // inside record 2's payload
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();
    let before = files(dir.path());

    let out = inflight(&["dump", d(dir.path())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].trim_start().starts_with("1 "), "{text}");
    let expected = format!(
        "!! CORRUPTION in 00000000000000000001.log bytes {}..{}: no valid record here; a gap \
         between record 1",
        offsets[1], offsets[2]
    );
    assert!(lines[2].starts_with(&expected), "{text}");
    assert!(lines[2].contains("and record 3"), "{text}");
    assert!(lines[3].trim_start().starts_with("3 "), "{text}");

    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(14), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "CORRUPTION  00000000000000000001.log bytes {}..{}",
            offsets[1], offsets[2]
        )),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("at byte {}", offsets[1])), "{err}");

    let v: serde_json::Value =
        serde_json::from_slice(&inflight(&["verify", d(dir.path()), "--json"]).stdout).unwrap();
    assert_eq!(v["verdict"], "corrupt");
    assert_eq!(v["findings"][0]["start_offset"], offsets[1]);
    assert_eq!(v["findings"][0]["severity"], "corruption");

    assert_eq!(
        files(dir.path()),
        before,
        "the tools change no byte, add no file"
    );
}

#[test]
fn an_incomplete_last_record_is_a_torn_tail_not_corruption() {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b"], "");
    let full = bytes.len();
    // Half of a next frame, as a crash (or an append in progress) leaves it.
    let header = SegmentHeader::decode(&bytes).unwrap();
    let mut frame = Vec::new();
    let event = Event::Started(run("c", 1));
    encode_frame(
        header.salt,
        3,
        &inflight::event::encode_event(&event),
        &mut frame,
    );
    bytes.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();

    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(13), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!(
        "TORN TAIL   00000000000000000001.log bytes {full}..{}",
        bytes.len()
    )));
    let text = stdout(&inflight(&["dump", d(dir.path())]));
    let end = text.lines().last().unwrap();
    assert!(
        end.contains(&format!(
            "then {} byte(s) at 00000000000000000001.log:{full}: an incomplete record, still \
             being written",
            frame.len() / 2
        )),
        "{end}"
    );
    assert!(!text.contains("CORRUPTION"), "{text}");

    // Much more garbage than one record can be is corruption reaching the end.
    bytes.extend_from_slice(&[0xa5; 9000]);
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();
    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(14), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("a gap between record 2 (") && text.contains(" ms) and the end of the log"),
        "{text}"
    );
}

#[test]
fn a_compacted_log_shows_its_snapshot_and_time_travel_refuses_to_guess_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for key in ["a", "b", "c"] {
        log.mark_running(run(key, 1)).unwrap(); // records 1..=3
    }
    log.mark_completed_at("a", 1, UnixMs(2_000)).unwrap(); // 4
    let compacted = log.compact().unwrap(); // a retention record, 5, then the snapshot
    assert_eq!(compacted.last_seq, 5);
    log.mark_completed_at("b", 1, UnixMs(3_000)).unwrap(); // 6
    drop(log);

    let text = stdout(&inflight(&["dump", d(dir.path())]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "-- snapshot snapshot-00000000000000000005.json: the state after record 5"
        ),
        "{text}"
    );
    assert!(lines[0].contains("2 running"), "{text}");
    assert!(lines[0].contains("replay starts here"), "{text}");
    assert!(
        lines[0].contains("records 1..=5 are only in this snapshot"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("-- segment 00000000000000000002.log"),
        "{text}"
    );
    assert!(lines[2].trim_start().starts_with("6 ") && lines[2].contains("completed  b"));

    // Before the snapshot's last record the log no longer knows: exit 9, never a guess.
    let out = inflight(&["replay", d(dir.path()), "--at", "3"]);
    assert_eq!(out.status.code(), Some(9), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("records 1..=5 are no longer in the log"),
        "{err}"
    );
    assert!(err.contains("snapshot-00000000000000000005.json"), "{err}");
    assert!(stdout(&out).is_empty());
    let out = inflight(&["replay", d(dir.path()), "--at-time", "1500"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));

    // At the snapshot and after it, it does.
    let at = |seq: &str| -> Vec<String> {
        let out = inflight(&["replay", d(dir.path()), "--at", seq, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["running"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(at("5"), ["b", "c"]);
    assert_eq!(at("6"), ["c"]);
    assert_eq!(at("100"), ["c"]);

    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("1 snapshot(s)"), "{}", stdout(&out));
}

#[test]
fn replay_at_gives_the_running_set_of_every_point_as_the_live_log_held_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments().retention(None).record_stale_starts(true);
    let log = Log::open(dir.path(), options).unwrap().log;
    // After the log's coverage began: before it, time travel refuses.
    let t0 = inflight::environment::now_ms() + 1_000;
    // What the live log held after each record, by sequence number.
    let mut held: Vec<Vec<(String, u64)>> = vec![vec![]];
    let keys = ["a", "b", "c", "d", "e"];
    for i in 0..300u64 {
        let key = keys[(i * 7 % 5) as usize];
        let g = log.high_water(key).map_or(0, |m| m.generation);
        if i % 3 == 2 {
            log.mark_completed_at(key, g.saturating_sub(i % 2), UnixMs(t0 + i))
                .unwrap();
        } else {
            // Now and then a late start of an older generation: stale.
            let generation = if i % 4 == 3 && g > 1 { g - 1 } else { g + 1 };
            let r = Run::new(key, "s", Generation(generation), UnixMs(t0 + i)).with_meta(META);
            log.mark_running(r).unwrap();
        }
        held.push(
            log.running()
                .into_iter()
                .map(|r| (r.run.key, r.run.generation))
                .collect(),
        );
    }
    drop(log);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 3,
        "rollovers"
    );
    let storage = FsStorage::default();
    let files = FileSource::new(&storage, dir.path());
    for (seq, expected) in held.iter().enumerate() {
        let state = state_at(&files, Point::Seq(seq as u64)).unwrap().unwrap();
        let got: Vec<(String, u64)> = state
            .running
            .iter()
            .map(|r| (r.run.key.clone(), r.run.generation))
            .collect();
        assert_eq!(&got, expected, "at record {seq}");
        // Each record is stamped t0 + its index: the same state by time.
        if seq > 0 {
            let by_time = state_at(&files, Point::TimeMs(t0 + seq as u64 - 1))
                .unwrap()
                .unwrap();
            assert_eq!(by_time.running, state.running, "at time of record {seq}");
        }
    }
    let out = inflight(&["replay", d(dir.path()), "--at", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("right after record 7: the state after record 7"),
        "{text}"
    );
    assert!(
        text.contains(&format!("in flight then: {}", held[7].len())),
        "{text}"
    );
}

#[test]
fn time_travel_into_damage_is_refused_and_past_it_reports_the_gap() {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b", "c", "d"], "");
    let offsets = frame_offsets(&bytes);
    bytes[offsets[1] + 20] ^= 0x40; // record 2 is lost
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();
    let storage = FsStorage::default();
    let files = FileSource::new(&storage, dir.path());
    let at = |p| state_at(&files, p).unwrap();
    assert!(matches!(at(Point::Seq(1)), Ok(s) if s.running.len() == 1 && s.gaps.is_empty()));
    assert!(
        matches!(at(Point::Seq(2)), Err(Unknowable::Damaged(c)) if c.start_offset == offsets[1] as u64)
    );
    let past = at(Point::Seq(3)).unwrap();
    assert_eq!(past.running.len(), 2, "a and c: b's start is in the damage");
    assert_eq!(past.gaps.len(), 1);
    let out = inflight(&["replay", d(dir.path()), "--at", "2"]);
    assert_eq!(out.status.code(), Some(9));
    assert!(stderr(&out).contains(&format!("bytes {}..{}", offsets[1], offsets[2])));
}

#[test]
fn a_segment_from_a_newer_format_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let header = SegmentHeader {
        version: FORMAT_VERSION + 1,
        segment_no: 1,
        base_seq: 1,
        salt: 7,
        log_created_ms: 1,
        segment_created_ms: 1,
    };
    std::fs::write(segment(dir.path(), 1), header.encode()).unwrap();
    for args in [
        vec!["dump"],
        vec!["stats"],
        vec!["replay", "--at", "1"],
        vec!["verify"],
    ] {
        let mut full = args.clone();
        full.push(d(dir.path()));
        let out = inflight(&full);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "format version {} is not supported",
                FORMAT_VERSION + 1
            )),
            "{err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?} printed before refusing");
    }
    let missing = dir.path().join("nope");
    let out = inflight(&["verify", d(&missing)]);
    assert_eq!(out.status.code(), Some(5));
    let out = inflight(&["dump", d(&missing)]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn stats_counts_kinds_stale_records_durations_open_runs_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().record_stale_starts(true);
    let log = Log::open(dir.path(), options).unwrap().log;
    // Runs of 100, 200, ..., 1000 ms on key k (generations 1..=10).
    for g in 1..=10u64 {
        log.mark_running(Run::new("k", "s", Generation(g), UnixMs(g * 10_000)))
            .unwrap();
        log.mark_completed_at("k", g, UnixMs(g * 10_000 + g * 100))
            .unwrap();
    }
    log.mark_running(Run::new("k", "s", Generation(3), UnixMs(1)))
        .unwrap(); // stale
    log.mark_completed_at("gone", 1, UnixMs(1)).unwrap(); // unknown
    log.mark_running(Run::new("old", "s", Generation(1), UnixMs(1_000)))
        .unwrap();
    log.mark_running(Run::new("new", "s", Generation(1), UnixMs(9_000)))
        .unwrap();
    drop(log);

    let out = inflight(&["stats", d(dir.path()), "--json", "--now", "10000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"]["started"], 13);
    assert_eq!(v["events"]["completed"], 11);
    assert_eq!(v["fold"]["stale_starts"], 1);
    assert_eq!(v["fold"]["unknown_completions"], 1);
    assert_eq!(v["durations"]["count"], 10);
    assert_eq!(v["durations"]["p50_ms"], 500);
    assert_eq!(v["durations"]["p99_ms"], 1_000);
    assert_eq!(v["durations"]["max_ms"], 1_000);
    assert_eq!(v["longest_running"][0]["key"], "old");
    assert_eq!(v["longest_running"][0]["age_ms"], 9_000);
    assert_eq!(v["longest_running"][1]["key"], "new");
    assert_eq!(v["busiest_keys"][0]["key"], "k");
    assert_eq!(v["busiest_keys"][0]["events"], 21);
    assert_eq!(v["segments"], 1);
    // Its data: the reserved space after the records is not counted.
    let data = inflight::frame::reserved_start(&std::fs::read(segment(dir.path(), 1)).unwrap());
    assert!(data > SEGMENT_HEADER_BYTES);
    assert_eq!(v["segment_bytes"], data);
    assert_eq!(v["running"], 2);

    let text = stdout(&inflight(&["stats", d(dir.path()), "--now", "10000"]));
    assert!(
        text.contains("10 completed run(s): p50 500 ms, p99 1000 ms, max 1000 ms"),
        "{text}"
    );
    assert!(text.contains("1 stale start(s)"), "{text}");
}

#[test]
fn every_command_has_help_with_examples() {
    for command in ["dump", "verify", "stats", "replay"] {
        let out = inflight(&[command, "--help"]);
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(text.contains("Examples:"), "{command}: {text}");
        assert!(
            text.contains(&format!("inflight {command} /")),
            "{command}: {text}"
        );
    }
    let verify = stdout(&inflight(&["verify", "--help"]));
    assert!(verify.contains("13  a torn tail only") && verify.contains("14  corruption"));
}

/// The walk reports what an open's replay reports, on logs clean and damaged in each way the
/// format document names, so that the tools and recovery never disagree.
#[test]
fn the_walk_agrees_with_replay() {
    type Damage = fn(&Path);
    let flip_mid_segment: Damage = |dir| {
        let path = segment(dir, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let offsets = frame_offsets(&bytes);
        bytes[offsets[offsets.len() / 2] + 18] ^= 1;
        std::fs::write(path, bytes).unwrap();
    };
    let garbage_at_the_end: Damage = |dir| {
        let mut segments: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(segments.last().unwrap())
            .unwrap();
        f.write_all(&[0x5a; 100]).unwrap();
    };
    let lose_a_segment: Damage = |dir| std::fs::remove_file(segment(dir, 2)).unwrap();
    let damage_the_snapshot: Damage = |dir| {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.to_string_lossy().ends_with(".json") {
                let mut bytes = std::fs::read(&path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 1;
                std::fs::write(&path, bytes).unwrap();
            }
        }
    };
    let cases: [(&str, bool, Option<Damage>); 7] = [
        ("clean", false, None),
        ("flip", false, Some(flip_mid_segment)),
        ("garbage", false, Some(garbage_at_the_end)),
        ("lost segment", false, Some(lose_a_segment)),
        ("compacted", true, None),
        ("compacted, garbage", true, Some(garbage_at_the_end)),
        ("damaged snapshot", true, Some(damage_the_snapshot)),
    ];
    for (name, compact, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_segments()).unwrap().log;
        for i in 0..1500u64 {
            let key = format!("k{}", i / 2 % 17);
            if i % 2 == 0 {
                log.begin_run(&key, "s", Some(META.into())).unwrap();
            } else {
                let g = log.high_water(&key).unwrap().generation;
                log.mark_completed(&key, g - i % 3 / 2).unwrap();
            }
            if compact && i == 1000 {
                log.compact().unwrap();
            }
        }
        drop(log);
        if let Some(damage) = damage {
            damage(dir.path());
        }
        let replayed = inflight::inspect::read_only(dir.path(), Policy::SkipDamaged).unwrap();
        let mut events = 0;
        let walked = walk(
            &FileSource::new(&FsStorage { mmap: true }, dir.path()),
            |item| {
                if let Item::Event(_) = item {
                    events += 1;
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        let report = &replayed.report;
        assert_eq!(walked.corruption, report.corruption, "{name}");
        assert_eq!(walked.torn_tail, report.torn_tail, "{name}");
        assert_eq!(walked.last_seq, report.last_seq, "{name}");
        assert_eq!(walked.set, replayed.set, "{name}");
        assert_eq!(events, report.records, "{name}");
        if name != "clean" && name != "compacted" {
            assert!(
                !report.corruption.is_empty() || report.torn_tail.is_some(),
                "{name}: the damage was not noticed at all"
            );
        }
    }
}

#[test]
fn progress_follows_the_items_to_the_end_of_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap().log;
    append(&log, 0, 600);
    drop(log);
    let storage = FsStorage::default();
    let mut reports = Vec::new();
    let mut reader = inflight::inspect::Reader::new(FileSource::new(&storage, dir.path()));
    reader.on_progress(|at| reports.push(at));
    let (mut segments, mut data) = (0, 0);
    reader
        .read(|item| {
            if let Item::Segment(s) = item {
                segments += 1;
                data += s.bytes;
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let walked = reader.finish();
    assert!(
        segments >= 3,
        "the log crosses rollovers: {segments} segments"
    );
    assert_eq!(
        walked.bytes_read, data,
        "a clean walk scans every segment's data"
    );
    assert_eq!(reports.first(), Some(&(SEGMENT_HEADER_BYTES as u64)));
    assert_eq!(
        reports.last(),
        Some(&data),
        "the end of the last segment is reported"
    );
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
}

/// A run's meta, long enough that a few hundred events cross segment rollovers.
const META: &str = "{\"resume_from\":\"msg-0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\"}";

/// Appends `events` starts and completions to an open log, crossing rollovers.
fn append(log: &Log, from: u64, events: u64) {
    for i in from..from + events {
        let key = format!("live:{}", i / 2 % 5);
        if i % 2 == 0 {
            log.begin_run(&key, "s", Some(META.into())).unwrap();
        } else {
            let g = log.high_water(&key).unwrap().generation;
            log.mark_completed(&key, g).unwrap();
        }
    }
}

#[test]
fn follow_prints_what_a_live_gateway_appends_across_rollovers_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments().compact_after_bytes(None);
    let log = Log::open(dir.path(), options).unwrap().log;
    append(&log, 0, 50);

    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args([
            "dump",
            d(dir.path()),
            "--follow",
            "--json",
            "--poll-ms",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let wait_for = |what: &dyn Fn(&serde_json::Value) -> bool,
                    seen: &mut Vec<serde_json::Value>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.iter().any(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) => seen.push(v),
                Err(_) => panic!("gave up waiting; saw {seen:#?}"),
            }
        }
    };
    let seq_is = |n: u64| move |v: &serde_json::Value| v["item"] == "event" && v["seq"] == n;
    wait_for(&|v: &serde_json::Value| v["item"] == "end", &mut seen);

    // Appended while it follows, crossing rollovers; then a compaction removes the segments it
    // read, and more is appended after it.
    append(&log, 50, 150);
    wait_for(&seq_is(200), &mut seen);
    let compacted = log.compact().unwrap();
    assert!(compacted.segments_removed > 0);
    append(&log, 200, 100);
    let last = compacted.last_seq + 100;
    wait_for(&seq_is(last), &mut seen);
    child.kill().unwrap();
    child.wait().unwrap();

    let seqs: Vec<u64> = seen
        .iter()
        .filter(|v| v["item"] == "event")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<u64>>(),
        "every record once, in order"
    );
    let segments = seen.iter().filter(|v| v["item"] == "segment").count();
    assert!(segments >= 3, "crossed rollovers: {segments}");
    assert!(
        seen.iter()
            .any(|v| v["item"] == "snapshot" && v["role"] == "written" && v["compacted"].is_null()),
        "the compaction's snapshot is shown, and no record was lost to it"
    );
    assert!(!seen.iter().any(|v| v["item"] == "damage"), "{seen:#?}");
}

#[test]
fn follow_waits_for_a_record_still_being_written() {
    let (dir, bytes) = common::log_with_runs(&["a", "b"], "");
    let path = segment(dir.path(), 1);
    let header = SegmentHeader::decode(&bytes).unwrap();
    let mut frame = Vec::new();
    let event = Event::Started(run("c", 1));
    encode_frame(
        header.salt,
        3,
        &inflight::event::encode_event(&event),
        &mut frame,
    );
    // Written as the writer writes: over the reserved space after the last record.
    let half = frame.len() / 2;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let at = bytes.len() as u64;
    inflight::storage::write_all_at(&file, &frame[..half], at).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args([
            "dump",
            d(dir.path()),
            "--follow",
            "--json",
            "--poll-ms",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let mut v = next();
    while v["item"] != "end" {
        v = next();
    }
    assert_eq!(v["torn_tail"]["bytes"], half, "{v}");
    // A few polls later, the rest of the record arrives.
    std::thread::sleep(Duration::from_millis(100));
    inflight::storage::write_all_at(&file, &frame[half..], at + half as u64).unwrap();
    let v = next();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(v["item"], "event", "not damage: {v}");
    assert_eq!(v["seq"], 3);
    assert_eq!(v["key"], "c");
    assert_eq!(v["offset"], bytes.len());
}

#[test]
fn the_tools_take_no_lock_and_work_while_a_gateway_holds_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    append(&log, 0, 10);
    for args in [
        vec!["dump"],
        vec!["verify"],
        vec!["stats"],
        vec!["replay", "--at", "5"],
    ] {
        let mut full = args.clone();
        full.push(d(dir.path()));
        let out = inflight(&full);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    append(&log, 10, 2); // the writer is undisturbed
    drop(log);
    let without_lock = tempfile::tempdir().unwrap();
    let log = Log::open(without_lock.path(), Options::default())
        .unwrap()
        .log;
    append(&log, 0, 2);
    drop(log);
    std::fs::remove_file(without_lock.path().join("LOCK")).unwrap();
    let before = files(without_lock.path());
    for command in ["dump", "verify", "stats"] {
        assert!(
            inflight(&[command, d(without_lock.path())])
                .status
                .success()
        );
    }
    assert_eq!(
        files(without_lock.path()),
        before,
        "no LOCK file made, no byte changed"
    );
}

/// A storage that compacts the log (offline, as `inflight compact` would) right before the
/// first opening of segment 1: the walk listed the directory before the compaction and finds
/// the segment gone when it comes to read it.
#[derive(Debug)]
struct CompactsBeforeTheFirstRead {
    inner: FsStorage,
    dir: std::path::PathBuf,
    done: std::sync::atomic::AtomicBool,
}

impl inflight::Storage for CompactsBeforeTheFirstRead {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        self.inner.create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        self.inner.is_dir(dir)
    }
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &Path) -> StoreResult<Box<dyn inflight::StorageFile>> {
        self.inner.create(path)
    }
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn inflight::StorageFile>> {
        if path == segment(&self.dir, 1)
            && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            inflight::compaction::compact_dir(&self.dir, Options::default()).unwrap();
        }
        self.inner.open(path, write)
    }
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> StoreResult<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<inflight::storage::DirLock, inflight::storage::LockError> {
        self.inner.lock(dir)
    }
}

#[test]
fn a_segment_a_compaction_removes_mid_read_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap().log;
    append(&log, 0, 300);
    drop(log);
    assert!(segment(dir.path(), 2).exists());
    let storage = CompactsBeforeTheFirstRead {
        inner: FsStorage::default(),
        dir: dir.path().to_path_buf(),
        done: false.into(),
    };
    let mut snapshots = Vec::new();
    let mut events = 0;
    let walked = walk(&FileSource::new(&storage, dir.path()), |item| {
        match item {
            Item::Snapshot(s) => snapshots.push((s.file.to_string(), s.compacted)),
            Item::Event(_) => events += 1,
            Item::Damage(d) => panic!("{:?}", d.region),
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        !segment(dir.path(), 1).exists(),
        "the compaction ran mid-read"
    );
    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    let last = replayed.report.snapshot.as_ref().unwrap().last_seq;
    assert_eq!(
        snapshots,
        [(
            format!("snapshot-{last:020}.json"),
            Some((1, last)) // the records went with the segments: the snapshot holds them
        )]
    );
    assert_eq!(events, 0, "the compaction left no record after its cut");
    assert_eq!(walked.set, replayed.set);
    assert_eq!(walked.last_seq, last);
    assert!(walked.corruption.is_empty());
}

#[test]
fn segments_a_compaction_left_behind_are_read_and_checked_against_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap().log;
    append(&log, 0, 200);
    let compaction = log.begin_compaction().unwrap(); // the cut: a retention record, a segment
    let before = files(dir.path());
    compaction.finish().unwrap();
    drop(log);
    // A crash after the snapshot's rename and before the removals leaves the segments it
    // covers: put them back.
    for (name, bytes) in &before {
        let path = dir.path().join(name);
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    let mut snapshots = Vec::new();
    let mut events = 0u64;
    let walked = walk(
        &FileSource::new(&FsStorage::default(), dir.path()),
        |item| {
            match item {
                Item::Snapshot(s) => snapshots.push((s.compacted, s.matches_records)),
                Item::Event(_) => events += 1,
                Item::Damage(d) => panic!("{:?}", d.region),
                _ => {}
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(
        snapshots,
        [(None, Some(true))],
        "read up to it, and it agrees"
    );
    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(walked.set, replayed.set);
    assert_eq!(
        events, walked.last_seq,
        "every record read from the segments"
    );
    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_compaction_stopped_among_its_removals_leaves_no_gap_behind() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap().log;
    append(&log, 0, 200); // a first snapshot, which the second keeps as its fallback
    log.compact().unwrap();
    append(&log, 200, 300);
    let compaction = log.begin_compaction().unwrap();
    let before = files(dir.path());
    let compacted = compaction.finish().unwrap();
    append(&log, 500, 10);
    drop(log);
    // A crash (or the compaction itself, still at work for a reader beside it) stopped the
    // removals: the segments it covers are gone but the last ones. Put those back.
    let removed: Vec<&(String, Vec<u8>)> = before
        .iter()
        .filter(|(name, _)| name.ends_with(".log") && !dir.path().join(name).exists())
        .collect();
    assert!(removed.len() >= 3, "{} segments covered", removed.len());
    for (name, bytes) in &removed[removed.len() - 2..] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let mut snapshots = Vec::new();
    let walked = walk(
        &FileSource::new(&FsStorage::default(), dir.path()),
        |item| {
            match item {
                Item::Snapshot(s) => snapshots.push((s.last_seq, s.compacted, s.matches_records)),
                Item::Damage(d) => panic!("{:?}", d.region),
                _ => {}
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    // The records the removed segments held are in the newer snapshot, not missing: the
    // reading goes on from it, past the segments it covers, as replay does.
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert_eq!(snapshots[1].0, compacted.last_seq);
    assert!(snapshots[1].1.is_some(), "{snapshots:?}");
    assert!(walked.corruption.is_empty());
    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(walked.set, replayed.set);
    assert_eq!(walked.last_seq, replayed.report.last_seq);
    let out = inflight(&["verify", d(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
