//! Group commit: writes queued at the same moment share one transaction, so one fsync makes
//! them all durable (DESIGN §4). Each write runs inside its own savepoint: one that fails is
//! rolled back alone and its caller gets its error; the others commit. A caller hears back only
//! once the shared commit is on disk, so a success answer still means the data survives a
//! power cut.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqliteConnection;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Writes in one group at most: enough to amortise an fsync, few enough to keep latency low.
const MAX_GROUP: usize = 512;

type Output = Result<Box<dyn Any + Send>>;
type Work = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = Output> + Send + 'c>>
        + Send,
>;

struct Job {
    work: Work,
    done: oneshot::Sender<Output>,
}

#[derive(Debug, Clone)]
pub(crate) struct Committer(mpsc::UnboundedSender<Job>);

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Committer {
    /// Starts the task that runs the groups on the writer connection.
    pub(crate) fn start(writer: SqlitePool) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, rx));
        Committer(tx)
    }

    /// Runs `work` in the next group; its result once the group is committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>
            + Send
            + 'static,
    {
        let (done, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move { work(conn).await.map(|t| Box::new(t) as Box<dyn Any + Send>) })
        });
        self.0
            .send(Job { work, done })
            .map_err(|_| StoreError::Closed)?;
        let value = answer.await.map_err(|_| StoreError::Closed)??;
        value
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StoreError::Closed)
    }
}

async fn run(writer: SqlitePool, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit(&writer, group).await;
    }
}

/// One transaction for the group; each job in a savepoint of its own.
async fn commit(writer: &SqlitePool, group: Vec<Job>) {
    let mut conn = match writer.acquire().await {
        Ok(conn) => conn,
        Err(e) => return fail_all(group, &e.to_string()),
    };
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return fail_all(group, &e.to_string());
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        let result = savepoint(&mut conn, job.work).await;
        outcomes.push((job.done, result));
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        let message = e.to_string();
        for (done, _) in outcomes {
            let _ = done.send(Err(StoreError::Group(message.clone())));
        }
        return;
    }
    for (done, result) in outcomes {
        let _ = done.send(result);
    }
}

async fn savepoint(conn: &mut SqliteConnection, work: Work) -> Output {
    sqlx::query("SAVEPOINT job").execute(&mut *conn).await?;
    let result = work(conn).await;
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job"
    };
    sqlx::query(end).execute(&mut *conn).await?;
    if result.is_err() {
        sqlx::query("RELEASE job").execute(&mut *conn).await?;
    }
    result
}

fn fail_all(group: Vec<Job>, message: &str) {
    for job in group {
        let _ = job.done.send(Err(StoreError::Group(message.to_string())));
    }
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

    fn insert(store: &Store, n: i64) -> impl Future<Output = Result<i64>> + use<> {
        let store = store.clone();
        async move {
            store
                .grouped(move |conn| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO t (n) VALUES ($1)")
                            .bind(n)
                            .execute(&mut *conn)
                            .await?;
                        Ok(n)
                    })
                })
                .await
        }
    }

    #[tokio::test]
    async fn concurrent_writes_commit_and_a_failing_one_fails_alone() {
        let (_dir, store) = store().await;
        // 200 writes at once, one of them a duplicate of another.
        let mut tasks = tokio::task::JoinSet::new();
        for n in (0..200).chain([7]) {
            tasks.spawn(insert(&store, n));
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
        assert_eq!(insert(&store, 1001).await.expect("grouped"), 1001);
    }
}
