//! The database handle: connection setup, the group-commit writer and the
//! pool of read-only connections.
//!
//! # Why a single writer with group commit
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every
//! commit costs an fsync, which dominates the cost of a small write. Instead
//! of letting request threads fight over the write lock (and each pay for an
//! fsync), one dedicated thread owns the only read-write connection. Callers
//! hand it closures; it takes everything queued (up to
//! [`DbOptions::max_batch`]), runs each closure inside its own `SAVEPOINT`
//! within one transaction, commits once and then answers every caller. A
//! caller is answered only after the commit that contains its work has
//! returned, so an `Ok` means the data is on disk.
//!
//! A group of one runs without the savepoint (the transaction is its
//! rollback), and bulk work ([`Database::write_alone`]) always runs in a
//! group of one. That matters for large closures: SQLite copies every page
//! a savepoint first modifies into an in-memory sub-journal, and each
//! statement that closes a statement journal walks that sub-journal's
//! chunk list to truncate it (`memjrnlTruncate`), so a closure writing
//! thousands of rows under a savepoint cost time quadratic in its size:
//! a fifth of a pre-enrolment upload's CPU.
//!
//! Readers use a separate pool of read-only connections; in WAL mode they
//! see the last committed state and never block, nor are blocked by, the
//! writer.
//!
//! # Checkpoints beside the writer
//!
//! SQLite normally checkpoints (copies committed WAL frames into the
//! database file, with an fsync of each) inside the commit that pushes the
//! WAL past 1000 pages. Certificates write many pages per commit (random
//! ids land all over the indexes), so that was nearly every commit: three
//! fsyncs instead of one on the path every caller waits for. Here the
//! writer never checkpoints (`wal_autocheckpoint=0`); a checkpointer
//! thread with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)`
//! shortly after commits. A passive checkpoint takes no lock the writer
//! needs, and durability is unchanged: each commit still fsyncs the WAL
//! before anyone is answered, and a checkpoint fsyncs the database before
//! the WAL may be reused.

use std::any::Any;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StorageError};
use crate::migrate;
use crate::pg::PgRuntime;
use crate::sql::{Conn, SqlError, SqlResult};

/// Tuning knobs for [`Database::open`]. `Default` gives values suitable for
/// the host; tests shrink them.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Number of read-only connections in the reader pool (at least 1).
    pub readers: usize,
    /// How long a connection waits on a lock held by another connection or
    /// process before failing with `SQLITE_BUSY`.
    pub busy_timeout: Duration,
    /// Most work items the writer puts in one transaction. Bounds the time
    /// callers in a group wait for each other and the size of a rollback.
    pub max_batch: usize,
    /// Capacity of the writer's queue. When full, [`Database::write`] blocks
    /// until there is room: back-pressure rather than unbounded memory.
    pub queue_capacity: usize,
    /// The writer connection's page cache, KiB. Held in the process once
    /// the database is larger than it (docs/PERFORMANCE.md, § Memory).
    pub writer_cache_kib: u32,
    /// Each reader connection's page cache, KiB.
    pub reader_cache_kib: u32,
    /// Page size of a database this creates (an existing one keeps its
    /// own): a random insert into a large index rewrites one page, so the
    /// page size is the unit of write amplification (docs/PERFORMANCE.md,
    /// § Footprint and growth).
    pub page_size: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
            queue_capacity: 4096,
            writer_cache_kib: 16 * 1024,
            reader_cache_kib: 2 * 1024,
            page_size: 4096,
        }
    }
}

/// Counters describing what the writer has done since the database was
/// opened. Used by tests and metrics to check that writes are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Work items the writer has run (successful or not).
    pub writes: u64,
    /// Work items whose closure returned an error or panicked (their
    /// savepoint was rolled back).
    pub failed_writes: u64,
    /// Transactions committed to disk (one fsync each).
    pub commits: u64,
    /// Groups whose transaction was rolled back as a whole (begin or commit
    /// failed).
    pub failed_groups: u64,
    /// The largest number of work items seen in one group.
    pub largest_group: u64,
    /// Writes (not bulk ones) waiting for the writer now.
    pub queued: u64,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    failed_writes: AtomicU64,
    commits: AtomicU64,
    failed_groups: AtomicU64,
    largest_group: AtomicU64,
    /// Writes sent to the writer and not yet taken off its queue, bulk
    /// ([`Database::write_alone`]) ones not counted: bulk work yields to
    /// the small writes behind it, not to other bulk work (two uploads
    /// would make each other commit after every batch).
    queued: AtomicU64,
}

/// A write transaction, as seen by one work item.
///
/// Everything done through a `Tx` belongs to the caller's savepoint: if the
/// closure returns `Err` (or panics), all of it is undone while the other
/// items of the group still commit. Repository functions such as
/// [`crate::events::append_event`] take a `&Tx`, so a module can store a
/// record, its event and its audit entry atomically.
///
/// There is deliberately no public way to run SQL through a `Tx`: all SQL
/// lives in this crate's repositories.
pub struct Tx<'c> {
    conn: Conn<'c>,
    queued: &'c AtomicU64,
    /// Counter deltas of the closure running now ([`crate::stats::add`]):
    /// kept if it succeeds, dropped with its savepoint if it fails.
    item_counts: std::cell::RefCell<crate::stats::Deltas>,
    /// Counter deltas of the group's successful closures, written once
    /// just before the group commits.
    group_counts: std::cell::RefCell<crate::stats::Deltas>,
    /// The audit chain's head as this group's appends left it
    /// ([`crate::audit`]): read once per group, written once before the
    /// group commits.
    pub(crate) audit_head: std::cell::RefCell<crate::audit::GroupHead>,
}

/// What a savepoint inside a closure takes back besides its rows: see
/// [`Tx::mark`].
pub(crate) struct TxMark {
    audit: crate::audit::AuditMark,
    counts: crate::stats::Deltas,
}

impl<'c> Tx<'c> {
    /// A read view of the same transaction, for the repositories' read
    /// functions. It sees this transaction's own uncommitted writes.
    pub fn reader(&self) -> Reader<'c> {
        Reader { conn: self.conn }
    }

    pub(crate) fn conn(&self) -> Conn<'c> {
        self.conn
    }

    /// Where the running closure's audit appends and counts stand: a
    /// closure that rolls back to a savepoint of its own rewinds to the
    /// mark taken when it made the savepoint (see
    /// [`crate::certificates::insert_many`]).
    pub(crate) fn mark(&self) -> TxMark {
        TxMark {
            audit: self.audit_head.borrow().mark(),
            counts: self.item_counts.borrow().clone(),
        }
    }

    /// See [`Tx::mark`].
    pub(crate) fn rewind(&self, mark: TxMark) {
        self.audit_head.borrow_mut().rewind(mark.audit);
        *self.item_counts.borrow_mut() = mark.counts;
    }

    pub(crate) fn count(&self, key: crate::stats::CountKey, delta: i64) {
        *self.item_counts.borrow_mut().entry(key).or_default() += delta;
    }

    /// The closure that ran last ended: its counts join the group's, or
    /// go with its rolled-back savepoint.
    fn item_done(&self, ok: bool) {
        self.audit_head.borrow_mut().item_done(ok);
        let mut item = self.item_counts.borrow_mut();
        if ok {
            let mut group = self.group_counts.borrow_mut();
            for (k, d) in item.drain() {
                *group.entry(k).or_default() += d;
            }
        } else {
            item.clear();
        }
    }

    /// Whether other writes (not bulk ones) are queued behind this one.
    /// Bulk work done through [`Database::write_alone`] checks it now and
    /// then and, when true, stops and commits what it has done, so that the
    /// writes behind it wait for a slice of an upload, not for a whole
    /// chunk.
    ///
    /// On PostgreSQL the writes behind it include other hosts': their
    /// writers wait for the write lock this transaction holds
    /// ([`WRITE_LOCK`]), and without a look at the lock table they would
    /// wait for the whole chunk (a minute of an upload). A failed look
    /// answers `true`: committing early is always safe.
    pub fn others_waiting(&self) -> bool {
        if self.queued.load(Ordering::Relaxed) > 0 {
            return true;
        }
        match self.conn {
            Conn::Lite(_) => false,
            Conn::Pg(_) => {
                let waiting = self
                    .conn
                    .prepare_cached(WRITE_LOCK_WAITERS)
                    .and_then(|mut stmt| stmt.exists(()));
                waiting.unwrap_or(true)
            }
        }
    }
}

