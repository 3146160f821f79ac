//! WAL checkpoints off the commit thread. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, so every group behind that commit waited while tens of megabytes
//! were copied into the database and synced. Here the group connection only notes the WAL's
//! size as it commits (a WAL hook replaces its automatic checkpoint) and, past
//! [`WAL_CHECKPOINT_PAGES`], wakes a thread of its own that checkpoints on another connection
//! (`PASSIVE`: it copies what no reader still needs and never blocks the writer). The next
//! write after a complete checkpoint starts the WAL over from its beginning, as before.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::Result;

/// WAL pages after which the WAL is copied into the database (SQLite's default is 1,000): the
/// hot pages (the queue's indexes) are rewritten by every group, so checkpointing less often
/// copies each of them once for many groups (7 % less CPU per message end to end, measured).
pub(crate) const WAL_CHECKPOINT_PAGES: i32 = 8_000;

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
}

impl Checkpointer {
    /// Takes over the checkpoints of `committing` (whose commits must then run on one thread,
    /// the one that calls [`Checkpointer::committed`]), with a connection of its own to the
    /// database at `path`. The thread ends when the checkpointer is dropped.
    pub(crate) fn start(committing: &Connection, path: &Path) -> Result<Checkpointer> {
        let own = Connection::open(path)?;
        committing.wal_hook(Some(note_wal_pages));
        let (wake, woken) = mpsc::sync_channel(1);
        let running = Arc::new(AtomicBool::new(false));
        let done = running.clone();
        std::thread::Builder::new()
            .name("pigeon-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = checkpoint(&own) {
                        tracing::warn!(error = %e, "WAL checkpoint failed; tried again later");
                    }
                    done.store(false, Ordering::Release);
                }
            })
            .map_err(|e| crate::StoreError::Group(format!("the checkpoint thread: {e}")))?;
        Ok(Checkpointer { wake, running })
    }

    /// After a commit on `committing`: a checkpoint is started if the WAL has grown past the
    /// threshold and none is running. Should the thread be gone, it runs here.
    pub(crate) fn committed(&self, committing: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages < WAL_CHECKPOINT_PAGES || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.wake.try_send(()).is_err() {
            if let Err(e) = checkpoint(committing) {
                tracing::warn!(error = %e, "WAL checkpoint failed; tried again later");
            }
            self.running.store(false, Ordering::Release);
        }
    }
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_committing_connection_leaves_checkpoints_to_the_thread_past_the_threshold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (b BLOB);")
            .expect("table");
        let checkpointer = Checkpointer::start(&conn, &path).expect("start");
        let blob = vec![7_u8; 100 * 4096];
        let (mut last, mut inserted) = (0, 0_i64);
        // The WAL only grows while commits run, past SQLite's own threshold (1,000 pages)...
        while last < WAL_CHECKPOINT_PAGES {
            conn.execute("INSERT INTO t (b) VALUES (?1)", [&blob])
                .expect("insert");
            inserted += 1;
            let pages = WAL_PAGES.with(Cell::get);
            assert!(
                pages > last,
                "{pages} after {last}: checkpointed by the commit"
            );
            last = pages;
        }
        // ...until the commit that crosses ours wakes the thread.
        checkpointer.committed(&conn);
        let started = Instant::now();
        while checkpointer.running.load(Ordering::Acquire) {
            assert!(started.elapsed() < Duration::from_secs(30), "no checkpoint");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The WAL was copied into the database: the next commit starts it over.
        conn.execute("INSERT INTO t (b) VALUES (x'00')", [])
            .expect("insert");
        assert!(WAL_PAGES.with(Cell::get) < 10);
        let rows: i64 = Connection::open(&path)
            .expect("open")
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, inserted + 1);
    }
}
