//! Reads of the scheduler's hot path on a thread of their own, with a rusqlite connection.
//! Through sqlx, every row of a result crosses from sqlx's worker thread to the runtime on a
//! channel (a hand-off, and often a wake-up, per row: about half of sqlx's reader thread in
//! profiles, beside the copy of each value); here a whole read costs one hand-off to the thread
//! and one back. The scheduler reads its due campaigns, their links and the messages waiting
//! for a phone here on every pass, a few hundred rows a second each under load (a campaign's
//! links are also read here for the APIs that show campaigns); the rest of the store reads
//! through sqlx.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// A read, run on the thread's connection.
type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The handle on the reading thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct DirectReader(mpsc::Sender<Job>);

impl DirectReader {
    /// Opens a read-only connection to the database at `path` and starts its thread.
    pub(crate) fn start(path: &Path) -> Result<DirectReader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // As on the group connection: plans that do not depend on bound values, so that a
        // statement is not prepared again each time a pass binds a new `now`.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pigeon-direct-read".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    job(&conn);
                }
            })
            .map_err(|e| StoreError::Group(format!("the reading thread did not start: {e}")))?;
        Ok(DirectReader(jobs))
    }

    /// Runs `read` on the reading thread; its result. A read that panics fails alone.
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| read(conn)))
                .unwrap_or_else(|_| Err(StoreError::Group("the read panicked".into())));
            let _ = done.send(result);
        });
        self.0.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use crate::group::row;
    use crate::{StoreError, testing};

    #[tokio::test]
    async fn a_direct_read_sees_committed_writes_and_a_panicking_one_fails_alone() {
        let (_dir, store) = testing::store().await;
        let user = testing::user(&store, "a@x").await;
        let email = move |conn: &rusqlite::Connection| {
            row(
                conn,
                "SELECT email FROM users WHERE id = $1",
                &[&user],
                |r| r.get::<_, String>(0),
            )
        };
        assert_eq!(
            store.read_direct(email).await.expect("read").as_deref(),
            Some("a@x")
        );
        let panicked = store
            .read_direct(|_| -> crate::Result<()> { panic!("a read that panics") })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Group(_))),
            "{panicked:?}"
        );
        store
            .grouped(move |conn| {
                crate::group::execute(
                    conn,
                    "UPDATE users SET email = 'b@x' WHERE id = $1",
                    &[&user],
                )
            })
            .await
            .expect("write");
        assert_eq!(
            store.read_direct(email).await.expect("read").as_deref(),
            Some("b@x")
        );
    }
}