/// A read-only view of the database: either a pooled read connection inside
/// one read transaction (a consistent snapshot), or the read side of a
/// [`Tx`].
pub struct Reader<'c> {
    pub(crate) conn: Conn<'c>,
}

impl<'c> Reader<'c> {
    pub(crate) fn conn(&self) -> Conn<'c> {
        self.conn
    }
}

/// A handle to the storage database. Cheap to clone; all clones share the
/// writer thread and reader pool. When the last clone is dropped the writer
/// finishes every queued write, then closes.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    // `Option` so that `Drop` can close the queue before joining the writer.
    queue: Option<mpsc::SyncSender<Box<dyn WorkItem>>>,
    writer: Option<JoinHandle<()>>,
    /// Dropping the sender stops the checkpointer.
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    writer_id: ThreadId,
    readers: Readers,
    counters: Arc<Counters>,
    /// PostgreSQL's I/O thread; declared last so it outlives every
    /// connection above it.
    _pg: Option<Arc<PgRuntime>>,
}

impl Database {
    /// Opens (creating if needed) the database at `path`, configures it for
    /// durability and concurrency, migrates the schema to the latest version
    /// and starts the writer thread.
    ///
    /// Settings applied: `journal_mode=WAL` (readers run beside the writer),
    /// `synchronous=FULL` (an acknowledged write survives power loss; a
    /// product requirement), `foreign_keys=ON` and `busy_timeout`.
    pub fn open(path: &Path, opts: DbOptions) -> Result<Database> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }

        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_writer(&writer, &opts)?;
        migrate::run(&mut writer)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        // Readers are opened after the writer has switched the file to WAL
        // and created the schema, so they never see a half-made database.
        let readers = Readers::Lite(ReaderPool::open_lite(path, &opts)?);

        let counters = Arc::new(Counters::default());
        let (queue, rx) = mpsc::sync_channel::<Box<dyn WorkItem>>(opts.queue_capacity.max(1));
        let max_batch = opts.max_batch.max(1);
        let thread_counters = Arc::clone(&counters);
        let busy_timeout = opts.busy_timeout;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let writer = LiteWriter {
            conn: writer,
            wal: PathBuf::from(wal),
            busy_timeout,
        };
        let handle = std::thread::Builder::new()
            .name("divoc-storage-writer".into())
            .spawn(move || writer_loop(writer, rx, max_batch, &thread_counters))
            .map_err(|source| StorageError::Io {
                path: path.to_path_buf(),
                source,
            })?;

        let checkpoint_conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_checkpointer(&checkpoint_conn, &opts)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread_counters = Arc::clone(&counters);
        let checkpointer = std::thread::Builder::new()
            .name("divoc-storage-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpoint_conn, stopped, &thread_counters))
            .map_err(|source| StorageError::Io {
                path: path.to_path_buf(),
                source,
            })?;

        Ok(Database {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                queue: Some(queue),
                writer_id: handle.thread().id(),
                writer: Some(handle),
                checkpointer: Some((stop, checkpointer)),
                readers,
                counters,
                _pg: None,
            }),
        })
    }

    /// Opens the PostgreSQL database at `url`, migrates its schema to the
    /// latest version and starts the writer thread, exactly as
    /// [`open`](Self::open) does for SQLite: the same group commit (one
    /// transaction and one WAL flush for a group of closures, each in its
    /// savepoint), and `opts.readers` pooled connections whose reads each
    /// see one snapshot (`REPEATABLE READ, READ ONLY`). Commits are
    /// durable with the server's default `synchronous_commit = on`.
    ///
    /// The page-cache and page-size options are SQLite's and are ignored.
    pub fn open_postgres(url: &str, opts: DbOptions) -> Result<Database> {
        let runtime = PgRuntime::start(url)?;
        let writer = runtime.connect()?;
        crate::pg::migrate(&writer)?;
        let readers = Readers::Pg(ReaderPool::open_pg(&runtime, &opts)?);

        let counters = Arc::new(Counters::default());
        let (queue, rx) = mpsc::sync_channel::<Box<dyn WorkItem>>(opts.queue_capacity.max(1));
        let max_batch = opts.max_batch.max(1);
        let thread_counters = Arc::clone(&counters);
        let writer = PgWriter {
            conn: writer,
            runtime: Arc::clone(&runtime),
        };
        let handle = std::thread::Builder::new()
            .name("divoc-storage-writer".into())
            .spawn(move || writer_loop(writer, rx, max_batch, &thread_counters))
            .map_err(|source| StorageError::Io {
                path: "divoc-storage-writer".into(),
                source,
            })?;
        tracing::info!(url = %crate::pg::redact(url), "storage on PostgreSQL");
        Ok(Database {
            inner: Arc::new(Inner {
                path: PathBuf::new(),
                queue: Some(queue),
                writer_id: handle.thread().id(),
                writer: Some(handle),
                checkpointer: None,
                readers,
                counters,
                _pg: Some(runtime),
            }),
        })
    }

    /// For tests of this crate and the modules: a new PostgreSQL schema
    /// when `TEST_DIVOC_POSTGRES` names a cluster (see `scripts/pg.sh`),
    /// else the SQLite file at `path`. The same tests run on both backends.
    #[doc(hidden)]
    pub fn open_test(path: &Path, opts: DbOptions) -> Result<Database> {
        match crate::pg::test_database_url() {
            Some(url) => Database::open_postgres(&url, opts),
            None => Database::open(path, opts),
        }
    }

    /// For the end-to-end tests, which check what a server stored on
    /// either backend: runs one query in a read transaction and returns its
    /// rows as JSON values (integers and reals as numbers, text as strings,
    /// bytes as lowercase hex, NULL as null).
    #[doc(hidden)]
    pub fn query_json_for_tests(&self, sql: &str) -> Result<Vec<Vec<serde_json::Value>>> {
        use crate::sql::Value as V;
        self.read(|r| {
            let mut stmt = r.conn().prepare(sql)?;
            let rows = stmt.query_map((), |row| {
                (0..row.column_count())
                    .map(|i| {
                        Ok(match row.get::<V>(i)? {
                            V::Null => serde_json::Value::Null,
                            V::Integer(n) => n.into(),
                            V::Real(f) => f.into(),
                            V::Text(s) => s.into(),
                            V::Blob(b) => hex::encode(b).into(),
                        })
                    })
                    .collect()
            })?;
            Ok(rows.collect::<SqlResult<Vec<_>>>()?)
        })
    }

    /// For the end-to-end tests that do what no API allows (tamper with
    /// the audit log, take a table away): runs `sql` through the writer.
    #[doc(hidden)]
    pub fn execute_batch_for_tests(&self, sql: &str) -> Result<()> {
        let sql = sql.to_owned();
        self.write(move |tx| Ok(tx.conn().execute_batch(&sql)?))
            .wait()
    }

    /// Calls `f` when another host sharing this database announces a
    /// change on `channel` (see [`notify`]); with `""` when announcements
    /// may have been missed (the listener reconnected), which means
    /// "anything may have changed". On SQLite there is one host, which
    /// knows its own changes: `f` is never called.
    pub fn on_change(&self, channel: &'static str, f: crate::pg::OnChange) {
        if let Some(rt) = &self.inner._pg {
            rt.listen(channel, f);
        }
    }

    /// Which backend this database is on.
    pub fn dialect(&self) -> crate::sql::Dialect {
        match self.inner.readers {
            Readers::Lite(_) => crate::sql::Dialect::Sqlite,
            Readers::Pg(_) => crate::sql::Dialect::Postgres,
        }
    }

    /// The file this database lives in (empty on PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `f` for the writer and returns a handle to its result.
    ///
    /// `f` runs on the writer thread inside its own savepoint of a group
    /// transaction. Wait for the result with [`PendingWrite::wait`] (plain
    /// threads) or `.await` (async code). The result arrives only after the
    /// group has been committed, so `Ok` means durable. If `f` returns `Err`
    /// or panics, only its own changes are rolled back.
    ///
    /// The write is performed whether or not the handle is waited on. This
    /// call blocks only while the queue is full.
    pub fn write<T, F>(&self, f: F) -> PendingWrite<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.queue(f, false)
    }

    /// Like [`write`](Self::write), but the outcome goes to `then`, called
    /// on the writer thread once the group has committed or failed (or at
    /// once, with the error, if the writer is gone): for one write that
    /// answers several waiters ([`Database::answer_later`]). `then` must be
    /// quick, as the next group waits for it.
    pub fn write_then<T, F, C>(&self, f: F, then: C)
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
        C: FnOnce(Result<T>) + Send + 'static,
    {
        let then = Arc::new(Mutex::new(Some(then)));
        let on_done = Arc::clone(&then);
        let state = self.queue_with(
            f,
            false,
            Box::new(move |result| {
                if let Some(then) = on_done.lock().take() {
                    then(result);
                }
            }),
        );
        if let Err(e) = state {
            if let Some(then) = then.lock().take() {
                then(Err(e));
            }
        }
    }

    /// A [`PendingWrite`] that a [`WriteAnswer`] completes: the caller
    /// waits (or awaits) as for its own write while another write, which
    /// carries the answer, stores its work (see [`Database::write_then`]).
    pub fn answer_later<T>(&self) -> (WriteAnswer<T>, PendingWrite<T>) {
        let (reply, rx) = oneshot::channel();
        (
            WriteAnswer(reply),
            PendingWrite {
                state: PendingState::Queued(rx),
                writer_id: self.inner.writer_id,
            },
        )
    }

    fn queue<T, F>(&self, f: F, alone: bool) -> PendingWrite<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let state = self.queue_with(
            f,
            alone,
            Box::new(move |result| {
                // The caller may have stopped waiting; that is not an error.
                let _ = reply.send(result);
            }),
        );
        PendingWrite {
            state: match state {
                Ok(()) => PendingState::Queued(rx),
                Err(e) => PendingState::Failed(e),
            },
            writer_id: self.inner.writer_id,
        }
    }

    /// Queues `f`; `Err` (and `reply` dropped unanswered) if it cannot be.
    fn queue_with<T, F>(&self, f: F, alone: bool, reply: Reply<T>) -> Result<()>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let item: Box<dyn WorkItem> = Box::new(Item {
            f: Some(f),
            outcome: None,
            reply,
            alone,
        });
        let on_writer = std::thread::current().id() == self.inner.writer_id;
        // Counted before it is sent, so the writer never takes an item the
        // count does not hold yet.
        let queued = &self.inner.counters.queued;
        let counted = u64::from(!alone);
        queued.fetch_add(counted, Ordering::Relaxed);
        let state = match &self.inner.queue {
            // From inside a write closure a blocking send on a full queue
            // would wait for the very thread that is sending.
            Some(queue) if on_writer => match queue.try_send(item) {
                Ok(()) => Ok(()),
                Err(mpsc::TrySendError::Full(_)) => Err(StorageError::WouldDeadlock),
                Err(mpsc::TrySendError::Disconnected(_)) => Err(StorageError::WriterGone),
            },
            Some(queue) if queue.send(item).is_ok() => Ok(()),
            _ => Err(StorageError::WriterGone),
        };
        if state.is_err() {
            queued.fetch_sub(counted, Ordering::Relaxed);
        }
        state
    }

    /// Like [`write`](Self::write), for bulk work (an upload's chunk of
    /// rows): `f` runs in a transaction of its own, never grouped with
    /// other writes, so that no savepoint sub-journal grows with it (see
    /// the module docs). If `f` returns `Err` or panics, everything it did
    /// is rolled back.
    pub fn write_alone<T, F>(&self, f: F) -> PendingWrite<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.queue(f, true)
    }

    /// Runs `f` on a pooled read-only connection inside one read
    /// transaction, so everything `f` reads comes from the same committed
    /// snapshot. Waits for a free connection if all are busy.
    ///
    /// This blocks the calling thread; async callers should use
    /// `spawn_blocking` for anything but tiny reads.
    pub fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Reader<'_>) -> Result<T>,
    {
        self.inner.readers.with(f)
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> WriteStats {
        let c = &self.inner.counters;
        WriteStats {
            writes: c.writes.load(Ordering::Relaxed),
            failed_writes: c.failed_writes.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            failed_groups: c.failed_groups.load(Ordering::Relaxed),
            largest_group: c.largest_group.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
        }
    }

    /// Opens a throw-away read-write connection for tests that need to do
    /// what no API allows, such as tampering with the audit log.
    #[cfg(test)]
    pub(crate) fn raw_connection_for_tests(&self) -> Connection {
        #[allow(clippy::unwrap_used)]
        let conn = Connection::open(&self.inner.path).unwrap();
        #[allow(clippy::unwrap_used)]
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain what is already queued and
        // then leave its loop.
        drop(self.queue.take());
        // If the last handle is dropped by a closure running on the writer
        // thread itself, joining would wait forever; the thread ends on its
        // own once it returns to its loop.
        if std::thread::current().id() == self.writer_id {
            return;
        }
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("storage writer thread panicked");
            }
        }
        // After the writer: the last checkpoint sees its last commit.
        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("storage checkpointer thread panicked");
            }
        }
    }
}

