//! Group commit: writes queued at the same moment share one transaction, so one fsync makes
//! them all durable (DESIGN §4). A write that fails is rolled back alone and its caller gets
//! its error; the others commit (see [`Groups::commit`]). A caller hears back only
//! once the shared commit is on disk, so a success answer still means the data survives a
//! power cut.
//!
//! The groups run on a thread of their own with a connection of their own (rusqlite). Going
//! through sqlx would cost a hand-off to its worker thread per statement, which profiles showed
//! to be half of Pigeon's time under load; here a whole group costs one. There is still one
//! writer at a time: the groups hold sqlx's single writer connection while they follow one
//! another (up to 32 of them or 10 ms), then the writes outside the groups get their turn.
//!
//! The fsync is pipelined, as a database server flushes its log: the group connection commits
//! without syncing (`synchronous=NORMAL`: the WAL is written, not flushed) and goes on with
//! the next group while a second thread fsyncs the WAL file; the callers of every group
//! committed before that fsync began hear back when it ends. While a flush runs, the next
//! group stays open and takes in the writes that arrive, and commits when the flush ends:
//! its callers could not hear back sooner anyway, and one commit writes each page it touched
//! to the WAL once, where several small ones would write the same hot pages again and again.
//! Other connections may read a group before it is flushed, but every write that acts on it
//! (a claim before a send, say) is answered only after a later flush, which covers it too. A
//! group that changed nothing (a sweep that found nothing due) is answered in its turn without
//! a flush of its own.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, Row};
use sqlx::sqlite::SqlitePool;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::checkpoint::Checkpointer;
use crate::{Result, StoreError};

/// Writes in one group at most: enough to amortise an fsync, few enough to keep latency low.
const MAX_GROUP: usize = 512;

type Output = Result<Box<dyn Any + Send>>;
/// A write, which may run twice: see [`Groups::commit`].
type Work = Box<dyn FnMut(&Connection) -> Output + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Output>,
}

/// What the group thread hears: a write, the end of a flush (how many committed groups it
/// covered), or that the store is gone.
enum Event {
    Job(Job),
    Flushed(usize),
    Stop,
}

#[derive(Debug, Clone)]
pub(crate) struct Committer(std::sync::Arc<Events>);

/// The group thread's inbox; dropped with the last handle on the store, which stops the thread
/// (the flush thread holds a sender too, so the channel alone would never close).
#[derive(Debug)]
struct Events(mpsc::Sender<Event>);

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.0.send(Event::Stop);
    }
}

impl Committer {
    /// Starts the thread that runs the groups on the writer connection; it ends when the last
    /// handle on the store is dropped. With `wal`, the committed groups are answered once that
    /// file is flushed (see above); without, at once (durability `normal`).
    pub(crate) fn start(
        writer: SqlitePool,
        conn: Connection,
        checkpointer: Checkpointer,
        wal: Option<PathBuf>,
    ) -> Committer {
        let (tx, rx) = mpsc::channel();
        let runtime = Handle::current();
        let answer = match wal {
            Some(wal) => {
                let (flush, flushes) = mpsc::channel();
                let flushed = tx.clone();
                std::thread::Builder::new()
                    .name("pigeon-wal-flush".into())
                    .spawn(move || flush_and_answer(&wal, &flushes, &flushed))
                    .expect("the WAL flush thread starts");
                Answer::AfterFlush(flush)
            }
            None => Answer::AtOnce,
        };
        std::thread::Builder::new()
            .name("pigeon-group-commit".into())
            .spawn(move || Groups::new(&rx, &answer, &checkpointer).run(&runtime, &writer, &conn))
            .expect("the group commit thread starts");
        Committer(std::sync::Arc::new(Events(tx)))
    }

    /// Runs `work` in the next group; its result once the group is committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let mut work = work;
        let work: Work =
            Box::new(move |conn| work(conn).map(|t| Box::new(t) as Box<dyn Any + Send>));
        (self.0)
            .0
            .send(Event::Job(Job { work, done }))
            .map_err(|_| StoreError::Closed)?;
        let value = answer.await.map_err(|_| StoreError::Closed)??;
        value
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StoreError::Closed)
    }
}

type Outcomes = Vec<(oneshot::Sender<Output>, Output)>;

/// A committed group's outcomes, and whether it changed anything (a group that only read, or
/// found nothing to change, needs no flush of its own).
struct Committed {
    outcomes: Outcomes,
    changed: bool,
}

