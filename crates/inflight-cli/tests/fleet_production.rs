//! Fleets as production meets them: a server or network that stalls (every wait must end
//! within the stated timeouts, and the outcome is what committed), a TLS-only server (libpq's
//! `sslmode` meanings, a wrong CA refused, channel binding), and libpq's environment and
//! password file.
//!
//! The stall tests use the plain cluster (`INFLIGHT_PG_URL`); the TLS tests a second one that
//! accepts TLS only (`INFLIGHT_PG_TLS_CLUSTER`, the directory `scripts/pg-cluster start-tls`
//! made; `.ci/run` starts both). Without them the tests say so and pass empty, unless
//! `INFLIGHT_PG_REQUIRED` is set.
#![cfg(feature = "postgres")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::pg::{self, run};
use inflight::{Error, Log, Opened, Options};

/// What a [`Stall`] proxy does with the bytes of its connections.
const RELAY: u8 = 0;
/// Nothing is forwarded either way; the sockets stay open.
const SILENT: u8 = 1;
/// The client's bytes reach the server; the server's replies are held back.
const DEAF: u8 = 2;

/// A TCP proxy on loopback in front of `server` whose connections relay, or go silent (in
/// both directions, or only the server's replies) while keeping their sockets open: a
/// network or a load balancer that stalls. With no server, it accepts and never answers.
struct Stall {
    port: u16,
    mode: Arc<AtomicU8>,
}

impl Stall {
    fn start(server: Option<String>) -> Stall {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(RELAY));
        let mode2 = mode.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Some(server) = &server else {
                    // Accepted, and never a byte back.
                    held.push(client);
                    continue;
                };
                let upstream = TcpStream::connect(server).unwrap();
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (m1, m2) = (mode2.clone(), mode2.clone());
                std::thread::spawn(move || relay(c2, u2, m1, &[SILENT]));
                std::thread::spawn(move || relay(upstream, client, m2, &[SILENT, DEAF]));
            }
        });
        Stall { port, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding bytes back (for ever) while the mode is one of `hold`.
fn relay(mut from: TcpStream, mut to: TcpStream, mode: Arc<AtomicU8>, hold: &[u8]) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hold.contains(&mode.load(Ordering::SeqCst)) {
            // Swallowed: the peer waits for an answer that never comes, until one side
            // closes.
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// `url` with its `host:port` replaced by the proxy's, and `extra` parameters added.
fn through(url: &str, port: u16, extra: &str) -> String {
    let rest = url.split_once('@').unwrap().1;
    let hostport = rest.split('/').next().unwrap();
    let url = url.replace(hostport, &format!("127.0.0.1:{port}"));
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{extra}")
}

fn server_of(url: &str) -> String {
    let rest = url.split_once('@').unwrap().1;
    rest.split('/').next().unwrap().to_string()
}

#[test]
fn a_server_that_accepts_and_never_answers_fails_every_command_within_the_connect_timeout() {
    let Some(url) = pg::url() else { return };
    let silent = Stall::start(None);
    let database = through(&url, silent.port, "connect_timeout=2");
    let started = Instant::now();
    let err = inflight_postgres::Fleet::new(&database)
        .open(&pg::instance("silent"), Options::default())
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    assert!(err.to_string().contains("start-up within 2 s"), "{err}");
    assert!(
        took >= Duration::from_millis(1900),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "the bound did not hold: {took:?}"
    );

    // The command line, as an operator runs it: each ends with exit 11 within the bound.
    let bin = env!("CARGO_BIN_EXE_inflight");
    let commands: [&[&str]; 4] = [
        &[
            "takeover",
            "gateway-1",
            "--by",
            "gateway-2",
            "--database",
            &database,
        ],
        &[
            "load",
            "--database",
            &database,
            "--instance",
            "gateway-1",
            "--seconds",
            "1",
        ],
        &["fleet", "list", "--database", &database],
        &["replay", "--database", &database, "--instance", "gateway-1"],
    ];
    for args in commands {
        let started = Instant::now();
        let out = Command::new(bin).args(args).output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(8), "{args:?} took {took:?}");
        assert!(stderr.contains("connect_timeout"), "{args:?}: {stderr}");
    }
}

/// Opens an instance through `proxy` with a statement timeout of 1 s and commits 20 runs.
fn open_through(url: &str, proxy: &Stall, name: &str) -> (String, Log) {
    let a = pg::instance(name);
    let database = through(url, proxy.port, "statement_timeout=1s");
    let Opened { log, .. } = inflight_postgres::Fleet::new(&database)
        .open(&a, Options::default())
        .unwrap();
    for g in 1..=20 {
        log.mark_running(run(&format!("k{g}"), g)).unwrap();
    }
    (a, log)
}

#[test]
fn a_connection_that_goes_silent_mid_run_fails_the_append_within_the_statement_timeout() {
    let Some(url) = pg::url() else { return };
    let proxy = Stall::start(Some(server_of(&url)));
    let (a, log) = open_through(&url, &proxy, "silent-mid-run");
    proxy.set(SILENT);
    let started = Instant::now();
    let err = log.mark_running(run("stalled", 1)).unwrap_err();
    let took = started.elapsed();
    // 1 s of statement timeout and the client's grace of 2 s; the server never saw it.
    assert!(took >= Duration::from_secs(3), "gave up early: {took:?}");
    assert!(
        took < Duration::from_secs(6),
        "the bound did not hold: {took:?}"
    );
    assert_eq!(err.io_kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("did not answer in time"), "{err}");
    assert!(matches!(
        log.mark_running(run("after", 1)),
        Err(Error::Poisoned { .. })
    ));
    drop(log);
    let Opened { report, .. } = pg::reopen(&url, &a);
    let keys: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    for g in 1..=20 {
        assert!(keys.contains(&format!("k{g}").as_str()), "k{g} lost");
    }
    assert!(
        !keys.contains(&"stalled"),
        "a statement the server never had committed"
    );
    assert!(!keys.contains(&"after"));
}

#[test]
fn a_commit_whose_reply_is_held_back_is_decided_by_what_committed() {
    let Some(url) = pg::url() else { return };
    let proxy = Stall::start(Some(server_of(&url)));
    let (a, log) = open_through(&url, &proxy, "deaf-mid-commit");
    // The commit reaches the server; its reply never reaches the client.
    proxy.set(DEAF);
    let started = Instant::now();
    let err = log.mark_running(run("unanswered", 1)).unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "the bound did not hold: {took:?}"
    );
    assert_eq!(err.io_kind(), std::io::ErrorKind::TimedOut, "{err}");
    drop(log);
    let Opened { report, .. } = pg::reopen(&url, &a);
    let keys: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert_eq!(keys.len(), 21, "{keys:?}");
    assert!(
        keys.contains(&"unanswered"),
        "the server had the whole statement and committed it"
    );
}