/// Plans that do not depend on bound values. Since SQLite 3.47 a
/// statement with `LIMIT ?` reads the bound limit while planning, and so
/// is prepared again on every bind: a quarter of a pre-enrolment upload's
/// writer time went into re-preparing one `LIMIT ?` lookup. With the query
/// planner stability guarantee a cached statement stays prepared.
/// <https://sqlite.org/c3ref/c_dbconfig_defensive.html#sqlitedbconfigenableqpsg>
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn configure_writer(conn: &Connection, opts: &DbOptions) -> Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    // Only takes effect on a new, empty file, and only before WAL mode is
    // set (which writes the header).
    conn.pragma_update(None, "page_size", opts.page_size)?;
    stable_plans(conn)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Setting {
            pragma: "journal_mode",
            actual: mode,
            required: "wal",
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    // 2 is FULL; anything weaker would break the "acknowledged means on
    // disk" promise, so refuse to run rather than silently weaken it.
    if sync != 2 {
        return Err(StorageError::Setting {
            pragma: "synchronous",
            actual: sync.to_string(),
            required: "FULL (2)",
        });
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every work item runs in a savepoint, and SQLite copies each page a
    // savepoint first modifies into a statement sub-journal. With the
    // default temp store that is a temporary *file*, i.e. one pwrite
    // syscall per page per item (a quarter of the writer's time when
    // issuing certificates). The sub-journal only ever serves a rollback
    // inside the open transaction, so memory is as safe as the file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Inserts into the idempotency key's index land all over it; a larger
    // page cache keeps its inner pages resident instead of re-reading them
    // from the OS. Negative `cache_size` is in KiB.
    conn.pragma_update(None, "cache_size", -i64::from(opts.writer_cache_kib))?;
    // The checkpointer thread checkpoints; see the module docs.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    Ok(())
}

/// The checkpointer's connection: a checkpoint fsyncs the WAL before
/// copying it and the database after, so `synchronous=FULL` here too.
fn configure_checkpointer(conn: &Connection, opts: &DbOptions) -> Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    Ok(())
}

