//! `inflight load --metrics ADDR` serves the documented series in Prometheus's text format, and
//! their figures agree with the run: a real scrape over loopback HTTP of the real binary.
//! The binary's `prometheus` feature is a default one; in a build without it (`cargo test -p
//! inflight-cli --no-default-features`), `--metrics` is refused with exit 2 (tests/cli.rs).

#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /metrics` at `port`.
fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the exporter");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap()
}

fn get_or_zero(s: &BTreeMap<String, f64>, k: &str) -> f64 {
    s.get(k).copied().unwrap_or(-1.0)
}

/// Each sample line `name{labels} value`, keyed by `name{labels}`.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_scrape_shows_the_documented_series_and_they_agree_with_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(["load", dir.path().join("log").to_str().unwrap()])
        .args(["--events", "3000", "--threads", "4", "--sessions", "64"])
        .args([
            "--segment-bytes",
            "65536",
            "--compact-after-bytes",
            "100000",
        ])
        .args(["--metrics", &addr, "--metrics-hold", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The summary is printed once the run is over; the exporter then holds the final figures.
    let mut summary = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let line = lines.next().expect("the summary").unwrap();
        summary.push_str(&line);
        summary.push('\n');
        if line.starts_with("compactions") {
            break;
        }
    }
    let compactions: f64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("compactions"))
        .expect("a compactions line")
        .trim()
        .parse()
        .unwrap();
    let body = scrape(port);
    child.kill().ok();
    child.wait().ok();
    let s = samples(&body);

    // Every documented series is there, described.
    for (name, _, _, _) in inflight::metrics::SERIES {
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "{name} undescribed:\n{body}"
        );
        assert!(
            body.contains(&format!("\n{name}")),
            "{name} absent:\n{body}"
        );
    }
    assert_eq!(get_or_zero(&s, "inflight_poisonings_total"), 0.0);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{body}"));
    let started = get(r#"inflight_events_total{kind="start",outcome="started"}"#);
    let completed = get(r#"inflight_events_total{kind="completion",outcome="completed"}"#);
    assert_eq!(started + completed, 3000.0, "{body}");
    // Each key alternates, so its completions never outnumber its starts; at the end of the
    // budget each of the 64 keys may be left running.
    assert!(
        started >= completed && started - completed <= 64.0,
        "{body}"
    );
    assert_eq!(
        get(r#"inflight_events_total{kind="shutdown",outcome="recorded"}"#),
        1.0
    );
    // Retention records of the compactions, if any, and the shutdown are events too: every
    // event is in exactly one batch, and each batch is one sync.
    let events: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("inflight_events_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(get("inflight_batch_events_sum"), events);
    let batches = get("inflight_batch_events_count");
    assert_eq!(get("inflight_sync_seconds_count"), batches);
    assert!(batches >= 1.0 && batches <= events);
    assert!(get("inflight_sync_seconds_sum") > 0.0);
    assert_eq!(get(r#"inflight_sync_seconds_bucket{le="+Inf"}"#), batches);
    // At least one frame of at least 16 bytes a batch.
    assert!(get("inflight_written_bytes_total") >= 16.0 * batches);
    assert!(
        get("inflight_segments_created_total") >= 2.0,
        "64 KiB segments roll over"
    );
    assert_eq!(get("inflight_compactions_total"), compactions);
    assert!(compactions >= 1.0, "{summary}");
    assert_eq!(get("inflight_compaction_seconds_count"), compactions);
    assert!(get("inflight_snapshot_bytes") > 0.0);
    assert_eq!(get("inflight_recovered_runs"), 0.0, "a new log");
    assert_eq!(get("inflight_queue_events"), 0.0, "nothing left waiting");
}

#[test]
fn metrics_are_served_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(["load", dir.path().join("log").to_str().unwrap()])
        .args(["--events", "10", "--metrics", "0.0.0.0:9187"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert!(!dir.path().join("log").exists(), "nothing is created");
}
