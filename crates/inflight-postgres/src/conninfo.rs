//! A connection string read as libpq reads it: a `postgres://` URL or `key=value` pairs, the
//! `PG*` environment for what the string leaves out, `~/.pgpass` for the password, and the
//! defaults libpq uses (the local socket directory, the operating system's user name).
//!
//! Pure where it can be: [`parse`] takes the string and returns its parameters;
//! [`resolve`] takes them with a view of the environment and the password file, so the tests
//! give both.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// One parameter of a connection string, as written (a URL's values percent-decoded).
pub(super) type Param = (String, String);

/// Where the string fails to parse: the parameter or the place, and why.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ParseError(pub String);

/// The parameters of `s`: a URL (`postgres://` or `postgresql://`) or libpq's `key=value`
/// pairs (values may be single-quoted, with `\'` and `\\`). An empty string has none (all
/// comes from the environment and the defaults).
pub(super) fn parse(s: &str) -> Result<Vec<Param>, ParseError> {
    let s = s.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            return parse_url(rest);
        }
    }
    if s.contains("://") {
        return Err(ParseError(
            "the URL's scheme is not postgres:// or postgresql://".to_string(),
        ));
    }
    parse_pairs(s)
}

fn parse_url(rest: &str) -> Result<Vec<Param>, ParseError> {
    let mut params = Vec::new();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(("user".to_string(), decode(user, "user")?));
            }
            if let Some(p) = password {
                params.push(("password".to_string(), decode(p, "password")?));
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut names = Vec::new();
        let mut ports = Vec::new();
        for one in hosts.split(',') {
            let (name, port) = split_host_port(one)?;
            names.push(decode(name, "host")?);
            ports.push(port.to_string());
        }
        if names.iter().any(|n| !n.is_empty()) {
            params.push(("host".to_string(), names.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            params.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.push(("dbname".to_string(), decode(db, "dbname")?));
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ParseError(format!(
                "the URL's parameter {pair:?} has no value (write key=value)"
            )));
        };
        let key = decode(key, "parameter name")?;
        let value = decode(value, &key)?;
        params.push((key, value));
    }
    Ok(params)
}

/// `host`, `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(&str, &str), ParseError> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(ParseError(format!(
                "the URL's host {s:?} opens [ without closing it"
            )));
        };
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "",
            None => return Err(ParseError(format!("the URL's host {s:?} is malformed"))),
        };
        return Ok((v6, port));
    }
    Ok(match s.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (s, ""),
    })
}

/// Percent-decodes a URL part.
fn decode(s: &str, what: &str) -> Result<String, ParseError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                return Err(ParseError(format!(
                    "the URL's {what} holds a % that is not followed by two hex digits"
                )));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ParseError(format!("the URL's {what} does not decode to UTF-8")))
}

fn parse_pairs(s: &str) -> Result<Vec<Param>, ParseError> {
    let mut params = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ParseError(format!(
                "{key:?} has no value: write key=value pairs (host=... user=...), or a postgres:// URL"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ParseError(format!(
                            "the value of {key} opens a quote it does not close"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.push((key, value));
    }
}

/// What the process's surroundings give a connection: its environment variables and files.
/// The real one reads them; the tests give their own.
pub(super) trait Surroundings {
    /// An environment variable, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
    /// A file's text, if it can be read (for the password file).
    fn read(&self, path: &Path) -> Option<String>;
    /// Whether a path exists (the default socket directory, the default root certificate).
    fn exists(&self, path: &Path) -> bool;
    /// The user's home directory.
    fn home(&self) -> Option<PathBuf>;
    /// The operating system's name for the user running this process.
    fn os_user(&self) -> Option<String>;
}

/// The process's own environment and files.
pub(super) struct Real;

impl Surroundings for Real {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn read(&self, path: &Path) -> Option<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // As libpq: a password file others may read is ignored, with a warning.
            let mode = std::fs::metadata(path).ok()?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the password file is readable by others and is ignored; chmod 0600 it"
                );
                return None;
            }
        }
        std::fs::read_to_string(path).ok()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn home(&self) -> Option<PathBuf> {
        let var = if cfg!(windows) { "APPDATA" } else { "HOME" };
        std::env::var_os(var).map(PathBuf::from)
    }

    fn os_user(&self) -> Option<String> {
        for var in ["USER", "USERNAME", "LOGNAME"] {
            if let Some(v) = self.var(var) {
                return Some(v);
            }
        }
        #[cfg(unix)]
        {
            // SAFETY: getpwuid returns a pointer into static storage or null; the name is
            // copied out at once.
            unsafe {
                let pw = libc::getpwuid(libc::getuid());
                if !pw.is_null() && !(*pw).pw_name.is_null() {
                    let name = std::ffi::CStr::from_ptr((*pw).pw_name);
                    return name.to_str().ok().map(str::to_string);
                }
            }
        }
        None
    }
}