#[test]
fn a_connection_lost_mid_run_is_the_database_exit_code_on_the_command_line() {
    let Some(url) = pg::url() else { return };
    let proxy = Stall::start(Some(server_of(&url)));
    let database = through(&url, proxy.port, "statement_timeout=1s");
    let bin = env!("CARGO_BIN_EXE_inflight");
    let child = Command::new(bin)
        .args(["load", "--database", &database, "--instance"])
        .arg(pg::instance("load-lost"))
        .args(["--seconds", "30"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.set(SILENT);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
}

/// The TLS-only cluster's directory (`INFLIGHT_PG_TLS_CLUSTER`), or `None` when not given.
fn tls_cluster() -> Option<PathBuf> {
    match std::env::var_os("INFLIGHT_PG_TLS_CLUSTER") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            let url = tls_url(&dir);
            static INIT: std::sync::Once = std::sync::Once::new();
            let ca = dir.join("ca.crt");
            INIT.call_once(|| {
                inflight_postgres::Fleet::new(format!(
                    "{url}?sslmode=verify-full&sslrootcert={}",
                    ca.display()
                ))
                .create_schema()
                .expect("the schema, over TLS")
            });
            Some(dir)
        }
        _ => {
            assert!(
                std::env::var_os("INFLIGHT_PG_REQUIRED").is_none(),
                "INFLIGHT_PG_REQUIRED is set but INFLIGHT_PG_TLS_CLUSTER is not: start one with scripts/pg-cluster start-tls DIR PORT"
            );
            eprintln!("skipped: set INFLIGHT_PG_TLS_CLUSTER to run the TLS tests");
            None
        }
    }
}