/// How long the checkpointer waits between checkpoints, while there are
/// new commits: long enough that pages rewritten by many commits (index
/// pages) are copied once, short enough that the WAL stays small.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The WAL file is truncated back to this size (bytes) after it has grown.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

fn checkpointer_loop(conn: Connection, stop: mpsc::Receiver<()>, counters: &Counters) {
    let mut seen = 0;
    // Returns when `Database` drops the sender (or sends, which it never does).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let commits = counters.commits.load(Ordering::Relaxed);
        if commits == seen {
            continue;
        }
        seen = commits;
        // PASSIVE: copy what no reader still needs, without waiting for or
        // blocking anyone; the rest is copied next time.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", (), |row| {
            row.get::<_, i64>(0)
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "storage checkpoint failed; will retry");
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the storage checkpoint connection failed");
    }
}

/// Announces a change on `channel` to every host's [`Database::on_change`],
/// when the caller's transaction commits (`pg_notify`; nothing on SQLite).
pub fn notify(tx: &Tx<'_>, channel: &str, payload: &str) -> Result<()> {
    if tx.conn().dialect() == crate::sql::Dialect::Postgres {
        tx.conn().execute(
            "SELECT pg_notify(?1, ?2)",
            crate::sql::params![channel, payload],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The writer.

/// One queued write, with its closure and reply channel type-erased so that
/// writes of different result types share one queue.
trait WorkItem: Send {
    /// Runs the closure, inside its own savepoint when `savepoint` (a
    /// group of one needs none). `Err` means the transaction itself is
    /// broken (a savepoint statement failed, or SQLite rolled the whole
    /// transaction back), so the group must be abandoned.
    fn run(&mut self, tx: &Tx<'_>, savepoint: bool) -> SqlResult<bool>;

    /// Whether the item runs in a group of its own.
    fn alone(&self) -> bool;

    /// Answers the caller once the group's fate is known. `group` is `Err`
    /// with a reason when the group transaction was not committed.
    fn finish(self: Box<Self>, group: std::result::Result<(), &str>);
}

/// Where a write's outcome goes once its group is done.
type Reply<T> = Box<dyn FnOnce(Result<T>) + Send>;

struct Item<T, F> {
    f: Option<F>,
    outcome: Option<Result<T>>,
    reply: Reply<T>,
    alone: bool,
}

/// Prepared statements kept per connection. rusqlite's default (16) is
/// fewer than the distinct statements one certificate issuance runs on the
/// writer (savepoints, the certificate row, lookups, audit, event, outbox,
/// the idempotency read…), and an evicted statement is parsed again on its
/// next use: that was 7 % of the writer's time.
const STATEMENT_CACHE: usize = 128;

/// A group's transaction on PostgreSQL. Several hosts' writers share one
/// database: groups take turns under a transaction-level advisory lock
/// (held until COMMIT), as SQLite's `BEGIN IMMEDIATE` makes writers take
/// turns on a file. What this buys: the audit chain's head is read and
/// advanced by one group at a time (one chain, verifiable as before), and
/// a group never waits for another host's row while holding the head, so
/// hosts cannot deadlock on each other. Each host's group grows while it
/// waits, so group commit amortizes the turns (docs/SCALE.md).
const WRITE_LOCK: &str = "BEGIN; SELECT pg_advisory_xact_lock(4242001)";

/// Whether another session waits for [`WRITE_LOCK`] (an advisory lock on
/// a `bigint` key below 2^32 shows as `classid` 0, `objid` the key,
/// `objsubid` 1).
const WRITE_LOCK_WAITERS: &str = "SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND classid = 0 AND objid = 4242001
        AND objsubid = 1 AND NOT granted AND database = (
            SELECT oid FROM pg_database WHERE datname = current_database())";

/// Said at the start of bulk work's transaction on PostgreSQL
/// ([`Database::write_alone`]): plan every statement for the tables as they
/// are now. A connection's prepared statements switch to one generic plan
/// after five runs, costed on the sizes the planner last knew; a chunk of
/// an upload grows a table by up to 100,000 rows inside one transaction,
/// which no autovacuum ANALYZE can see, so a lookup by key planned as a
/// scan of the small table it was stays a scan — each row's lookup reads
/// the rows before it (a 200,000-row upload did not finish in 12 minutes).
/// A custom plan reads the table's current size (`estimate_rel_size`) and
/// takes the index. Small writes keep their cached plans: between their
/// transactions ANALYZE runs and replans them.
const BULK_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// The per-item savepoint. Items run one after another, so one name
/// suffices.
const SAVEPOINT_BEGIN: &str = "SAVEPOINT divoc_item";
const SAVEPOINT_RELEASE: &str = "RELEASE divoc_item";
const SAVEPOINT_ROLLBACK: &str = "ROLLBACK TO divoc_item";

/// Runs a statement without parameters or rows through the connection's
/// statement cache: the writer runs the same few control statements for
/// every item and group, and parsing them each time is measurable.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute(())?;
    Ok(())
}

/// A transaction-control statement on either backend: cached on SQLite
/// (see [`exec_cached`]), a simple query on PostgreSQL.
fn control(conn: Conn<'_>, sql: &str) -> SqlResult<()> {
    match conn {
        Conn::Lite(c) => Ok(exec_cached(c, sql)?),
        Conn::Pg(c) => c.batch(sql),
    }
}

impl<T, F> WorkItem for Item<T, F>
where
    F: FnOnce(&Tx<'_>) -> Result<T> + Send,
    T: Send,
{
    fn alone(&self) -> bool {
        self.alone
    }

    fn run(&mut self, tx: &Tx<'_>, savepoint: bool) -> SqlResult<bool> {
        let Some(f) = self.f.take() else {
            return Ok(false);
        };
        let conn = tx.conn;
        if savepoint {
            control(conn, SAVEPOINT_BEGIN)?;
        }
        // A panicking closure must not take the writer thread (and every
        // other caller) down with it.
        let outcome = catch_unwind(AssertUnwindSafe(|| f(tx)))
            .unwrap_or_else(|payload| Err(StorageError::Panicked(panic_message(&*payload))));
        // Some errors (disk full, I/O) make SQLite roll back the whole
        // transaction on its own; the savepoint is then gone and nothing of
        // the group can be trusted. (PostgreSQL keeps the transaction,
        // aborted until the savepoint is rolled back to, or fails the
        // release below.)
        if let Conn::Lite(c) = conn {
            if c.is_autocommit() {
                self.outcome = Some(outcome);
                return Err(SqlError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("transaction was rolled back by SQLite".into()),
                )));
            }
        }
        let ok = outcome.is_ok();
        tx.item_done(ok);
        // Without a savepoint a failed item is the group's only one: the
        // group rolls back (nothing succeeded).
        if savepoint {
            if !ok {
                control(conn, SAVEPOINT_ROLLBACK)?;
            }
            control(conn, SAVEPOINT_RELEASE)?;
        }
        self.outcome = Some(outcome);
        Ok(ok)
    }

    fn finish(self: Box<Self>, group: std::result::Result<(), &str>) {
        let result = match (self.outcome, group) {
            // The closure's own error wins: it explains why this item failed
            // regardless of what happened to the group.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(reason)) | (None, Err(reason)) => {
                Err(StorageError::CommitFailed(reason.to_string()))
            }
            (None, Ok(())) => Err(StorageError::CommitFailed("work item did not run".into())),
        };
        (self.reply)(result);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The writer thread's connection, on either backend.
trait WriterConn: Send + 'static {
    fn conn(&self) -> Conn<'_>;
    /// Between groups, after their callers were answered.
    fn after_group(&mut self);
    fn close(self);
}

struct LiteWriter {
    conn: Connection,
    wal: PathBuf,
    busy_timeout: Duration,
}

impl WriterConn for LiteWriter {
    fn conn(&self) -> Conn<'_> {
        Conn::Lite(&self.conn)
    }

    fn after_group(&mut self) {
        restart_wal_if_large(
            &self.conn,
            &self.wal,
            WAL_SIZE_LIMIT.unsigned_abs(),
            self.busy_timeout,
        );
    }

    fn close(self) {
        // Dropping the connection checkpoints the WAL if this is the last one.
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "closing the storage writer connection failed");
        }
    }
}

