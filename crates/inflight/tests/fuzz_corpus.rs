//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`), run as ordinary tests on stable
//! Rust, so every input a fuzzer ever kept is checked by `cargo test` too. The decoder is also
//! held to its allocation bound here: decoding an input never allocates more than a small
//! multiple of its size.
//!
//! `INFLIGHT_WRITE_SEEDS=1 cargo test --test fuzz_corpus` regenerates the seed inputs.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use inflight::Opened;
use inflight::event::{Event, encode_event};
use inflight::frame::{SEGMENT_HEADER_BYTES, encode_frame};
use inflight::snapshot::SNAPSHOT_VERSION;
use inflight::{Generation, UnixMs};
use inflight::{Log, Options, Run};
use inflight_sim::crashtest::{
    CountingAllocator, FuzzInput, check_decoder_allocation, check_pure_decoders,
    check_replay_bytes, check_segment_bytes, check_snapshot_decoder,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The files of `fuzz/corpus/<target>/`, at least `floor` of them (the committed seeds), so that
/// a lost or emptied corpus fails rather than passes vacuously.
fn corpus(target: &str, floor: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= floor,
        "{} holds {} inputs, fewer than the {floor} committed",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn decode_segment_corpus_keeps_every_decoder_promise() {
    maybe_write_seeds();
    for (path, data) in corpus("decode_segment", 7) {
        let name = path.display();
        check_segment_bytes(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_replay_bytes(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_decoder_allocation(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn decode_pure_corpus_keeps_every_pure_decoder_promise() {
    maybe_write_seeds();
    let (mut frames, mut events, mut headers, mut prefixes) = (0, 0, 0, 0);
    for (path, data) in corpus("decode_pure", 19) {
        let summary =
            check_pure_decoders(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            summary.peak_allocation.is_some(),
            "the allocation bound was not measured"
        );
        frames += summary.frames;
        events += summary.events + usize::from(summary.event);
        headers += usize::from(summary.header);
        prefixes += summary.prefixes;
    }
    // The seeds hold real segments, frames and events: a check that found none checked nothing.
    assert!(
        frames >= 30 && events >= 30 && headers >= 5 && prefixes >= 30,
        "{frames} frames, {events} events, {headers} headers, {prefixes} prefixes"
    );
}

#[test]
fn decode_snapshot_corpus_keeps_every_snapshot_decoder_promise() {
    maybe_write_seeds();
    let mut valid = 0;
    for (path, data) in corpus("decode_snapshot", 8) {
        let ok =
            check_snapshot_decoder(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        valid += usize::from(ok);
    }
    // Real snapshots among the seeds: a check that decoded none checked little.
    assert!(valid >= 3, "only {valid} seeds are valid snapshots");
}

#[test]
fn ops_corpus_satisfies_the_oracle() {
    maybe_write_seeds();
    for (path, data) in corpus("ops", 18) {
        let input = FuzzInput::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
        input
            .run()
            .unwrap_or_else(|f| panic!("{}: {f}", path.display()));
    }
}

/// Regenerates the seed inputs when `INFLIGHT_WRITE_SEEDS` is set.
fn maybe_write_seeds() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("INFLIGHT_WRITE_SEEDS").is_none() {
        return;
    }
    ONCE.call_once(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            std::fs::create_dir_all(root.join(target)).unwrap();
            std::fs::write(root.join(target).join(name), bytes).unwrap();
        };
        for (name, bytes) in segment_seeds() {
            write("decode_segment", &name, &bytes);
            write("decode_pure", &name, &bytes);
        }
        for (name, bytes) in pure_seeds() {
            write("decode_pure", &name, &bytes);
        }
        for (name, bytes) in snapshot_seeds() {
            write("decode_snapshot", &name, &bytes);
        }
        let mut rng = fastrand::Rng::with_seed(0x0f_u64);
        for i in 0..16 {
            let len = rng.usize(16..600);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            write("ops", &format!("seed-{i:02}"), &bytes);
        }
    });
}

/// Real segments and the damage a crash or a bad disk does to them.
fn segment_seeds() -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(tmp.path(), Options::default()).unwrap();
    let header_only = std::fs::read(tmp.path().join(format!("{:020}.log", 1))).unwrap();
    log.mark_running(
        Run::new(
            "agent:main:telegram:dm:4242",
            "20261126_1",
            Generation(1),
            UnixMs(1_000),
        )
        .with_meta("{\"m\":1}"),
    )
    .unwrap();
    log.mark_running(Run::new(
        "agent:main:http:c-5",
        "20261126_2",
        Generation(3),
        UnixMs(1_001),
    ))
    .unwrap();
    log.mark_completed_at("agent:main:http:c-5", 2, UnixMs(1_002))
        .unwrap();
    log.mark_completed_at("agent:main:telegram:dm:4242", 1, UnixMs(1_003))
        .unwrap();
    log.mark_running(
        Run::new(
            "k".repeat(1024),
            "s".repeat(256),
            Generation(u64::MAX),
            UnixMs(u64::MAX),
        )
        .with_meta("m".repeat(4096)),
    )
    .unwrap();
    log.close().unwrap();
    let full = std::fs::read(tmp.path().join(format!("{:020}.log", 1))).unwrap();

    let mut seeds = vec![
        ("header-only".to_string(), header_only),
        ("five-records-and-shutdown".to_string(), full.clone()),
        (
            "torn-mid-record".to_string(),
            full[..full.len() - 20].to_vec(),
        ),
        ("zeros".to_string(), vec![0u8; 256]),
    ];
    let mut flipped = full.clone();
    flipped[SEGMENT_HEADER_BYTES + 40] ^= 0x08;
    seeds.push(("bit-flip-in-first-record".into(), flipped));
    let mut zero_tail = full.clone();
    zero_tail.extend_from_slice(&[0u8; 512]);
    seeds.push(("zero-filled-growth".into(), zero_tail));
    let mut bad_header = full;
    bad_header[30] ^= 0xff;
    seeds.push(("damaged-header".into(), bad_header));
    seeds
}

/// Inputs for the pure decoders on their own: event payloads alone, and frames behind an
/// 8-byte salt (how `check_pure_decoders` reads bytes that do not start with a valid header),
/// small enough for the fuzzer's length limit.
/// Real snapshots (empty, with runs, marks and a forgotten mark's absence) and damaged ones.
fn snapshot_seeds() -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    let newest = |dir: &Path| -> Vec<u8> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".json"))
            .collect();
        names.sort();
        std::fs::read(names.last().unwrap()).unwrap()
    };
    let log = Log::open(tmp.path(), Options::default()).unwrap().log;
    log.compact().unwrap();
    let empty = newest(tmp.path());
    for i in 0..6u64 {
        let key = format!("agent:main:telegram:dm:{i}");
        let run = Run::new(&key, format!("s{i}"), Generation(i + 1), UnixMs(1_000 + i));
        log.mark_running(if i % 2 == 0 {
            run.with_meta("{\"m\":\"x\"}")
        } else {
            run
        })
        .unwrap();
        if i % 3 == 0 {
            log.mark_completed(&key, i + 1).unwrap();
        }
    }
    log.compact().unwrap();
    let full = newest(tmp.path());
    log.close().unwrap();
    let mut seeds = vec![
        ("snapshot-empty".to_string(), empty.clone()),
        ("snapshot-runs".to_string(), full.clone()),
    ];
    let text = String::from_utf8(full.clone()).unwrap();
    seeds.push((
        "snapshot-newer-version".into(),
        text.replacen(
            &format!("\"inflight_snapshot\":{SNAPSHOT_VERSION}"),
            &format!("\"inflight_snapshot\":{}", SNAPSHOT_VERSION + 1),
            1,
        )
        .into_bytes(),
    ));
    let mut flipped = full.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x04;
    seeds.push(("snapshot-flipped".into(), flipped));
    seeds.push(("snapshot-truncated".into(), full[..full.len() / 3].to_vec()));
    seeds.push(("snapshot-body-only".into(), {
        let v: serde_json::Value = serde_json::from_slice(&full).unwrap();
        serde_json::to_vec(&v["body"]).unwrap()
    }));
    seeds.push(("snapshot-not-json".into(), b"INFLIGHT\x00\x01".to_vec()));
    seeds.push(("snapshot-empty-object".into(), b"{}".to_vec()));
    // A third valid one: the empty log's snapshot with a trailing newline removed.
    seeds.push((
        "snapshot-no-newline".into(),
        empty[..empty.len() - 1].to_vec(),
    ));
    seeds
}

