//! All of Pigeon's SQL. One repository module per aggregate; callers see plain row structs and
//! never write SQL themselves.
//!
//! SQLite runs in WAL mode, durable by default (a success answer means the data is on disk:
//! `synchronous=FULL`, or the group committer's own flush), behind one writer connection, so
//! writers queue in the application instead of meeting `SQLITE_BUSY`, and a pool of readers.
//! The writes of the hot paths (accepting, dispatching, recording sends and reports, webhook
//! attempts) go through group commit: those queued at the same moment share one transaction
//! and one fsync, which runs beside the next group. SQL sticks to the dialect PostgreSQL shares
//! (`$n` placeholders, `RETURNING`, `ON CONFLICT`).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use checkpoint::Checkpointer;
use rusqlite::config::DbConfig;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow};

pub mod calls;
pub mod campaigns;
mod checkpoint;
pub mod conditional_groups;
pub mod contacts;
pub mod credentials;
pub mod devices;
mod direct;
mod group;
pub mod groups;
pub mod media;
mod message_counts;
pub mod messages;
pub mod outbox;
pub mod phones;
pub mod queue;
pub mod quotas;
pub mod reliability;
pub mod reports;
pub mod senders;
pub mod settings;
pub mod stats;
pub mod stop_list;
pub mod users;
pub mod webhooks;

pub use pigeon_core::time::Ts;

/// Rows per page of every list (RaspiSMS's fixed page size).
pub const PAGE_SIZE: i64 = 25;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (a name already used, ...).
    #[error("already exists")]
    Conflict,
    #[error("unsupported database url `{0}` (expected sqlite://PATH)")]
    Url(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The commit of a group of writes failed; none of them is stored.
    #[error("group commit failed: {0}")]
    Group(String),
    #[error("the store is closed")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(e),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.extended_code,
                    SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which slice of a list: RaspiSMS's page number, or its `after/{id}` / `before/{id}` cursors.
/// Every list is ordered by id, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Number(i64),
    After(i64),
    Before(i64),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Debug, Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
    group: group::Committer,
    direct: direct::DirectReader,
}

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// On disk (fsync'd at every commit): survives a power cut. The default.
    #[default]
    Full,
    /// Written to the OS: survives the process being killed, not a power cut (fsync at WAL
    /// checkpoints only), as Kannel's store file and Jasmin's queues.
    Normal,
}

impl Store {
    /// Opens (creating the file if missing) the database at `url`, e.g. `sqlite://pigeon.db`.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, Durability::Full).await
    }

    /// [`Store::connect`] with a chosen durability.
    pub async fn connect_with(url: &str, durability: Durability) -> Result<Store> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Url(url.to_string()));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Url(url.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WAL_CHECKPOINT_PAGES.to_string(),
            )
            .busy_timeout(Duration::from_secs(10));
        // A local file needs no liveness check before each use; sqlx's costs a round trip to
        // its worker thread per acquire.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let (group_conn, checkpointer, wal) = group_connection(&options, durability)?;
        let direct = direct::DirectReader::start(options.get_filename())?;
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let group = group::Committer::start(writer.clone(), group_conn, checkpointer, wal);
        Ok(Store {
            writer,
            reader,
            group,
            direct,
        })
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    pub(crate) fn w(&self) -> &SqlitePool {
        &self.writer
    }

    pub(crate) fn r(&self) -> &SqlitePool {
        &self.reader
    }

    /// Runs a read of the scheduler's hot path on the direct reading thread (see [`direct`]).
    pub(crate) async fn read_direct<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.direct.read(read).await
    }

    /// Runs a write in the next group commit (see [`group`]), on the writer's SQLite handle:
    /// the writes of the hot paths, many at a time. The write may run twice (again after
    /// another write of its group failed), so it must do nothing but its SQL.
    pub(crate) async fn grouped<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.group.write(work).await
    }

    /// One page of `select`, whose SQL ends in a `WHERE` clause binding the user id as `$1`
    /// and whose rows carry an `id` column. Cursor pages read backwards then flip, so every
    /// page comes out oldest first.
    pub(crate) async fn page<R>(
        &self,
        select: &'static str,
        user_id: i64,
        page: Page,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        paged(self.r(), select, user_id, page.into(), None).await
    }

    /// [`Store::page`] with one more filter value, bound as `$4`.
    pub(crate) async fn page_with<R>(
        &self,
        select: &'static str,
        user_id: i64,
        page: Page,
        extra: i64,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        paged(self.r(), select, user_id, page.into(), Some(extra)).await
    }

    /// [`Store::page`] for a list of messages whose size is kept (`list`, see
    /// [`message_counts`]): a numbered page near the end of the list is read backwards from
    /// its end, where an `OFFSET` from the start walks every row before it (see
    /// [`numbered`]). The sizes and the page are read in one transaction, so that they agree.
    pub(crate) async fn page_counted<R>(
        &self,
        select: &'static str,
        user_id: i64,
        page: Page,
        list: &message_counts::Counted<'_>,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let n = match page {
            Page::Number(n) if n > 0 => n,
            _ => return self.page(select, user_id, page).await,
        };
        let mut tx = self.r().begin().await?;
        let sizes = message_counts::sizes(&mut tx, user_id, list).await?;
        let rows = match numbered(n, sizes) {
            Some(slice) => paged(&mut *tx, select, user_id, slice, None).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(rows)
    }
}

