//! The database client: one connection, driven on a runtime of its own on the caller's
//! thread, where **every wait ends**. The start-up (TCP, TLS, authentication) must finish
//! within the connect timeout, and each statement within the statement timeout (the server
//! is told the same, and the client gives it [`GRACE`] more to say so); a wait that runs out
//! abandons the connection, so a server or network that stalls fails the call instead of
//! hanging it. What the last statement did is then the server's to tell, as for a cut.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, Statement, ToStatement};

use super::conninfo::{self, SslMode};
use inflight::error::Error;

/// What the client waits beyond the statement timeout it gave the server: the server's own
/// cancellation (a clear error, the connection kept) normally comes first.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long our sessions may idle inside a transaction before the server ends them (each of
/// ours is a few statements): one stalled there cannot hold an instance's row lock and keep
/// a takeover waiting.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(10);

/// How long data sent may go unacknowledged before the kernel gives the connection up, when
/// the URL does not say (`tcp_user_timeout`).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed database call.
#[derive(Debug)]
pub enum DbError {
    /// The server refused the statement, or the connection failed.
    Pg(tokio_postgres::Error),
    /// No answer within the bound: the connection is abandoned.
    TimedOut {
        /// What was waited for.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// An earlier failure abandoned the connection.
    Abandoned(String),
}

impl DbError {
    /// The server's error, if it answered with one.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            DbError::Pg(e) => e.as_db_error(),
            _ => None,
        }
    }

    /// The server's SQLSTATE, if it answered with one.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            DbError::Pg(e) => e.code(),
            _ => None,
        }
    }

    /// Whether the connection is gone (cut, timed out or abandoned): the last statement's
    /// outcome is the server's to tell.
    pub fn is_lost(&self) -> bool {
        match self {
            DbError::Pg(e) => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            DbError::TimedOut { .. } | DbError::Abandoned(_) => true,
        }
    }

    /// Whether no answer came in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, DbError::TimedOut { .. })
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Pg(e) if is_pooled(e) => write!(
                f,
                "{}: our statements ran in different server sessions, so the connection goes through a pooler in transaction mode (PgBouncer's pool_mode = transaction, or a proxy that pools per transaction), where an instance's session lock cannot hold; connect straight to the server, or through a pool in session mode",
                describe(e)
            ),
            DbError::Pg(e) => f.write_str(&describe(e)),
            DbError::TimedOut { what, after } => write!(
                f,
                "no answer to {what} within {} s; the connection is abandoned (statement_timeout and connect_timeout in the URL set the bounds)",
                after.as_secs_f64()
            ),
            DbError::Abandoned(why) => write!(f, "the connection was abandoned earlier: {why}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Pg(e)
    }
}

/// Whether the server's error is the mark of a pooler in transaction mode: a prepared
/// statement of this connection missing, or one of another client's in the way.
fn is_pooled(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::INVALID_SQL_STATEMENT_NAME || *c == SqlState::DUPLICATE_PSTATEMENT
    })
}

/// What a client error says, with the server's own message when the server answered (the
/// client's display of a server error is only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

/// One connection to the database.
pub struct Db {
    rt: Runtime,
    client: Option<Client>,
    connection: Option<JoinHandle<()>>,
    /// How long the client waits for a statement: the server's timeout and [`GRACE`].
    wait: Duration,
    /// The server's statement timeout.
    statement_timeout: Duration,
    /// Why the connection was abandoned, once it was.
    broken: Option<String>,
    /// The database as messages name it (no password).
    shown: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("database", &self.shown)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// The database as messages name it: `postgres://USER@HOST:PORT/DBNAME`, no password.
fn shown(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".to_string()),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Connects to `database`: a `postgres://` URL, libpq's `key=value` pairs, or an empty
/// string (all from libpq's `PG*` environment and `~/.pgpass`). The whole start-up is bounded
/// by the connect timeout (per host tried), and the session's statement timeout is set.
pub fn connect(database: &str) -> Result<Db, Error> {
    let invalid = |reason: String| Error::InvalidInput {
        field: "database",
        reason,
        key: None,
    };
    let params = conninfo::parse(database).map_err(|e| {
        invalid(format!(
            "is not a PostgreSQL connection string: {}; give a URL such as postgres://user@127.0.0.1:5432/dbname",
            e.0
        ))
    })?;
    let resolved = conninfo::resolve(params, &conninfo::Real)
        .map_err(|e| invalid(format!("is not usable: {e}")))?;
    let mut config: Config = conninfo::to_pairs(&resolved.params)
        .parse()
        .map_err(|e| invalid(format!("is not usable: {}", describe(&e))))?;
    config.connect_timeout(resolved.connect_timeout);
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("inflight");
    }
    config.ssl_mode(match resolved.ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let database_error = |cause: String| Error::Database {
        database: shown(&config),
        cause,
    };
    let tls = super::tls::client_config(
        resolved.ssl_mode,
        &resolved.roots,
        resolved.client_cert.as_ref(),
    )
    .map_err(|e| database_error(format!("cannot set up TLS: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| database_error(format!("cannot start the client's runtime: {e}")))?;
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1) as u32;
    let start_up = resolved.connect_timeout * hosts;
    let connecting = config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls));
    let (client, connection) = match rt
        .block_on(async { tokio::time::timeout(start_up, connecting).await })
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(database_error(format!("cannot connect: {}", describe(&e)))),
        Err(_) => {
            return Err(database_error(format!(
                "cannot connect: the server did not complete the connection's start-up within {} s (connect_timeout, per host); it may be overloaded, or a proxy in the way accepts connections without forwarding them",
                start_up.as_secs()
            )));
        }
    };
    let connection = rt.spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "the database connection ended");
        }
    });
    let mut db = Db {
        rt,
        client: Some(client),
        connection: Some(connection),
        wait: resolved.statement_timeout + GRACE,
        statement_timeout: resolved.statement_timeout,
        broken: None,
        shown: shown(&config),
    };
    let setup = format!(
        "SET idle_in_transaction_session_timeout = '{}ms'; SET statement_timeout = '{}ms'",
        IDLE_IN_TRANSACTION.as_millis(),
        db.statement_timeout.as_millis()
    );
    db.batch_execute(&setup)
        .map_err(|e| database_error(format!("cannot set up the session: {e}")))?;
    Ok(db)
}