/// When the callers of a committed group hear back.
enum Answer {
    AtOnce,
    /// Once the WAL file is flushed, by the thread at the other end.
    AfterFlush(mpsc::Sender<Committed>),
}

impl Answer {
    /// Answers the group's callers, or hands it to the flush thread: whether it did that.
    fn give(&self, committed: Committed) -> bool {
        let outcomes = match self {
            Answer::AtOnce => committed.outcomes,
            Answer::AfterFlush(flush) => match flush.send(committed) {
                Ok(()) => return true,
                Err(mpsc::SendError(committed)) => {
                    fail_outcomes(committed.outcomes, "the WAL flush stopped")
                }
            },
        };
        for (done, result) in outcomes {
            let _ = done.send(result);
        }
        false
    }
}

/// Flushes the WAL once for all the groups committed meanwhile, then answers their callers. A
/// failed flush fails them all (their data may or may not survive a power cut). Groups that
/// changed nothing are answered without a flush, in order, once everything before them was
/// flushed: until a flush succeeds again after one failed, they wait for it too.
fn flush_and_answer(
    wal: &Path,
    committed: &mpsc::Receiver<Committed>,
    flushed_groups: &mpsc::Sender<Event>,
) {
    let mut unflushed = false;
    while let Ok(first) = committed.recv() {
        let mut batch = vec![first];
        batch.extend(committed.try_iter());
        let groups = batch.len();
        // Opened each time: the flush must reach the file SQLite writes now.
        let flushed = if unflushed || batch.iter().any(|c| c.changed) {
            std::fs::File::open(wal).and_then(|f| f.sync_data())
        } else {
            Ok(())
        };
        unflushed = flushed.is_err();
        for Committed { outcomes, .. } in batch {
            let outcomes = match &flushed {
                Ok(()) => outcomes,
                Err(e) => {
                    tracing::error!(error = %e, "the WAL could not be flushed");
                    fail_outcomes(outcomes, &format!("the WAL could not be flushed: {e}"))
                }
            };
            for (done, result) in outcomes {
                let _ = done.send(result);
            }
        }
        let _ = flushed_groups.send(Event::Flushed(groups));
    }
}

fn fail_outcomes(outcomes: Outcomes, message: &str) -> Outcomes {
    outcomes
        .into_iter()
        .map(|(done, _)| (done, Err(StoreError::Group(message.to_string()))))
        .collect()
}

/// The group thread's state.
struct Groups<'a> {
    events: &'a mpsc::Receiver<Event>,
    answer: &'a Answer,
    checkpointer: &'a Checkpointer,
    /// Groups handed to the flush thread and not flushed yet.
    flushing: usize,
    stopped: bool,
}

impl<'a> Groups<'a> {
    fn new(
        events: &'a mpsc::Receiver<Event>,
        answer: &'a Answer,
        checkpointer: &'a Checkpointer,
    ) -> Self {
        Groups {
            events,
            answer,
            checkpointer,
            flushing: 0,
            stopped: false,
        }
    }

    fn run(mut self, runtime: &Handle, writer: &SqlitePool, conn: &Connection) {
        // Dropping a pooled connection may spawn a task.
        let _context = runtime.enter();
        while let Some(first) = self.next_job(Wait::Yes) {
            // Held while groups follow one another (up to a bound, so that the other writes
            // get their turn): no other write runs meanwhile. Taking it costs a round trip
            // through the runtime (giving it back spawns a task there), so it is not given
            // back between groups that follow closely.
            let turn = Instant::now();
            let writer = runtime.block_on(writer.acquire());
            let mut next = Some(first);
            let mut groups = 0;
            while let Some(first) = next.take() {
                let committed = match &writer {
                    Ok(_) => self.commit(conn, first),
                    Err(e) => Committed {
                        outcomes: fail_all(vec![first], &e.to_string()),
                        changed: false,
                    },
                };
                // A flush thread gone would never report: nothing to wait for then.
                if self.answer.give(committed) {
                    self.flushing += 1;
                } else {
                    self.flushing = 0;
                }
                groups += 1;
                if groups < GROUPS_PER_TURN && turn.elapsed() < TURN {
                    next = self.next_job(Wait::Briefly);
                }
            }
        }
    }

