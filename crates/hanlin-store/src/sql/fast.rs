//! SQLite's hot path without a thread hop. sqlx runs each SQLite connection on its own worker
//! thread, so every statement costs a round of cross-thread wake-ups; on a small machine those
//! were most of the gateway's added latency. The four statements every metered request runs
//! (authenticate, hold, settle, rate windows) instead go through a rusqlite connection called in
//! place, under a mutex: each takes tens of microseconds. The SQL text is the same as the pooled
//! path's. The connection never waits for a lock (busy timeout 0): when another process (the CLI)
//! holds the write lock, the call reports [`Try::Busy`] and the caller uses the pooled
//! connection, which waits on its own thread instead of blocking the async runtime. Nor does it
//! checkpoint the WAL (a checkpoint copies megabytes and would stall whichever request's commit
//! triggered it): a background thread with its own connection does, every [`CHECKPOINT_EVERY`].

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Statement, ToSql};

use crate::{Result, StoreError};

/// A rusqlite error as ours; raw text only in `Backend` (logs).
pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::ConstraintViolation {
            // Extended codes tell a unique key from a check or a foreign key.
            return match f.extended_code {
                2067 | 1555 => StoreError::Conflict("a row with that key".into()),
                275 => StoreError::Invalid("a value is out of range".into()),
                787 => StoreError::NotFound("referenced row".into()),
                _ => StoreError::Invalid("a constraint failed".into()),
            };
        }
    }
    StoreError::Backend(e.to_string())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// What a hot-path call did.
pub(crate) enum Try<T> {
    /// Ran (successfully or not).
    Done(Result<T>),
    /// The database was locked by another connection; nothing was written.
    Busy,
}

/// The in-place SQLite connection.
pub(crate) struct Fast {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fast")
    }
}

impl Fast {
    /// Opens the (already migrated) database file at `path`, and starts its checkpointer.
    pub(crate) fn open(path: &str) -> Result<Arc<Self>> {
        let conn = connect(path)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(lite_err)?;
        let fast = Arc::new(Fast {
            conn: Mutex::new(conn),
        });
        let checkpointer = connect(path)?;
        let weak = Arc::downgrade(&fast);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &weak))
            .map_err(|e| StoreError::Backend(format!("starting the checkpointer: {e}")))?;
        Ok(fast)
    }

    /// Runs `f` on the connection; `Busy` when the database is locked elsewhere.
    pub(crate) fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Try<T> {
        let conn = match self.conn.lock() {
            Ok(c) => c,
            // A panic mid-statement leaves no open transaction (every statement autocommits).
            Err(poisoned) => poisoned.into_inner(),
        };
        match f(&conn) {
            Ok(v) => Try::Done(Ok(v)),
            Err(e) if is_busy(&e) => Try::Busy,
            Err(e) => Try::Done(Err(lite_err(e))),
        }
    }
}

/// How often the WAL is checkpointed (passive: it never blocks a writer).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

fn connect(path: &str) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(lite_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(lite_err)?;
    conn.busy_timeout(Duration::ZERO).map_err(lite_err)?;
    Ok(conn)
}

/// Checkpoints until the store is dropped.
fn checkpoint_loop(conn: &Connection, store: &Weak<Fast>) {
    while store.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        // A busy or failed checkpoint is retried next time; the WAL only grows meanwhile.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}

/// Binds `vals` to the statement's `$1`, `$2`, … (named parameters to SQLite, numbered in order
/// of first appearance, which need not be numeric order).
pub(crate) fn bind(stmt: &mut Statement<'_>, vals: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (i, v) in vals.iter().enumerate() {
        if let Some(idx) = stmt.parameter_index(&format!("${}", i + 1))? {
            stmt.raw_bind_parameter(idx, v)?;
        }
    }
    Ok(())
}