/// How to use TLS: libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified; plain otherwise (`allow` and `prefer`; libpq's
    /// default).
    Prefer,
    /// TLS, the certificate unverified (verified as for `verify-ca` when a root certificate
    /// is given, as libpq does).
    Require,
    /// TLS, the certificate's chain verified against the root certificates.
    VerifyCa,
    /// TLS, the chain verified and the certificate naming the host.
    VerifyFull,
}

/// Where the root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The platform's store (`sslrootcert=system`, or no root certificate file at all).
    System,
    /// A PEM file of certificates.
    File(PathBuf),
}

/// A connection string resolved: what to connect to and how.
#[derive(Debug)]
pub(super) struct Resolved {
    /// The parameters the client understands, with the environment's and the defaults'.
    pub params: Vec<Param>,
    /// `sslmode`.
    pub ssl_mode: SslMode,
    /// The root certificates, for `verify-ca` and `verify-full` (and `require` with a root
    /// file).
    pub roots: Roots,
    /// A client certificate and its key, if the server asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The bound on the whole start-up to one host (`connect_timeout`).
    pub connect_timeout: Duration,
    /// The bound on each statement (`statement_timeout`, this crate's).
    pub statement_timeout: Duration,
}

/// How long a connect may take when neither the string nor `PGCONNECT_TIMEOUT` says.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a statement may take when the string does not say.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters libpq reads from the environment when the string leaves them out.
const FROM_ENV: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("load_balance_hosts", "PGLOADBALANCEHOSTS"),
];

/// Parameters the client takes as they are.
const PASSED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "options",
    "application_name",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

/// libpq parameters that change nothing here, accepted so that a libpq string works as is.
const IGNORED: &[&str] = &["sslsni", "sslcompression"];