    /// The next write, waiting for one as `wait` says; counts the flushes heard of meanwhile.
    /// None once the store is gone.
    fn next_job(&mut self, wait: Wait) -> Option<Job> {
        while !self.stopped {
            let event = match wait {
                Wait::Yes => self.events.recv().ok()?,
                Wait::WhileFlushing if self.flushing > 0 => self.events.recv().ok()?,
                Wait::WhileFlushing => self.events.try_recv().ok()?,
                Wait::Briefly => self.events.recv_timeout(LINGER).ok()?,
            };
            match event {
                Event::Job(job) => return Some(job),
                Event::Flushed(groups) => self.flushing = self.flushing.saturating_sub(groups),
                Event::Stop => self.stopped = true,
            }
        }
        None
    }

    /// One transaction for `first` and the writes that follow it: those already queued, and
    /// while a flush runs, those that arrive before it ends (up to [`MAX_GROUP`]); every
    /// write's outcome. The writes run bare, as nearly all succeed: a savepoint per write
    /// would copy every page it touches to the statement journal. Once one fails, the
    /// transaction is rolled back and the group runs again from its start, each write in a
    /// savepoint of its own, so that the failed one is undone alone.
    fn commit(&mut self, conn: &Connection, first: Job) -> Committed {
        let changes_before = conn.total_changes();
        let mut jobs: Vec<Job> = Vec::new();
        let mut outputs: Vec<Output> = Vec::new();
        let mut careful = false;
        let mut next = Some(first);
        let mut begun = conn.execute_batch("BEGIN IMMEDIATE");
        // A write is taken only while the transaction is good: one that could not run is
        // failed with the rest below, never dropped.
        while begun.is_ok() {
            let Some(mut job) = next.take() else {
                break;
            };
            let output = if careful {
                savepoint(conn, &mut job.work)
            } else {
                guarded(conn, &mut job.work)
            };
            jobs.push(job);
            outputs.push(output);
            if !careful && outputs.last().is_some_and(Result::is_err) {
                careful = true;
                let _ = conn.execute_batch("ROLLBACK");
                begun = conn.execute_batch("BEGIN IMMEDIATE");
                if begun.is_ok() {
                    outputs = jobs
                        .iter_mut()
                        .map(|j| savepoint(conn, &mut j.work))
                        .collect();
                }
            }
            if begun.is_ok() && jobs.len() < MAX_GROUP {
                next = self.next_job(Wait::WhileFlushing);
            }
        }
        let ended = begun.and_then(|()| conn.execute_batch("COMMIT"));
        if ended.is_ok() {
            self.checkpointer.committed(conn);
        }
        if let Err(e) = ended {
            let _ = conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            // The writes not run yet (the transaction could not begin) fail with the rest.
            jobs.extend(next);
            outputs = jobs
                .iter()
                .map(|_| Err(StoreError::Group(message.clone())))
                .collect();
        }
        Committed {
            outcomes: jobs.into_iter().map(|j| j.done).zip(outputs).collect(),
            changed: conn.total_changes() != changes_before,
        }
    }
}

/// Whether [`Groups::next_job`] waits for a write when none is queued.
#[derive(Clone, Copy)]
enum Wait {
    Yes,
    /// While a flush runs: the open group may as well take in what arrives until it ends.
    WhileFlushing,
    /// Up to [`LINGER`]: the writer connection is kept that long for a write to come.
    Briefly,
}

/// Groups committed in a row before the writer connection is given back, at most...
const GROUPS_PER_TURN: usize = 32;
/// ...and for how long at most, so that the writes outside the groups wait little.
const TURN: Duration = Duration::from_millis(10);
/// How long the writer connection is kept, once a group is committed, for the next write.
const LINGER: Duration = Duration::from_millis(1);

/// Runs a write in a savepoint of its own, rolled back if it fails.
fn savepoint(conn: &Connection, work: &mut Work) -> Output {
    // Prepared once: a statement parsed per job would cost as much as a small write.
    conn.prepare_cached("SAVEPOINT job")?.raw_execute()?;
    let result = guarded(conn, work);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO job")?.raw_execute()?;
    }
    conn.prepare_cached("RELEASE job")?.raw_execute()?;
    result
}

/// Runs a write; one that panics fails alone instead of taking the committer down.
fn guarded(conn: &Connection, work: &mut Work) -> Output {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(StoreError::Group("the write panicked".into())))
}

fn fail_all(group: Vec<Job>, message: &str) -> Outcomes {
    group
        .into_iter()
        .map(|job| (job.done, Err(StoreError::Group(message.to_string()))))
        .collect()
}