fn tls_url(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("url"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_tls_only_server_is_reached_in_every_mode_that_should_and_refused_in_the_others() {
    let Some(dir) = tls_cluster() else { return };
    let url = tls_url(&dir);
    let (ca, wrong) = (dir.join("ca.crt"), dir.join("wrong-ca.crt"));
    let with = |q: String| format!("{url}?{q}");
    let opens = |database: &str| {
        let a = pg::instance("tls");
        inflight_postgres::Fleet::new(database)
            .open(&a, Options::default())
            .map(|o| {
                o.log.mark_running(run("k", 1)).unwrap();
                o.log.close().unwrap();
                a
            })
    };
    // Encrypted and unverified; verified against the CA (chain and name); the chain only
    // for a name the certificate does not hold; channel binding required.
    for q in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        format!(
            "sslmode=verify-full&sslrootcert={}&channel_binding=require",
            ca.display()
        ),
    ] {
        let a = opens(&with(q.clone())).unwrap_or_else(|e| panic!("{q}: {e}"));
        let again = inflight_postgres::Fleet::new(with(q.clone()))
            .read_only(&a, Default::default())
            .unwrap();
        assert_eq!(again.report.running.len(), 1, "{q}");
    }
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    let by_address = |mode: &str| {
        format!(
            "host=not-the-certificates-name hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres password=inflight-tls-password sslmode={mode} sslrootcert={}",
            ca.display()
        )
    };
    opens(&by_address("verify-ca")).expect("verify-ca checks the chain, not the name");
    let err = opens(&by_address("verify-full")).unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");

    // Refused: a wrong CA, the platform's store (which does not hold our CA), no TLS.
    let err = opens(&with(format!(
        "sslmode=verify-full&sslrootcert={}",
        wrong.display()
    )))
    .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = opens(&with("sslrootcert=system".to_string())).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    let err = opens(&with("sslmode=disable".to_string())).unwrap_err();
    assert!(err.to_string().contains("no encryption"), "{err}");
    // A parameter libpq knows and this client does not is named.
    let err = opens(&with("sslpassword=x".to_string())).unwrap_err();
    assert!(err.to_string().contains("\"sslpassword\""), "{err}");
}

#[test]
fn libpqs_environment_and_password_file_reach_a_tls_only_server_with_no_url() {
    let Some(dir) = tls_cluster() else { return };
    let url = tls_url(&dir);
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        "other:*:*:*:wrong\nlocalhost:*:postgres:postgres:inflight-tls-password\n",
    )
    .unwrap();
    let list = |mode: u32| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
        Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(["fleet", "list", "--database", ""])
            .env_clear()
            .env("HOME", home.path())
            .env("PGHOST", "localhost")
            .env("PGPORT", port)
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "postgres")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", dir.join("ca.crt"))
            .output()
            .unwrap()
    };
    let out = list(0o600);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password file others may read is ignored, as libpq ignores it: no password.
    let out = list(0o644);
    assert_eq!(out.status.code(), Some(11));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("password"), "{stderr}");
    assert!(!stderr.contains("inflight-tls-password"), "{stderr}");
}

/// PgBouncer in transaction mode in front of the plain cluster (`INFLIGHT_PG_POOLER_URL`,
/// `scripts/pg-cluster pooler DIR PORT`), or `None` when not given.
fn pooler_url() -> Option<String> {
    match std::env::var("INFLIGHT_PG_POOLER_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("INFLIGHT_PG_REQUIRED").is_none(),
                "INFLIGHT_PG_REQUIRED is set but INFLIGHT_PG_POOLER_URL is not: start one with scripts/pg-cluster pooler DIR PORT"
            );
            eprintln!("skipped: set INFLIGHT_PG_POOLER_URL to run the pooler test");
            None
        }
    }
}

#[test]
fn a_pooler_in_transaction_mode_is_refused_and_nothing_from_another_session_lands() {
    let (Some(url), Some(pooled)) = (pg::url(), pooler_url()) else {
        return;
    };
    let a = pg::instance("pooled");
    // The open may already find its statements in two server sessions. If it does not (a
    // quiet pool hands the same one back), another client holding that session in a
    // transaction (simple queries: no prepared statement of its own) sends the next commit
    // to another one.
    let err = match inflight_postgres::Fleet::new(&pooled).open(&a, Options::default()) {
        Err(e) => e,
        Ok(Opened { log, .. }) => {
            let mut other = postgres::Client::connect(&pooled, postgres::NoTls).unwrap();
            other
                .simple_query("BEGIN; SELECT pg_backend_pid()")
                .unwrap();
            let err = log.mark_running(run("moved", 1)).unwrap_err();
            other.simple_query("ROLLBACK").unwrap();
            err
        }
    };
    let text = err.to_string();
    eprintln!("through the pooler: {text}");
    assert!(text.contains("pooler in transaction mode"), "{text}");
    assert!(text.contains("session mode"), "{text}");
    assert!(err.is_database(), "{err:?}");
    if let Ok(seen) = inflight_postgres::Fleet::new(&url).read_only(&a, Default::default()) {
        assert!(
            seen.report.running.iter().all(|r| r.run.key != "moved"),
            "a commit from a session without the lock landed"
        );
    }
}