impl Db {
    /// The database as messages name it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs one exchange with the server, bounded by the statement wait.
    fn run<T>(
        &mut self,
        what: &'static str,
        call: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, DbError> {
        if let Some(why) = &self.broken {
            return Err(DbError::Abandoned(why.clone()));
        }
        let wait = self.wait;
        let Db {
            rt, client, broken, ..
        } = self;
        let client = client
            .as_ref()
            .expect("a connection not abandoned has its client");
        let outcome = match rt.block_on(async { tokio::time::timeout(wait, call(client)).await }) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let e = DbError::Pg(e);
                if e.is_lost() {
                    *broken = Some(e.to_string());
                }
                Err(e)
            }
            Err(_) => {
                let e = DbError::TimedOut { what, after: wait };
                *broken = Some(e.to_string());
                Err(e)
            }
        };
        if self.broken.is_some() {
            self.abandon();
        }
        outcome
    }

    /// Drops the connection: its socket is closed, and the server ends the session (and
    /// releases its locks) when it notices.
    fn abandon(&mut self) {
        self.client = None;
        if let Some(connection) = self.connection.take() {
            connection.abort();
            let _ = self.rt.block_on(connection);
        }
    }

    /// Runs statements given as text, without parameters.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.run("a statement", async |c| c.batch_execute(sql).await)
    }

    /// Prepares a statement.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, DbError> {
        self.run("a prepare", async |c| c.prepare(sql).await)
    }

    /// Runs a statement and returns its rows.
    pub fn query<T: ?Sized + ToStatement + Sync>(
        &mut self,
        sql: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.run("a query", async |c| c.query(sql, params).await)
    }

    /// Runs a statement that returns exactly one row.
    pub fn query_one<T: ?Sized + ToStatement + Sync>(
        &mut self,
        sql: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.run("a query", async |c| c.query_one(sql, params).await)
    }

    /// Runs a statement that returns at most one row.
    pub fn query_opt<T: ?Sized + ToStatement + Sync>(
        &mut self,
        sql: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        self.run("a query", async |c| c.query_opt(sql, params).await)
    }

    /// Runs a statement and returns the rows it changed.
    pub fn execute<T: ?Sized + ToStatement + Sync>(
        &mut self,
        sql: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        self.run("a statement", async |c| c.execute(sql, params).await)
    }

    /// Begins a transaction; it rolls back unless [`Tx::commit`] is called.
    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        self.batch_execute("BEGIN")?;
        Ok(Tx {
            db: self,
            open: true,
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // A graceful goodbye (the client's Terminate), bounded: a dead server cannot hold a
        // drop up.
        self.client = None;
        if let Some(connection) = self.connection.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), connection).await });
        }
    }
}

/// A transaction on a [`Db`]: the same calls, rolled back if dropped before
/// [`commit`](Tx::commit).
pub struct Tx<'a> {
    db: &'a mut Db,
    open: bool,
}

impl Tx<'_> {
    /// Commits the transaction.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.db.batch_execute("COMMIT")
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open && self.db.broken.is_none() {
            let _ = self.db.batch_execute("ROLLBACK");
        }
    }
}