/// Resolves `params` (from [`parse`]) with the environment and files of `env`, as libpq
/// would: a parameter the string gives wins, then its `PG*` variable, then the default.
pub(super) fn resolve(params: Vec<Param>, env: &impl Surroundings) -> Result<Resolved, String> {
    let mut given: Vec<Param> = Vec::new();
    for (key, value) in params {
        // A later repeat wins, as in libpq.
        given.retain(|(k, _)| *k != key);
        given.push((key, value));
    }
    for (key, var) in FROM_ENV {
        if !given.iter().any(|(k, _)| k == key)
            && let Some(value) = env.var(var)
        {
            given.push((key.to_string(), value));
        }
    }
    let get = |key: &str| given.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());

    let mut out: Vec<Param> = Vec::new();
    for (key, value) in &given {
        let key = key.as_str();
        if key == "port" {
            // A host without a port in a list (`h1:6432,h2`) has the default.
            let ports: Vec<&str> = value
                .split(',')
                .map(|p| {
                    if p.trim().is_empty() {
                        "5432"
                    } else {
                        p.trim()
                    }
                })
                .collect();
            out.push((key.to_string(), ports.join(",")));
        } else if PASSED.contains(&key) {
            out.push((key.to_string(), value.clone()));
        } else if key == "fallback_application_name" {
            if get("application_name").is_none() {
                out.push(("application_name".to_string(), value.clone()));
            }
        } else if key == "gssencmode" {
            if value == "require" {
                return Err("gssencmode=require asks for GSSAPI encryption, which this client does not speak; use sslmode instead".to_string());
            }
        } else if key == "client_encoding" {
            if !value.eq_ignore_ascii_case("utf8") && !value.eq_ignore_ascii_case("utf-8") {
                return Err(format!(
                    "client_encoding={value}: this client speaks UTF8 only"
                ));
            }
        } else if !IGNORED.contains(&key)
            && ![
                "sslmode",
                "sslrootcert",
                "sslcert",
                "sslkey",
                "passfile",
                "connect_timeout",
                "statement_timeout",
            ]
            .contains(&key)
        {
            return Err(format!(
                "the parameter {key:?} is not one this client reads (it reads host, hostaddr, port, dbname, user, password, passfile, options, application_name, sslmode, sslrootcert, sslcert, sslkey, channel_binding, connect_timeout, statement_timeout, tcp_user_timeout, keepalives*, target_session_attrs, load_balance_hosts)"
            ));
        }
    }

    // Defaults: the local socket directory, the operating system's user.
    if get("host").is_none() && get("hostaddr").is_none() {
        out.push(("host".to_string(), default_host(env)));
    }
    let user = match get("user") {
        Some(u) => u,
        None => {
            let u = env.os_user().ok_or(
                "no user: give one in the URL (postgres://USER@HOST/DB) or in PGUSER".to_string(),
            )?;
            out.push(("user".to_string(), u.clone()));
            u
        }
    };
    if get("password").is_none()
        && let Some(password) = password_from_file(&given, &out, &user, env)
    {
        out.push(("password".to_string(), password));
    }

    let ssl_mode = match get("sslmode").as_deref() {
        None | Some("prefer") | Some("allow") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(format!(
                "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    let home_file = |name: &str| {
        let dir = if cfg!(windows) {
            "postgresql"
        } else {
            ".postgresql"
        };
        env.home().map(|h| h.join(dir).join(name))
    };
    let roots = match get("sslrootcert").as_deref() {
        Some("system") => Roots::System,
        Some(file) => Roots::File(PathBuf::from(file)),
        None => match home_file("root.crt").filter(|p| env.exists(p)) {
            Some(file) => Roots::File(file),
            None => Roots::System,
        },
    };
    // As libpq: `sslrootcert=system` means verify-full unless a stricter-or-equal mode is
    // given; and `require` with a root certificate file verifies the chain.
    let ssl_mode = match (&roots, ssl_mode) {
        (Roots::System, _) if get("sslrootcert").as_deref() == Some("system") => match ssl_mode {
            SslMode::VerifyCa | SslMode::VerifyFull => ssl_mode,
            _ if get("sslmode").is_none() => SslMode::VerifyFull,
            _ => {
                return Err(format!(
                    "sslrootcert=system needs sslmode=verify-full (or verify-ca), not {}",
                    get("sslmode").unwrap_or_default()
                ));
            }
        },
        (Roots::File(_), SslMode::Require) => SslMode::VerifyCa,
        _ => ssl_mode,
    };
    let client_cert = match (get("sslcert"), get("sslkey")) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (Some(_), None) | (None, Some(_)) => {
            return Err("sslcert and sslkey go together: give both, or neither".to_string());
        }
        (None, None) => match (home_file("postgresql.crt"), home_file("postgresql.key")) {
            (Some(c), Some(k)) if env.exists(&c) && env.exists(&k) => Some((c, k)),
            _ => None,
        },
    };
    let connect_timeout = match get("connect_timeout") {
        // libpq: whole seconds, and 0 (or less) means "wait for ever"; here it means the
        // default, as a wait must end; at least 2 s, as libpq rounds up to.
        Some(v) => match v.trim().parse::<i64>() {
            Ok(s) if s > 0 => Duration::from_secs(s.max(2) as u64),
            Ok(_) => CONNECT_TIMEOUT,
            Err(_) => {
                return Err(format!(
                    "connect_timeout={v:?} is not a whole number of seconds"
                ));
            }
        },
        None => CONNECT_TIMEOUT,
    };
    let statement_timeout = match get("statement_timeout") {
        Some(v) => parse_duration(&v).ok_or_else(|| {
            format!(
                "statement_timeout={v:?} is not a duration above zero (milliseconds, or with a unit: 500ms, 30s, 2min)"
            )
        })?,
        None => STATEMENT_TIMEOUT,
    };
    Ok(Resolved {
        params: out,
        ssl_mode,
        roots,
        client_cert,
        connect_timeout,
        statement_timeout,
    })
}