/// One slice of `select` (see [`Store::page`]), oldest first.
async fn paged<'c, R, E>(
    executor: E,
    select: &'static str,
    user_id: i64,
    slice: Slice,
    extra: Option<i64>,
) -> Result<Vec<R>>
where
    R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    // Rows of a join qualify `id` with the first table's alias, if any.
    let id = if select.contains(" a JOIN ") {
        "a.id"
    } else {
        "id"
    };
    let (suffix, take, param) = match slice {
        Slice::FromStart { skip, take } => (" ORDER BY {id} LIMIT $2 OFFSET $3", take, skip),
        Slice::FromEnd { skip, take } => (" ORDER BY {id} DESC LIMIT $2 OFFSET $3", take, skip),
        Slice::After(after) => (" AND {id} > $3 ORDER BY {id} LIMIT $2", PAGE_SIZE, after),
        Slice::Before(before) => (
            " AND {id} < $3 ORDER BY {id} DESC LIMIT $2",
            PAGE_SIZE,
            before,
        ),
    };
    let sql = format!("{select}{}", suffix.replace("{id}", id));
    let mut query = sqlx::query_as(AssertSqlSafe(sql))
        .bind(user_id)
        .bind(take)
        .bind(param);
    if let Some(extra) = extra {
        query = query.bind(extra);
    }
    let mut rows: Vec<R> = query.fetch_all(executor).await?;
    if matches!(slice, Slice::FromEnd { .. } | Slice::Before(_)) {
        rows.reverse();
    }
    Ok(rows)
}

/// The rows of numbered page `n` (> 0) of a list of `sizes`, and from which end to read them;
/// `None` past the end. Backwards only when that walk is the shorter even if every row the
/// walk passes outside the list lay at the end.
fn numbered(n: i64, sizes: message_counts::Sizes) -> Option<Slice> {
    let skip = n.checked_mul(PAGE_SIZE)?;
    let left = sizes.listed - skip;
    if left <= 0 {
        return None;
    }
    if sizes.walked - sizes.listed + left >= skip {
        return Some(Slice::FromStart {
            skip,
            take: PAGE_SIZE,
        });
    }
    Some(Slice::FromEnd {
        skip: (left - PAGE_SIZE).max(0),
        take: left.min(PAGE_SIZE),
    })
}

/// The rows a page query reads, in the list's order (by id): `take` rows after skipping
/// `skip` from its start or its end, or a page after or before an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slice {
    FromStart { skip: i64, take: i64 },
    FromEnd { skip: i64, take: i64 },
    After(i64),
    Before(i64),
}

impl From<Page> for Slice {
    fn from(page: Page) -> Slice {
        match page {
            Page::Number(n) => Slice::FromStart {
                skip: n.max(0).saturating_mul(PAGE_SIZE),
                take: PAGE_SIZE,
            },
            Page::After(id) => Slice::After(id),
            Page::Before(id) => Slice::Before(id),
        }
    }
}

impl Store {
    /// Deletes row `id` of `table` if it belongs to `user_id`.
    pub(crate) async fn delete_owned(
        &self,
        table: &'static str,
        user_id: i64,
        id: i64,
    ) -> Result<()> {
        let sql = format!("DELETE FROM {table} WHERE id = $1 AND user_id = $2");
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(user_id)
            .execute(self.w())
            .await?;
        found(done.rows_affected())
    }