/// `sql` prepared (once per group) with `$n` bound to `params[n - 1]`, the placeholders the
/// rest of the store writes.
fn bound<'c>(
    conn: &'c Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<CachedStatement<'c>> {
    let mut statement = conn.prepare_cached(sql)?;
    for (i, param) in params.iter().enumerate() {
        match PLACEHOLDERS.get(i) {
            Some(name) => statement.raw_bind_parameter(*name, param)?,
            None => statement.raw_bind_parameter(format!("${}", i + 1).as_str(), param)?,
        }
    }
    Ok(statement)
}

/// The names of the first placeholders, so that binding them allocates nothing.
const PLACEHOLDERS: [&str; 24] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16", "$17", "$18", "$19", "$20", "$21", "$22", "$23", "$24",
];

/// Runs a statement; how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
    Ok(bound(conn, sql, params)?.raw_execute()?)
}

/// The rows a statement returns, each read by `read`.
pub(crate) fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = bound(conn, sql, params)?;
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// The first row a statement returns, if any.
pub(crate) fn row<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut statement = bound(conn, sql, params)?;
    let mut rows = statement.raw_query();
    Ok(match rows.next()? {
        Some(row) => Some(read(row)?),
        None => None,
    })
}

/// Runs an `INSERT` of one row and gives the row's id. Not `RETURNING id`: SQLite runs a
/// `RETURNING` clause as a trigger, and a statement with a trigger inside a transaction copies
/// every page it touches to the statement journal first (an insert of a message took 1.8×
/// as long).
pub(crate) fn insert_id(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<i64> {
    execute(conn, sql, params)?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::connect(&url).await.expect("connect");
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(store.w())
            .await
            .expect("table");
        (dir, store)
    }

    async fn insert(store: Store, n: i64) -> Result<i64> {
        store
            .grouped(move |conn| {
                execute(conn, "INSERT INTO t (n) VALUES ($1)", &[&n])?;
                Ok(n)
            })
            .await
    }

    #[tokio::test]
    async fn concurrent_writes_commit_and_a_failing_one_fails_alone() {
        let (_dir, store) = store().await;
        // 200 writes at once, one of them a duplicate of another.
        let mut tasks = tokio::task::JoinSet::new();
        for n in (0..200).chain([7]) {
            tasks.spawn(insert(store.clone(), n));
        }
        let (mut ok, mut failed) = (0, 0);
        while let Some(result) = tasks.join_next().await {
            match result.expect("task") {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict) => failed += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, failed), (200, 1));
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(store.r())
            .await
            .expect("count");
        assert_eq!(stored, 200);
        // Writes outside the groups still go through the same writer.
        sqlx::query("INSERT INTO t (n) VALUES (1000)")
            .execute(store.w())
            .await
            .expect("direct write");
        assert_eq!(insert(store.clone(), 1001).await.expect("grouped"), 1001);
    }

    #[tokio::test]
    async fn writes_outside_the_groups_get_their_turn_under_a_stream_of_grouped_writes() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let (_dir, store) = store().await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut streams = tokio::task::JoinSet::new();
        for first in 0..16_i64 {
            let (store, stop) = (store.clone(), stop.clone());
            streams.spawn(async move {
                let mut n = 1_000_000 + first;
                while !stop.load(Ordering::Relaxed) {
                    insert(store.clone(), n).await.expect("grouped");
                    n += 16;
                }
            });
        }
        for n in 0..20_i64 {
            let started = Instant::now();
            sqlx::query("INSERT INTO t (n) VALUES ($1)")
                .bind(n)
                .execute(store.w())
                .await
                .expect("direct write");
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "a direct write waited {:?}",
                started.elapsed()
            );
        }
        stop.store(true, Ordering::Relaxed);
        while let Some(stream) = streams.join_next().await {
            stream.expect("stream");
        }
    }

    #[tokio::test]
    async fn writes_that_fail_after_writing_are_undone_alone_and_the_others_stored_once() {
        let (_dir, store) = store().await;
        // Writes at once, so that groups mix them: every tenth inserts, then fails.
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..300_i64 {
            let store = store.clone();
            tasks.spawn(async move {
                store
                    .grouped(move |conn| {
                        execute(conn, "INSERT INTO t (n) VALUES ($1)", &[&n])?;
                        if n % 10 == 0 {
                            return Err(StoreError::NotFound);
                        }
                        Ok(n)
                    })
                    .await
            });
        }
        let mut failed = 0;
        while let Some(result) = tasks.join_next().await {
            match result.expect("task") {
                Ok(_) => {}
                Err(StoreError::NotFound) => failed += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(failed, 30);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(store.r())
            .await
            .expect("rows");
        let expected: Vec<i64> = (0..300).filter(|n| n % 10 != 0).collect();
        assert_eq!(stored, expected);
    }

    #[tokio::test]
    async fn a_write_is_answered_with_success_only_once_the_wal_is_flushed_and_a_read_without_a_flush()
     {
        let (dir, store) = store().await;
        let conn = Connection::open(dir.path().join("g.db")).expect("open");
        // A WAL that cannot be flushed: the write is committed, but not acknowledged.
        let checkpointer = Checkpointer::start(&conn, &dir.path().join("g.db")).expect("start");
        let committer = Committer::start(
            store.w().clone(),
            conn,
            checkpointer,
            Some(dir.path().join("no-such-wal")),
        );
        let answer = committer
            .write(|conn| execute(conn, "INSERT INTO t (n) VALUES (1)", &[]))
            .await;
        assert!(
            matches!(&answer, Err(StoreError::Group(m)) if m.contains("could not be flushed")),
            "{answer:?}"
        );
        // Nor is a group that changed nothing, as what it read was not flushed.
        let read = || {
            committer.write(|conn| {
                execute(conn, "UPDATE t SET n = n WHERE n < 0", &[])?;
                row(conn, "SELECT COUNT(*) FROM t", &[], |r| r.get::<_, i64>(0))
            })
        };
        assert!(matches!(read().await, Err(StoreError::Group(_))));
        // Once a flush succeeds (the WAL exists), such a group needs no flush of its own.
        std::fs::write(dir.path().join("no-such-wal"), b"").expect("wal");
        assert_eq!(read().await.expect("flushed"), Some(1));
        std::fs::remove_file(dir.path().join("no-such-wal")).expect("wal gone");
        assert_eq!(read().await.expect("answered without a flush"), Some(1));
        // The store's own committer flushes the real WAL.
        assert_eq!(insert(store.clone(), 2).await.expect("flushed"), 2);
    }

    #[tokio::test]
    async fn a_group_that_cannot_begin_fails_its_writes_with_the_reason_and_the_next_commits() {
        let (dir, store) = store().await;
        let conn = Connection::open(dir.path().join("g.db")).expect("open");
        conn.busy_timeout(std::time::Duration::from_millis(50))
            .expect("timeout");
        let checkpointer = Checkpointer::start(&conn, &dir.path().join("g.db")).expect("start");
        let committer = Committer::start(store.w().clone(), conn, checkpointer, None);
        // Another process holds the write lock past the committer's patience.
        let holder = Connection::open(dir.path().join("g.db")).expect("open");
        holder.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let answer = committer
            .write(|conn| execute(conn, "INSERT INTO t (n) VALUES (1)", &[]))
            .await;
        assert!(
            matches!(&answer, Err(StoreError::Group(m)) if m.contains("locked")),
            "{answer:?}"
        );
        holder.execute_batch("ROLLBACK").expect("unlock");
        let after = committer
            .write(|conn| execute(conn, "INSERT INTO t (n) VALUES (2)", &[]))
            .await;
        assert_eq!(after.expect("committed"), 1);
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_and_a_panicking_write_fails_alone() {
        let (_dir, store) = store().await;
        let n = store
            .grouped(|conn| {
                execute(
                    conn,
                    "INSERT INTO t (n) VALUES ($2 * 10 + $1)",
                    &[&1_i64, &4_i64],
                )?;
                row(conn, "SELECT n FROM t WHERE n > $1", &[&0_i64], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .await
            .expect("write");
        assert_eq!(n, Some(41));
        let panicked = store
            .grouped(|conn| -> Result<()> {
                execute(conn, "INSERT INTO t (n) VALUES (99)", &[])?;
                panic!("a bug in a write")
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Group(_))),
            "{panicked:?}"
        );
        // Its insert was rolled back and the committer still runs.
        assert_eq!(insert(store.clone(), 5).await.expect("after"), 5);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(store.r())
            .await
            .expect("rows");
        assert_eq!(stored, [5, 41]);
    }
}