struct PgWriter {
    conn: crate::sql::PgConn,
    runtime: Arc<PgRuntime>,
}

impl WriterConn for PgWriter {
    fn conn(&self) -> Conn<'_> {
        Conn::Pg(&self.conn)
    }

    /// A connection the server closed (a restart, a fail-over) failed its
    /// group; the next group gets a new one.
    fn after_group(&mut self) {
        if self.conn.is_closed() {
            match self.runtime.connect() {
                Ok(conn) => self.conn = conn,
                Err(e) => tracing::error!(error = %e, "cannot reconnect the storage writer"),
            }
        }
    }

    fn close(self) {}
}

fn writer_loop<W: WriterConn>(
    mut conn: W,
    rx: mpsc::Receiver<Box<dyn WorkItem>>,
    max_batch: usize,
    counters: &Counters,
) {
    let mut group: Vec<Box<dyn WorkItem>> = Vec::with_capacity(max_batch);
    // An item that must run alone, taken from the queue while a group was
    // being filled: it starts the next group.
    let mut carried: Option<Box<dyn WorkItem>> = None;
    // `recv` keeps returning queued items after the last sender is dropped,
    // so shutdown drains the queue before the loop ends.
    let taken = |item: &dyn WorkItem| {
        counters
            .queued
            .fetch_sub(u64::from(!item.alone()), Ordering::Relaxed)
    };
    while let Some(first) = carried.take().or_else(|| {
        let item = rx.recv().ok()?;
        taken(&*item);
        Some(item)
    }) {
        let alone = first.alone();
        group.push(first);
        while !alone && group.len() < max_batch {
            match rx.try_recv() {
                Ok(item) if item.alone() => {
                    carried = Some(item);
                    break;
                }
                Ok(item) => {
                    taken(&*item);
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        run_group(conn.conn(), &mut group, counters);
        conn.after_group();
    }
    conn.close();
}

/// Under sustained writes the checkpointer never catches up with the very
/// last frames, so SQLite cannot start the WAL over and it keeps growing.
/// Past [`WAL_SIZE_LIMIT`] the writer itself (between groups, after their
/// callers were answered) finishes the checkpoint and restarts the WAL;
/// the checkpointer has already copied nearly all of it.
fn restart_wal_if_large(conn: &Connection, wal: &Path, limit: u64, busy_timeout: Duration) {
    let large = std::fs::metadata(wal).is_ok_and(|m| m.len() > limit);
    if !large {
        return;
    }
    // RESTART waits for readers on old snapshots through the busy handler;
    // the writer must not stall behind a long read, so it does not wait
    // (and tries again after the next group).
    let timeout = conn.busy_timeout(Duration::ZERO);
    let result = conn.query_row("PRAGMA wal_checkpoint(RESTART)", (), |row| {
        row.get::<_, i64>(0)
    });
    if let Err(e) = timeout.and_then(|()| conn.busy_timeout(busy_timeout)) {
        tracing::error!(error = %e, "cannot reset the writer's busy timeout");
    }
    match result {
        Ok(0) => {}
        // Busy: a reader held an old snapshot; the next group tries again.
        Ok(_) => tracing::debug!("WAL restart postponed: readers busy"),
        Err(e) => tracing::warn!(error = %e, "WAL restart checkpoint failed"),
    }
}

fn run_group(conn: Conn<'_>, group: &mut Vec<Box<dyn WorkItem>>, counters: &Counters) {
    let size = group.len() as u64;
    counters.writes.fetch_add(size, Ordering::Relaxed);
    counters.largest_group.fetch_max(size, Ordering::Relaxed);

    let outcome = (|| -> SqlResult<()> {
        // IMMEDIATE takes the write lock up front, so a lock conflict with
        // another process shows up here (after busy_timeout), not halfway
        // through the group.
        control(
            conn,
            match conn {
                Conn::Lite(_) => "BEGIN IMMEDIATE",
                Conn::Pg(_) => WRITE_LOCK,
            },
        )?;
        if matches!(conn, Conn::Pg(_)) && group.iter().any(|item| item.alone()) {
            control(conn, BULK_PLANS)?;
        }
        let mut succeeded = 0usize;
        let mut broken = None;
        let savepoints = group.len() > 1;
        let tx = Tx {
            conn,
            queued: &counters.queued,
            item_counts: Default::default(),
            group_counts: Default::default(),
            audit_head: Default::default(),
        };
        for item in group.iter_mut() {
            match item.run(&tx, savepoints) {
                Ok(true) => succeeded += 1,
                Ok(false) => {
                    counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = broken {
            rollback(conn);
            return Err(e);
        }
        if succeeded == 0 {
            // Nothing to make durable; skip the fsync.
            rollback(conn);
            return Ok(());
        }
        // The group's counter deltas, one upsert per counter: counting
        // costs a group, not each closure.
        if let Err(e) = crate::stats::flush(conn, &tx.group_counts.borrow()) {
            rollback(conn);
            return Err(e);
        }
        if let Err(e) = tx.audit_head.borrow().flush(conn) {
            rollback(conn);
            return Err(e);
        }
        if let Err(e) = control(conn, "COMMIT") {
            rollback(conn);
            return Err(e);
        }
        counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })();

    let reason = match &outcome {
        Ok(()) => None,
        Err(e) => {
            counters.failed_groups.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, items = size, "storage group transaction failed");
            Some(e.to_string())
        }
    };
    for item in group.drain(..) {
        item.finish(match &reason {
            None => Ok(()),
            Some(r) => Err(r.as_str()),
        });
    }
}

fn rollback(conn: Conn<'_>) {
    let result = match conn {
        Conn::Lite(c) if c.is_autocommit() => Ok(()),
        Conn::Lite(c) => c.execute_batch("ROLLBACK").map_err(SqlError::from),
        Conn::Pg(c) => c.batch("ROLLBACK"),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "rolling back a storage group failed");
    }
}

// ---------------------------------------------------------------------------
// Waiting for a write.

/// Completes the [`PendingWrite`] of [`Database::answer_later`].
pub struct WriteAnswer<T>(oneshot::Sender<Result<T>>);

impl<T> WriteAnswer<T> {
    /// Answers the waiter (who may have stopped waiting: not an error).
    pub fn send(self, result: Result<T>) {
        let _ = self.0.send(result);
    }
}

/// The result of a queued write, to be waited for with [`wait`](Self::wait)
/// or `.await`.
#[must_use = "the write happens anyway, but its result (and any error) is lost unless waited for"]
pub struct PendingWrite<T> {
    state: PendingState<T>,
    writer_id: ThreadId,
}

enum PendingState<T> {
    Queued(oneshot::Receiver<Result<T>>),
    Failed(StorageError),
}

impl<T> PendingWrite<T> {
    /// Blocks the current thread until the write's group is committed (or
    /// has failed). Do not call from async code: use `.await` there.
    ///
    /// Called on the writer thread (from inside a write closure) it returns
    /// [`StorageError::WouldDeadlock`] instead of waiting forever for a
    /// group that cannot start until the current one ends.
    pub fn wait(self) -> Result<T> {
        if std::thread::current().id() == self.writer_id {
            return Err(StorageError::WouldDeadlock);
        }
        match self.state {
            PendingState::Queued(rx) => rx.recv().unwrap_or(Err(StorageError::WriterGone)),
            PendingState::Failed(e) => Err(e),
        }
    }
}

impl<T> IntoFuture for PendingWrite<T> {
    type Output = Result<T>;
    type IntoFuture = WriteFuture<T>;

    fn into_future(self) -> WriteFuture<T> {
        WriteFuture {
            state: match self.state {
                PendingState::Queued(rx) => FutureState::Waiting(rx.into_future()),
                PendingState::Failed(e) => FutureState::Failed(Some(e)),
            },
        }
    }
}

/// Future returned by `PendingWrite::into_future`; resolves when the write's
/// group is committed (or has failed).
pub struct WriteFuture<T> {
    state: FutureState<T>,
}

enum FutureState<T> {
    Waiting(oneshot::AsyncReceiver<Result<T>>),
    Failed(Option<StorageError>),
}

impl<T> Future for WriteFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // Every field is Unpin, so projecting through `get_mut` is fine.
        match &mut self.get_mut().state {
            FutureState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StorageError::WriterGone))),
            FutureState::Failed(e) => {
                Poll::Ready(Err(e.take().unwrap_or(StorageError::WriterGone)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Readers.

/// A pooled read connection, on either backend.
trait ReadConn: Send + Sized {
    fn conn(&self) -> Conn<'_>;
    /// Starts the read transaction that pins one snapshot.
    fn begin(&self) -> SqlResult<()>;
    fn end(&self) -> SqlResult<()>;
    /// Back in the pool after a read that may have failed half-way: never
    /// hand out a connection stuck in an old snapshot (or a dead one).
    fn reset(self, pool: &ReaderPool<Self>) -> Option<Self>;
}

impl ReadConn for Connection {
    fn conn(&self) -> Conn<'_> {
        Conn::Lite(self)
    }

    fn begin(&self) -> SqlResult<()> {
        // A deferred transaction pins one snapshot for all of `f`'s reads.
        Ok(exec_cached(self, "BEGIN")?)
    }

    fn end(&self) -> SqlResult<()> {
        Ok(exec_cached(self, "COMMIT")?)
    }

    fn reset(self, _: &ReaderPool<Self>) -> Option<Self> {
        if !self.is_autocommit() {
            let _ = self.execute_batch("ROLLBACK");
        }
        Some(self)
    }
}

struct PgReader {
    conn: crate::sql::PgConn,
    in_transaction: std::cell::Cell<bool>,
}

impl ReadConn for PgReader {
    fn conn(&self) -> Conn<'_> {
        Conn::Pg(&self.conn)
    }

    fn begin(&self) -> SqlResult<()> {
        self.conn
            .batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        self.in_transaction.set(true);
        Ok(())
    }

    fn end(&self) -> SqlResult<()> {
        self.conn.batch("COMMIT")?;
        self.in_transaction.set(false);
        Ok(())
    }

    fn reset(self, pool: &ReaderPool<Self>) -> Option<Self> {
        if self.conn.is_closed() {
            // The server went away: open a new one now if it is back, else
            // on a later checkout.
            return pool.reopen.as_ref().and_then(|f| f().ok());
        }
        if self.in_transaction.get() && self.conn.batch("ROLLBACK").is_err() {
            return None;
        }
        self.in_transaction.set(false);
        Some(self)
    }
}

type Reopen<C> = Box<dyn Fn() -> SqlResult<C> + Send + Sync>;

struct ReaderPool<C> {
    idle: Mutex<Vec<C>>,
    available: Condvar,
    /// Connections lent out or lost that may be replaced by `reopen`.
    missing: Mutex<usize>,
    reopen: Option<Reopen<C>>,
}

enum Readers {
    Lite(ReaderPool<Connection>),
    Pg(ReaderPool<PgReader>),
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        match self {
            Readers::Lite(p) => p.with(f),
            Readers::Pg(p) => p.with(f),
        }
    }
}

impl ReaderPool<Connection> {
    fn open_lite(path: &Path, opts: &DbOptions) -> Result<Self> {
        let mut idle = Vec::with_capacity(opts.readers.max(1));
        for _ in 0..opts.readers.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(opts.busy_timeout)?;
            stable_plans(&conn)?;
            conn.pragma_update(None, "cache_size", -i64::from(opts.reader_cache_kib))?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            idle.push(conn);
        }
        Ok(ReaderPool {
            idle: Mutex::new(idle),
            available: Condvar::new(),
            missing: Mutex::new(0),
            reopen: None,
        })
    }
}

impl ReaderPool<PgReader> {
    fn open_pg(runtime: &Arc<PgRuntime>, opts: &DbOptions) -> Result<Self> {
        let open = {
            let runtime = Arc::clone(runtime);
            move || {
                Ok(PgReader {
                    conn: runtime.connect()?,
                    in_transaction: std::cell::Cell::new(false),
                })
            }
        };
        let mut idle = Vec::with_capacity(opts.readers.max(1));
        for _ in 0..opts.readers.max(1) {
            idle.push(open()?);
        }
        Ok(ReaderPool {
            idle: Mutex::new(idle),
            available: Condvar::new(),
            missing: Mutex::new(0),
            reopen: Some(Box::new(open)),
        })
    }
}

impl<C: ReadConn> ReaderPool<C> {
    fn with<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let conn = loop {
            if let Some(conn) = self.idle.lock().pop() {
                break conn;
            }
            // A connection lost earlier is replaced by whoever needs one.
            if let Some(reopen) = &self.reopen {
                let mut missing = self.missing.lock();
                if *missing > 0 {
                    *missing -= 1;
                    drop(missing);
                    match reopen() {
                        Ok(conn) => break conn,
                        Err(e) => {
                            *self.missing.lock() += 1;
                            return Err(e.into());
                        }
                    }
                }
            }
            let mut idle = self.idle.lock();
            if idle.is_empty() {
                self.available.wait(&mut idle);
            }
        };
        // The guard returns the connection even if `f` panics.
        let guard = Checkout {
            pool: self,
            conn: Some(conn),
        };
        let Some(conn) = guard.conn.as_ref() else {
            return Err(StorageError::WriterGone);
        };
        conn.begin()?;
        let result = f(&Reader { conn: conn.conn() });
        let end = conn.end();
        let value = result?;
        end?;
        Ok(value)
    }
}

