//! WAL checkpoints off the commit thread. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, so every group behind that commit waited while tens of megabytes
//! were copied into the database and synced. Here the group connection only notes the WAL's
//! size as it commits (a WAL hook replaces its automatic checkpoint) and, past
//! [`WAL_CHECKPOINT_PAGES`], wakes a thread of its own that checkpoints on another connection
//! (`PASSIVE`: it copies what no reader still needs and never blocks the writer). SQLite starts
//! the WAL over at the first write after a checkpoint that left nothing behind, which groups
//! committing while the thread copies (and readers still on older frames) can prevent for as
//! long as the load lasts: past a bound (about 1 GB) the committing thread copies what the thread
//! left after each of its checkpoints, as SQLite would have, and the WAL starts over. The sqlx
//! connections keep SQLite's automatic checkpoint at the same threshold, for their own rare
//! writes.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::Result;

/// WAL pages after which the WAL is copied into the database (SQLite's default is 1,000): the
/// hot pages (the queue's indexes) are rewritten by every group, so checkpointing less often
/// copies each of them once for many groups (7 % less CPU per message end to end, measured).
pub(crate) const WAL_CHECKPOINT_PAGES: i32 = 8_000;
/// WAL pages past which the committing thread takes part (about 1 GB): a bound only, which a
/// WAL that starts over now and then never reaches.
const WAL_LIMIT_PAGES: c_int = 32 * WAL_CHECKPOINT_PAGES;

thread_local! {
    /// The WAL's size in pages after the last commit on this thread's connection.
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

fn note_wal_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// Checkpoints for the connection that commits (see the module's comment).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    /// A checkpoint was asked for and has not ended yet.
    running: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// WAL pages past which the committing thread takes turns with the thread.
    limit: c_int,
    /// The thread copied since the committing thread last did.
    copied: Cell<bool>,
}

impl Checkpointer {
    /// Takes over the checkpoints of `committing` (whose commits must then run on one thread,
    /// the one that calls [`Checkpointer::committed`]), with a connection of its own to the
    /// database at `path`. The thread ends, once a checkpoint under way is done, when the
    /// checkpointer is dropped.
    pub(crate) fn start(committing: &Connection, path: &Path) -> Result<Checkpointer> {
        Checkpointer::with_limit(committing, path, WAL_LIMIT_PAGES)
    }

    fn with_limit(committing: &Connection, path: &Path, limit: c_int) -> Result<Checkpointer> {
        let own = Connection::open(path)?;
        committing.wal_hook(Some(note_wal_pages));
        let (wake, woken) = mpsc::sync_channel(1);
        let running = Arc::new(AtomicBool::new(false));
        let done = running.clone();
        let thread = std::thread::Builder::new()
            .name("pigeon-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    checkpoint(&own);
                    done.store(false, Ordering::Release);
                }
            })
            .map_err(|e| crate::StoreError::Group(format!("the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            wake,
            running,
            thread,
            limit,
            copied: Cell::new(false),
        })
    }

    /// After a commit on `committing`, with the WAL past the threshold: the thread is woken
    /// unless it is copying already. Past the limit (the WAL could not start over for long:
    /// groups committed while the thread copied, or readers held frames back), the committing
    /// thread copies what the thread left, once after each time the thread did, so that the
    /// WAL stays bounded; and every time if the thread is gone.
    pub(crate) fn committed(&self, committing: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages < WAL_CHECKPOINT_PAGES {
            return;
        }
        if self.thread.is_finished() {
            checkpoint(committing);
            return;
        }
        if self.running.load(Ordering::Acquire) {
            return;
        }
        if pages >= self.limit && self.copied.get() {
            checkpoint(committing);
            self.copied.set(false);
            return;
        }
        self.running.store(true, Ordering::Release);
        if self.wake.try_send(()).is_ok() {
            self.copied.set(true);
        } else {
            self.running.store(false, Ordering::Release);
        }
    }
}

/// A `PASSIVE` checkpoint; one that fails or leaves frames behind (a reader still needs
/// them) is tried again after a later commit.
fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((wal, copied)) if copied < wal => {
            tracing::debug!(wal, copied, "WAL checkpoint left frames a reader needs")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Commits 400-KB rows until the WAL holds at least `pages`; how many.
    fn fill(conn: &Connection, pages: c_int) -> i64 {
        let blob = vec![7_u8; 100 * 4096];
        let (mut last, mut inserted) = (WAL_PAGES.with(Cell::get), 0);
        while last < pages {
            conn.execute("INSERT INTO t (b) VALUES (?1)", [&blob])
                .expect("insert");
            inserted += 1;
            let now = WAL_PAGES.with(Cell::get);
            assert!(now > last, "{now} after {last}: checkpointed by the commit");
            last = now;
        }
        inserted
    }

    fn wait_for(checkpointer: &Checkpointer) {
        let started = Instant::now();
        while checkpointer.running.load(Ordering::Acquire) {
            assert!(started.elapsed() < Duration::from_secs(30), "no checkpoint");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_thread_checkpoints_past_the_threshold_and_the_committing_thread_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (b BLOB);")
            .expect("table");
        let limit = 2 * WAL_CHECKPOINT_PAGES;
        let checkpointer = Checkpointer::with_limit(&conn, &path, limit).expect("start");
        // The WAL only grows while commits run, past SQLite's own threshold (1,000 pages)...
        let before = fill(&conn, 2_000);
        // ...and a reader keeps the thread from copying what comes after it.
        let reader = Connection::open(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("read");
        let mut inserted = before + fill(&conn, WAL_CHECKPOINT_PAGES);
        checkpointer.committed(&conn);
        wait_for(&checkpointer);
        reader.execute_batch("COMMIT").expect("end");
        // What the thread could not copy keeps the WAL from starting over, so it grows...
        inserted += fill(&conn, limit);
        // ...until, past the limit, the committing thread copies it: the next write starts it
        // over at once.
        checkpointer.committed(&conn);
        conn.execute("INSERT INTO t (b) VALUES (x'00')", [])
            .expect("insert");
        assert!(
            WAL_PAGES.with(Cell::get) < 10,
            "{}",
            WAL_PAGES.with(Cell::get)
        );
        let rows: i64 = Connection::open(&path)
            .expect("open")
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!((seen, rows), (before, inserted + 1));
    }
}