    /// The rows of `select` (whose SQL ends in a `WHERE` clause binding the user id as `$1`)
    /// whose id is among `ids`, ordered by id.
    pub(crate) async fn by_ids<R>(&self, select: &str, user_id: i64, ids: &[i64]) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{select} AND id IN ({}) ORDER BY id",
            placeholders(2, ids.len())
        );
        let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(user_id);
        for id in ids {
            q = q.bind(id);
        }
        Ok(q.fetch_all(self.r()).await?)
    }
}

/// The group committer's own connection to the database sqlx opened, what checkpoints it, and
/// the WAL file it flushes itself with durability `full`.
fn group_connection(
    options: &SqliteConnectOptions,
    durability: Durability,
) -> Result<(rusqlite::Connection, Checkpointer, Option<PathBuf>)> {
    let path = options.get_filename();
    let conn = rusqlite::Connection::open(path)?;
    // Its commits only write the WAL; with durability `full` the group committer flushes it
    // (see `group`).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Plans that do not depend on bound values: otherwise SQLite re-prepares a statement each
    // time a value it looked at while planning is bound again (a claim's `LIMIT $4`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // The groups' statements stay prepared (those with IN lists of varying length come and go).
    conn.set_prepared_statement_cache_capacity(256);
    let checkpointer = Checkpointer::start(&conn, path)?;
    let wal = (durability == Durability::Full).then(|| {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        PathBuf::from(wal)
    });
    Ok((conn, checkpointer, wal))
}

/// `NotFound` when a statement touched no row.
pub(crate) fn found(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The ids as one JSON array, for `IN (SELECT value FROM json_each($n))`: bound as a single
/// value, the statement's text stays the same however many ids there are, so its prepared
/// form is reused from the statement cache instead of being parsed again for each length.
pub(crate) fn json_ids(ids: &[i64]) -> String {
    serde_json::Value::from(ids).to_string()
}

/// Placeholders `$from, $from+1, ...` for an `IN (...)` list of `n` values (`n` ≥ 1).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// Which rows a numbered page is and from which end they are read: the last page full,
    /// partial, or exactly at the end; an empty list; a page number too large to multiply;
    /// the turn from forwards to backwards, which counts the rows outside the list as lying
    /// at the end.
    #[test]
    fn numbered_pages_are_planned_from_the_shorter_end() {
        let sizes = |listed, walked| message_counts::Sizes { listed, walked };
        let forward = |skip| {
            Some(Slice::FromStart {
                skip,
                take: PAGE_SIZE,
            })
        };
        let backward = |skip, take| Some(Slice::FromEnd { skip, take });
        let cases = [
            (1, sizes(100, 100), forward(25)),
            (2, sizes(100, 100), forward(50)),
            (3, sizes(100, 100), backward(0, 25)),
            (4, sizes(100, 100), None),
            (3, sizes(90, 90), backward(0, 15)),
            (2, sizes(90, 90), backward(15, 25)),
            (1, sizes(0, 0), None),
            (1, sizes(0, 500), None),
            (i64::MAX, sizes(100, 100), None),
            // Rows outside the list: backwards only if they cannot make it the longer walk.
            (2, sizes(100, 140), forward(50)),
            (3, sizes(100, 140), backward(0, 25)),
            (3, sizes(100, 160), forward(75)),
            (3, sizes(120, 140), backward(20, 25)),
            (30, sizes(1_000, 1_040), backward(225, 25)),
        ];
        for (n, sizes, want) in cases {
            assert_eq!(numbered(n, sizes), want, "page {n} of {sizes:?}");
        }
    }

    #[test]
    fn the_group_connection_keeps_its_plans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let options = SqliteConnectOptions::from_str(&url).expect("url");
        let (conn, _, _) = group_connection(&options, Durability::Full).expect("open");
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
        )
        .expect("table");
        for limit in 1..=3 {
            let mut stmt = conn
                .prepare_cached("SELECT id FROM t ORDER BY id LIMIT ?1")
                .expect("prepare");
            let ids: Vec<i64> = stmt
                .query_map([limit], |r| r.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            assert_eq!(ids.len(), limit.min(2) as usize);
            assert_eq!(
                stmt.get_status(StatementStatus::RePrepare),
                0,
                "limit {limit}"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    pub async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        (dir, store)
    }

    pub async fn user(store: &Store, email: &str) -> i64 {
        crate::users::create(
            store,
            &crate::users::NewUser {
                email,
                password_hash: "x",
                admin: false,
                api_key_digest: email,
                api_key_sealed: "sealed",
            },
        )
        .await
        .expect("user")
    }
}