fn pure_seeds() -> Vec<(String, Vec<u8>)> {
    let events = [
        (
            "started",
            Event::Started(
                Run::new(
                    "agent:main:telegram:dm:4242",
                    "20261126_1",
                    Generation(1),
                    UnixMs(1_000),
                )
                .with_meta("{\"m\":1}"),
            ),
        ),
        (
            "completed",
            Event::Completed {
                key: "agent:main:http:c-5".into(),
                generation: 3,
                at_ms: 1_002,
            },
        ),
        ("shutdown", Event::Shutdown { at_ms: 1_003 }),
    ];
    let salt: u64 = 0x5eed_f00d_5a17;
    let mut seeds = Vec::new();
    let mut frames = salt.to_le_bytes().to_vec();
    for (seq, (name, event)) in (1..).zip(&events) {
        let payload = encode_event(event);
        let mut frame = salt.to_le_bytes().to_vec();
        encode_frame(salt, 1, &payload, &mut frame);
        seeds.push((format!("event-{name}"), payload.clone()));
        seeds.push((format!("salt-and-frame-{name}"), frame));
        encode_frame(salt, seq, &payload, &mut frames);
    }
    seeds.push(("salt-and-three-frames".into(), frames.clone()));
    let mut torn = frames.clone();
    torn.truncate(frames.len() - 3);
    seeds.push(("salt-and-three-frames-torn".into(), torn));
    let mut flipped = frames;
    flipped[8 + 20] ^= 0x01;
    seeds.push(("salt-and-three-frames-first-flipped".into(), flipped));
    seeds
}