/// A duration as PostgreSQL writes its settings: a number of milliseconds, or a number with
/// a unit (`ms`, `s`, `min`, `h`). Above zero.
pub(super) fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// libpq's default host: the socket directory where it is (Unix), `localhost` elsewhere.
fn default_host(env: &impl Surroundings) -> String {
    if cfg!(unix) {
        for dir in ["/var/run/postgresql", "/run/postgresql", "/tmp"] {
            if env.exists(&Path::new(dir).join(".s.PGSQL.5432")) || env.exists(Path::new(dir)) {
                return dir.to_string();
            }
        }
        "/tmp".to_string()
    } else {
        "localhost".to_string()
    }
}

/// The password for the first host from the password file (`passfile`, `PGPASSFILE` or
/// `~/.pgpass`): the first line `host:port:dbname:user:password` that matches, `*` matching
/// anything; a socket directory matches `localhost`, as in libpq.
fn password_from_file(
    given: &[Param],
    out: &[Param],
    user: &str,
    env: &impl Surroundings,
) -> Option<String> {
    let find = |key: &str| {
        given
            .iter()
            .chain(out)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let file = match find("passfile") {
        Some(f) => PathBuf::from(f),
        None if cfg!(windows) => env.home()?.join("postgresql").join("pgpass.conf"),
        None => env.home()?.join(".pgpass"),
    };
    let text = env.read(&file)?;
    let host = find("host")
        .or_else(|| find("hostaddr"))
        .unwrap_or_default();
    let host = host.split(',').next().unwrap_or("").to_string();
    let host = if host.starts_with('/') || host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    let port = find("port").unwrap_or_default();
    let port = match port.split(',').next() {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => "5432".to_string(),
    };
    let dbname = find("dbname").unwrap_or_else(|| user.to_string());
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        let [h, p, d, u, password] = fields.as_slice() else {
            continue;
        };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if matches(h, &host) && matches(p, &port) && matches(d, &dbname) && matches(u, user) {
            return Some(password.clone());
        }
    }
    None
}