struct Checkout<'p, C: ReadConn> {
    pool: &'p ReaderPool<C>,
    conn: Option<C>,
}

impl<C: ReadConn> Drop for Checkout<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            match conn.reset(self.pool) {
                Some(conn) => self.pool.idle.lock().push(conn),
                None => *self.pool.missing.lock() += 1,
            }
            self.pool.available.notify_one();
        }
    }
}

/// Two handles on one new database, for tests of hosts sharing it: on
/// PostgreSQL (`TEST_DIVOC_POSTGRES`) two hosts on one schema, else two
/// writers on one SQLite file in `dir`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn two_handles_for_tests(dir: &tempfile::TempDir) -> (Database, Database) {
    let open = |url: &Option<String>| match url {
        Some(url) => Database::open_postgres(url, DbOptions::default()).unwrap(),
        None => Database::open(&dir.path().join("two.db"), DbOptions::default()).unwrap(),
    };
    let url = crate::pg::test_database_url();
    (open(&url), open(&url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;

    fn open(dir: &tempfile::TempDir) -> Database {
        Database::open(&dir.path().join("sub/dir/test.db"), DbOptions::default()).unwrap()
    }

    fn insert_meta(key: &str, value: &str) -> impl FnOnce(&Tx<'_>) -> Result<()> + Send + 'static {
        let (k, v) = (key.to_string(), value.to_string());
        move |tx| crate::meta::set(tx, &k, &v)
    }

    fn meta(db: &Database, key: &str) -> Option<String> {
        db.read(|r| crate::meta::get(r, key)).unwrap()
    }

    #[test]
    fn a_large_wal_restarts_without_waiting_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = Database::open(&path, DbOptions::default()).unwrap();
        let wal = dir.path().join("r.db-wal");
        let frames = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", (), |r| r.get(1))
                .unwrap()
        };
        for i in 0..20 {
            db.write(insert_meta(&format!("k{i}"), "v")).wait().unwrap();
        }
        let raw = db.raw_connection_for_tests();
        let before = frames(&raw);
        assert!(before > 20, "{before}");

        // A reader in the middle of a snapshot: the restart gives up at once.
        let reader = db.raw_connection_for_tests();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM meta", (), |r| r.get(0))
            .unwrap();
        db.write(insert_meta("during", "v")).wait().unwrap();
        let started = std::time::Instant::now();
        restart_wal_if_large(&raw, &wal, 0, Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(2));
        reader.execute_batch("COMMIT").unwrap();

        // Without readers the WAL starts over: the next commit is at its
        // beginning.
        restart_wal_if_large(&raw, &wal, 0, Duration::from_secs(5));
        db.write(insert_meta("after", "v")).wait().unwrap();
        assert!(frames(&raw) < before, "{} {before}", frames(&raw));
        assert_eq!(meta(&db, "after").as_deref(), Some("v"));
        assert_eq!(meta(&db, "k0").as_deref(), Some("v"));
    }

    #[test]
    fn the_checkpointer_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = Database::open(&path, DbOptions::default()).unwrap();
        // The schema went into the WAL; the file holds only its header page.
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..20 {
            db.write(insert_meta(&format!("k{i}"), "v")).wait().unwrap();
        }
        // The writer never checkpoints; the checkpointer copies the pages
        // into the file shortly after the commits.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(CHECKPOINT_EVERY / 4);
        }
        let writer_auto: i64 = db
            .write(|tx| {
                Ok(tx
                    .conn()
                    .query_row("PRAGMA wal_autocheckpoint", (), |r| r.get(0))?)
            })
            .wait()
            .unwrap();
        assert_eq!(writer_auto, 0);
        assert_eq!(meta(&db, "k19").as_deref(), Some("v"));
    }

    /// Occupies the writer inside a group until the returned sender fires,
    /// so that writes submitted meanwhile pile up in the queue.
    fn block_writer(db: &Database) -> (std_mpsc::Sender<()>, PendingWrite<()>) {
        let (release, wait) = std_mpsc::channel::<()>();
        let (started_tx, started) = std_mpsc::channel::<()>();
        let pending = db.write(move |_tx| {
            started_tx.send(()).unwrap();
            wait.recv().unwrap();
            Ok(())
        });
        started.recv().unwrap();
        (release, pending)
    }

    #[test]
    fn open_applies_settings_and_creates_parent_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        assert!(db.path().exists());
        let conn = db.raw_connection_for_tests();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // synchronous and foreign_keys are per-connection: check the
        // writer's by asking it.
        let (sync, fk) = db
            .write(|tx| {
                let sync: i64 = tx
                    .conn()
                    .lite()
                    .pragma_query_value(None, "synchronous", |r| r.get(0))?;
                let fk: i64 = tx
                    .conn()
                    .lite()
                    .pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
                Ok((sync, fk))
            })
            .wait()
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        assert_eq!(fk, 1);
    }

    #[test]
    fn reopen_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(&dir);
            db.write(insert_meta("k", "v")).wait().unwrap();
        }
        let db = open(&dir);
        assert_eq!(meta(&db, "k").as_deref(), Some("v"));
    }

    #[test]
    fn concurrent_writers_are_grouped() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (release, first) = block_writer(&db);
        const N: usize = 64;
        // Submit from many threads while the writer is busy, so all of them
        // are queued when it next looks.
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let db = db.clone();
                std::thread::spawn(move || db.write(insert_meta(&format!("k{i}"), "v")))
            })
            .collect();
        let pending: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        release.send(()).unwrap();
        first.wait().unwrap();
        for p in pending {
            p.wait().unwrap();
        }
        let stats = db.stats();
        assert_eq!(stats.writes, N as u64 + 1);
        // One commit for the blocking item's group, one for the rest.
        assert_eq!(stats.commits, 2, "{stats:?}");
        assert_eq!(stats.largest_group, N as u64);
        for i in 0..N {
            assert!(meta(&db, &format!("k{i}")).is_some());
        }
    }

    #[test]
    fn failing_item_does_not_fail_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (release, first) = block_writer(&db);
        let good1 = db.write(insert_meta("good1", "v"));
        let bad = db.write(|tx| {
            // Writes something, then fails: the write must be undone.
            crate::meta::set(tx, "bad", "v")?;
            Err::<(), _>(StorageError::Rejected("no".into()))
        });
        let panicky = db.write(|tx| -> Result<()> {
            crate::meta::set(tx, "panicky", "v")?;
            panic!("boom");
        });
        let good2 = db.write(insert_meta("good2", "v"));
        release.send(()).unwrap();
        first.wait().unwrap();
        good1.wait().unwrap();
        assert!(matches!(bad.wait(), Err(StorageError::Rejected(_))));
        match panicky.wait() {
            Err(StorageError::Panicked(msg)) => assert_eq!(msg, "boom"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        good2.wait().unwrap();
        assert!(meta(&db, "good1").is_some());
        assert!(meta(&db, "good2").is_some());
        assert!(meta(&db, "bad").is_none());
        assert!(meta(&db, "panicky").is_none());
        let stats = db.stats();
        assert_eq!(stats.failed_writes, 2);
        assert_eq!(stats.commits, 2);
    }

    /// One write answers several waiters, after its group committed: what
    /// they are told is on disk is there when they are told.
    #[test]
    fn a_write_answers_other_waiters_after_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (a, a_waits) = db.answer_later::<String>();
        let (b, b_waits) = db.answer_later::<String>();
        let reader = db.clone();
        db.write_then(
            |tx| {
                crate::meta::set(tx, "merged", "yes")?;
                Ok(["a".to_owned(), "b".to_owned()])
            },
            move |result| {
                // Called after the commit: a fresh read sees the row.
                let seen = reader.read(|r| crate::meta::get(r, "merged")).unwrap();
                assert_eq!(seen.as_deref(), Some("yes"));
                let [x, y] = result.unwrap();
                a.send(Ok(x));
                b.send(Ok(y));
            },
        );
        assert_eq!(b_waits.wait().unwrap(), "b");
        assert_eq!(a_waits.wait().unwrap(), "a");

        // A failed write's error reaches `then`, and nothing is stored.
        let (c, c_waits) = db.answer_later::<()>();
        db.write_then(
            |tx| -> Result<()> {
                crate::meta::set(tx, "failed", "no")?;
                Err(StorageError::Rejected("refused".into()))
            },
            move |result| c.send(result),
        );
        assert!(matches!(c_waits.wait(), Err(StorageError::Rejected(_))));
        assert_eq!(db.read(|r| crate::meta::get(r, "failed")).unwrap(), None);
        // An answer dropped unsent is an error for its waiter, not a hang.
        let (d, d_waits) = db.answer_later::<()>();
        drop(d);
        assert!(d_waits.wait().is_err());
    }

    #[test]
    fn bulk_work_runs_in_a_transaction_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (release, first) = block_writer(&db);
        let a = db.write(insert_meta("a", "v"));
        let bulk = db.write_alone(|tx| {
            for i in 0..2000 {
                crate::meta::set(tx, &format!("bulk{i}"), "v")?;
            }
            Ok(())
        });
        let b = db.write(insert_meta("b", "v"));
        let failing = db.write_alone(|tx| {
            crate::meta::set(tx, "half", "v")?;
            Err::<(), _>(StorageError::Rejected("no".into()))
        });
        let panicky = db.write_alone(|tx| -> Result<()> {
            crate::meta::set(tx, "panicky", "v")?;
            panic!("boom");
        });
        let c = db.write(insert_meta("c", "v"));
        release.send(()).unwrap();
        first.wait().unwrap();
        a.wait().unwrap();
        bulk.wait().unwrap();
        b.wait().unwrap();
        assert!(matches!(failing.wait(), Err(StorageError::Rejected(_))));
        assert!(matches!(panicky.wait(), Err(StorageError::Panicked(_))));
        c.wait().unwrap();
        for key in ["a", "b", "c", "bulk0", "bulk1999"] {
            assert!(meta(&db, key).is_some(), "{key}");
        }
        assert!(meta(&db, "half").is_none());
        assert!(meta(&db, "panicky").is_none());
        // The blocker, then `a`, the bulk alone, `b`, the two failures
        // alone (nothing to commit) and `c`.
        let stats = db.stats();
        assert_eq!((stats.commits, stats.largest_group), (5, 1), "{stats:?}");
        assert_eq!(stats.failed_writes, 2);
    }

    /// On PostgreSQL, bulk work on one host sees another host's write
    /// waiting for the write lock, commits, and lets it through.
    #[test]
    fn bulk_work_sees_another_hosts_write_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_handles_for_tests(&dir);
        if a.dialect() != crate::sql::Dialect::Postgres {
            return;
        }
        let (started_tx, started) = std_mpsc::channel::<()>();
        let bulk = a.write_alone(move |tx| {
            crate::meta::set(tx, "bulk", "v")?;
            started_tx.send(()).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if tx.others_waiting() {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(false)
        });
        started.recv().unwrap();
        // Host b's write waits for host a's transaction, which it sees.
        b.write(insert_meta("other", "v")).wait().unwrap();
        assert!(
            bulk.wait().unwrap(),
            "the bulk work never saw host b waiting"
        );
        assert!(meta(&b, "bulk").is_some());
        // Nobody waits now.
        assert!(!a.write_alone(|tx| Ok(tx.others_waiting())).wait().unwrap());
    }

    #[test]
    fn bulk_work_sees_the_small_writes_queued_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (started_tx, started) = std_mpsc::channel::<()>();
        let (queued_tx, queued) = std_mpsc::channel::<()>();
        let (looked_tx, looked) = std_mpsc::channel::<(bool, bool)>();
        let bulk = db.write_alone(move |tx| {
            let at_first = tx.others_waiting();
            started_tx.send(()).unwrap();
            // Another bulk write is queued now: not a reason to yield.
            queued.recv().unwrap();
            looked_tx.send((at_first, tx.others_waiting())).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !tx.others_waiting() {
                if std::time::Instant::now() > deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(true)
        });
        started.recv().unwrap();
        let bulk2 = db.write_alone(|tx| Ok(tx.others_waiting()));
        queued_tx.send(()).unwrap();
        assert_eq!(looked.recv().unwrap(), (false, false));
        let behind = db.write(insert_meta("behind", "v"));
        assert!(
            bulk.wait().unwrap(),
            "the bulk write saw the small one behind it"
        );
        behind.wait().unwrap();
        // `behind` was queued after bulk2 and was still waiting when bulk2
        // ran; once taken, a write no longer counts.
        assert!(bulk2.wait().unwrap());
        assert!(!db.write_alone(|tx| Ok(tx.others_waiting())).wait().unwrap());
    }

    #[test]
    fn readers_run_beside_an_open_write_and_see_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        db.write(insert_meta("k", "old")).wait().unwrap();
        let (release, wait) = std_mpsc::channel::<()>();
        let (written_tx, written) = std_mpsc::channel::<()>();
        let pending = db.write(move |tx| {
            crate::meta::set(tx, "k", "new")?;
            written_tx.send(()).unwrap();
            wait.recv().unwrap();
            Ok(())
        });
        written.recv().unwrap();
        // The write transaction is open and holds the write lock; a reader
        // must neither block nor see the uncommitted value.
        assert_eq!(meta(&db, "k").as_deref(), Some("old"));
        release.send(()).unwrap();
        pending.wait().unwrap();
        assert_eq!(meta(&db, "k").as_deref(), Some("new"));
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let err = db
            .read(|r| {
                r.conn()
                    .execute("INSERT INTO meta(key, value) VALUES ('x', 'y')", ())?;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, StorageError::Sql(_)), "{err:?}");
    }

    #[test]
    fn drop_drains_queued_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let (release, first) = block_writer(&db);
        let pending: Vec<_> = (0..100)
            .map(|i| db.write(insert_meta(&format!("k{i}"), "v")))
            .collect();
        // Release the writer from another thread only after the handle is
        // gone, so the drop really has queued work to drain.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            release.send(()).unwrap();
        });
        drop(db);
        releaser.join().unwrap();
        first.wait().unwrap();
        for p in pending {
            p.wait().unwrap();
        }
        let db = open(&dir);
        for i in 0..100 {
            assert!(meta(&db, &format!("k{i}")).is_some());
        }
    }

    #[test]
    fn waiting_inside_a_write_closure_fails_instead_of_deadlocking() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let inner_db = db.clone();
        let (inner_tx, inner_rx) = std_mpsc::channel();
        let outer = db
            .write(move |_tx| {
                // Queuing from inside is fine (it runs in a later group);
                // waiting for it here is not.
                let pending = inner_db.write(insert_meta("inner", "v"));
                let waited = pending.wait();
                inner_tx
                    .send(inner_db.write(insert_meta("later", "v")))
                    .unwrap();
                match waited {
                    Err(StorageError::WouldDeadlock) => Ok(()),
                    other => Err(StorageError::Rejected(format!("{other:?}"))),
                }
            })
            .wait();
        outer.unwrap();
        inner_rx.recv().unwrap().wait().unwrap();
        assert!(meta(&db, "inner").is_some());
        assert!(meta(&db, "later").is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_can_be_awaited() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.write(insert_meta(&format!("k{i}"), "v")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let err = db
            .write(|_tx| Err::<(), _>(StorageError::Rejected("nope".into())))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Rejected(_)));
        assert_eq!(db.stats().writes, 17);
    }

    #[test]
    fn last_handle_dropped_on_writer_thread_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let clone = db.clone();
        let (release, first) = block_writer(&db);
        // This closure owns a handle; once `db` is dropped below, the
        // closure's handle is the last one and is dropped on the writer.
        let pending = db.write(move |_tx| {
            drop(clone);
            Ok(())
        });
        drop(db);
        release.send(()).unwrap();
        first.wait().unwrap();
        pending.wait().unwrap();
    }
}