/// A password file's line in its five fields; `\:` and `\\` are a colon and a backslash.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field at least").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// The parameters as the client's `key='value'` string.
pub(super) fn to_pairs(params: &[Param]) -> String {
    let mut s = String::new();
    for (key, value) in params {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(key);
        s.push_str("='");
        for c in value.chars() {
            if c == '\'' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('\'');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        vars: HashMap<String, String>,
        files: HashMap<PathBuf, String>,
    }

    impl Surroundings for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(path)
        }
        fn home(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/gw"))
        }
        fn os_user(&self) -> Option<String> {
            Some("osuser".to_string())
        }
    }

    fn get<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_url_in_all_its_parts() {
        let p = parse("postgresql://gw:p%40ss@db.example.com:6432,[::1]/gateway?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x")
            .unwrap();
        assert_eq!(get(&p, "user"), Some("gw"));
        assert_eq!(get(&p, "password"), Some("p@ss"));
        assert_eq!(get(&p, "host"), Some("db.example.com,::1"));
        assert_eq!(get(&p, "port"), Some("6432,"));
        assert_eq!(get(&p, "dbname"), Some("gateway"));
        assert_eq!(get(&p, "sslmode"), Some("verify-full"));
        assert_eq!(get(&p, "sslrootcert"), Some("/etc/ca.pem"));
        let socket = parse("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(get(&socket, "host"), Some("/var/run/postgresql"));
        assert!(parse("postgres://h/db?sslmode").is_err());
        assert!(parse("mysql://h/db").is_err());
        assert!(parse("postgres://h/%zz").is_err());
    }

    #[test]
    fn key_value_pairs_with_quotes() {
        let p = parse(r"host=h  port = 5433 password='it\'s a \\ secret' dbname=d").unwrap();
        assert_eq!(get(&p, "port"), Some("5433"));
        assert_eq!(get(&p, "password"), Some(r"it's a \ secret"));
        assert_eq!(get(&p, "dbname"), Some("d"));
        assert!(parse("host").is_err());
        assert!(parse("password='open").is_err());
        assert_eq!(parse("   ").unwrap(), Vec::<Param>::new());
    }

    #[test]
    fn the_environment_fills_what_the_string_leaves_out() {
        let mut env = Fake::default();
        for (k, v) in [
            ("PGHOST", "envhost"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "3"),
        ] {
            env.vars.insert(k.to_string(), v.to_string());
        }
        let r = resolve(parse("").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "host"), Some("envhost"));
        assert_eq!(get(&r.params, "port"), Some("6543"));
        assert_eq!(get(&r.params, "user"), Some("envuser"));
        assert_eq!(get(&r.params, "dbname"), Some("envdb"));
        assert_eq!(r.ssl_mode, SslMode::Require);
        assert_eq!(r.connect_timeout, Duration::from_secs(3));
        // The string wins over the environment.
        let r = resolve(parse("postgres://u@h:1/d?sslmode=disable").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "host"), Some("h"));
        assert_eq!(get(&r.params, "user"), Some("u"));
        assert_eq!(r.ssl_mode, SslMode::Disable);
    }

    #[test]
    fn defaults_are_the_socket_directory_and_the_os_user() {
        let mut env = Fake::default();
        env.files
            .insert(PathBuf::from("/var/run/postgresql"), String::new());
        let r = resolve(Vec::new(), &env).unwrap();
        let host = if cfg!(unix) {
            "/var/run/postgresql"
        } else {
            "localhost"
        };
        assert_eq!(get(&r.params, "host"), Some(host));
        assert_eq!(get(&r.params, "user"), Some("osuser"));
        assert_eq!(r.ssl_mode, SslMode::Prefer);
        assert_eq!(r.roots, Roots::System);
        assert_eq!(r.connect_timeout, CONNECT_TIMEOUT);
        assert_eq!(r.statement_timeout, STATEMENT_TIMEOUT);
    }

    #[test]
    fn the_password_file_matches_as_libpq_does() {
        let mut env = Fake::default();
        let file = if cfg!(windows) {
            PathBuf::from("/home/gw/postgresql/pgpass.conf")
        } else {
            PathBuf::from("/home/gw/.pgpass")
        };
        env.files.insert(
            file,
            "# comment\nother:*:*:*:no\ndb.example.com:5432:gateway:gw:pa\\:ss\n*:*:*:gw:fallback\n"
                .to_string(),
        );
        let r = resolve(parse("postgres://gw@db.example.com/gateway").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "password"), Some("pa:ss"));
        let r = resolve(parse("postgres://gw@elsewhere/gateway").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "password"), Some("fallback"));
        let r = resolve(parse("postgres://nobody@elsewhere/x").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "password"), None);
        // A password in the string wins.
        let r = resolve(parse("postgres://gw:given@elsewhere/x").unwrap(), &env).unwrap();
        assert_eq!(get(&r.params, "password"), Some("given"));
    }

    #[test]
    fn ssl_modes_and_roots() {
        let env = Fake::default();
        let mode = |s: &str| resolve(parse(s).unwrap(), &env).map(|r| (r.ssl_mode, r.roots));
        assert_eq!(
            mode("host=h sslmode=verify-full").unwrap(),
            (SslMode::VerifyFull, Roots::System)
        );
        assert_eq!(
            mode("host=h sslmode=require sslrootcert=/ca.pem").unwrap(),
            (SslMode::VerifyCa, Roots::File(PathBuf::from("/ca.pem")))
        );
        assert_eq!(
            mode("host=h sslrootcert=system").unwrap().0,
            SslMode::VerifyFull
        );
        assert!(mode("host=h sslrootcert=system sslmode=require").is_err());
        let err = mode("host=h sslmode=verify_full").unwrap_err();
        assert!(err.contains("verify_full"), "{err}");
        let err = mode("host=h sslpassword=x").unwrap_err();
        assert!(err.contains("\"sslpassword\""), "{err}");
        assert!(mode("host=h sslcert=/c").is_err());
    }

    #[test]
    fn timeouts() {
        let env = Fake::default();
        let r = resolve(
            parse("host=h connect_timeout=1 statement_timeout=2s").unwrap(),
            &env,
        )
        .unwrap();
        assert_eq!(r.connect_timeout, Duration::from_secs(2));
        assert_eq!(r.statement_timeout, Duration::from_secs(2));
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("5 days"), None);
        assert!(resolve(parse("host=h statement_timeout=soon").unwrap(), &env).is_err());
        assert!(resolve(parse("host=h connect_timeout=x").unwrap(), &env).is_err());
    }

    #[test]
    fn pairs_round_trip_through_the_clients_parser() {
        let params = vec![
            ("host".to_string(), "h".to_string()),
            ("password".to_string(), r"a'b\c d".to_string()),
        ];
        let config: tokio_postgres::Config = to_pairs(&params).parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a'b\\c d"[..]));
    }
}
