//! `ceiling-sqlite`: the machine's durable-write ceiling. Inserts rows shaped like Pigeon's
//! messages (same columns and, unless `--bare`, the same indexes) into a fresh SQLite file in
//! WAL mode with `synchronous=FULL` (or `--synchronous normal`), `--batch` rows per
//! transaction, through sqlx as Pigeon does, for `--duration` seconds; prints one JSON line.
//! Batches are written with multi-row INSERTs of up to 100 rows (`--row-by-row`: one statement
//! per row, as Pigeon does).

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

#[derive(Debug, Parser)]
#[command(
    name = "ceiling-sqlite",
    about = "Batched durable inserts: the SQLite ceiling"
)]
struct Args {
    /// Database file (created afresh; the file and its -wal/-shm are removed first).
    #[arg(long)]
    path: std::path::PathBuf,
    /// Rows per transaction.
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// `full` (a commit is on disk when it returns) or `normal` (WAL: durable at checkpoints).
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Seconds of inserting.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Only the table, without the secondary indexes Pigeon's messages table has.
    #[arg(long)]
    bare: bool,
    /// One INSERT statement per row (as Pigeon writes) instead of multi-row INSERTs of up to
    /// 100 rows, which show what SQLite itself sustains without the per-statement cost.
    #[arg(long)]
    row_by_row: bool,
}

const SCHEMA: &str = "CREATE TABLE messages (
    id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL, phone_id BIGINT, phone_group_id BIGINT,
    phone_fixed INTEGER NOT NULL DEFAULT 0, direction TEXT NOT NULL, origin TEXT, destination TEXT,
    text TEXT NOT NULL, encoding TEXT NOT NULL DEFAULT 'gsm7', segments BIGINT NOT NULL DEFAULT 1,
    flash INTEGER NOT NULL DEFAULT 0, mms INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
    provider_id TEXT, adapter TEXT, campaign_id BIGINT, tag TEXT, client_ref TEXT, callback_url TEXT,
    valid_until BIGINT, max_tries BIGINT NOT NULL DEFAULT 1, tries BIGINT NOT NULL DEFAULT 0,
    next_try_at BIGINT, lease_until BIGINT, at BIGINT NOT NULL, error_code TEXT, error_text TEXT,
    price TEXT, is_read INTEGER NOT NULL DEFAULT 0, command INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, api TEXT)";

const INDEXES: &[&str] = &[
    "CREATE INDEX messages_user_direction ON messages (user_id, direction, id)",
    "CREATE INDEX messages_destination ON messages (user_id, destination)",
    "CREATE INDEX messages_phone_at ON messages (phone_id, at)",
    "CREATE INDEX messages_campaign ON messages (campaign_id) WHERE campaign_id IS NOT NULL",
    "CREATE INDEX messages_queue ON messages (status, phone_id, next_try_at) \
     WHERE status = 'scheduled' OR status = 'queued' OR status = 'sending'",
    "CREATE INDEX messages_provider ON messages (provider_id) WHERE provider_id IS NOT NULL",
];

const COLUMNS: &str = "INSERT INTO messages (user_id, phone_id, direction, destination, text, encoding, \
    segments, status, valid_until, max_tries, next_try_at, at, created_at, updated_at) VALUES ";

const INSERT: &str = "INSERT INTO messages (user_id, phone_id, direction, destination, text, encoding, \
    segments, status, valid_until, max_tries, next_try_at, at, created_at, updated_at) \
    VALUES ($1, 1, 'outbound', $2, 'Mon SMS d''exemple, un texte de benchmark', 'gsm7', 1, 'queued', \
    $3, 3, $4, $4, $4, $4)";

/// Rows per multi-row INSERT.
const CHUNK: u64 = 100;

/// `INSERT ... VALUES (...), (...)` for `rows` rows, 4 parameters each.
fn multi_insert(rows: u64) -> String {
    let mut sql = String::from(COLUMNS);
    for r in 0..rows {
        let b = r * 4;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, 1, 'outbound', ${}, 'Mon SMS d''exemple, un texte de benchmark', 'gsm7', 1, 'queued', \
             ${}, 3, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 4,
            b + 4,
            b + 4
        ));
    }
    sql
}

async fn insert_many(
    conn: &mut SqliteConnection,
    sql: &str,
    first: u64,
    rows: u64,
    now: i64,
) -> anyhow::Result<()> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for n in first..first + rows {
        query = query
            .bind(1_i64)
            .bind(format!("+336{:08}", n % 100_000_000))
            .bind(now + 172_800_000)
            .bind(now);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn insert(conn: &mut SqliteConnection, n: u64, now: i64) -> anyhow::Result<()> {
    sqlx::query(INSERT)
        .bind(1_i64)
        .bind(format!("+336{:08}", n % 100_000_000))
        .bind(now + 172_800_000)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let synchronous = match args.synchronous.to_ascii_lowercase().as_str() {
        "full" => SqliteSynchronous::Full,
        "normal" => SqliteSynchronous::Normal,
        other => anyhow::bail!("--synchronous must be full or normal, not {other}"),
    };
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    if let Some(dir) = args.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(&args.path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    sqlx::query(SCHEMA).execute(&mut conn).await?;
    if !args.bare {
        for index in INDEXES {
            sqlx::query(*index).execute(&mut conn).await?;
        }
    }
    let full_chunk = multi_insert(CHUNK);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let (mut rows, mut commits) = (0u64, 0u64);
    while start.elapsed() < duration {
        let now = pigeon_bench::unix_ms() as i64;
        if args.batch == 1 {
            insert(&mut conn, rows, now).await?;
        } else {
            let mut tx = conn.begin().await?;
            if args.row_by_row {
                for i in 0..args.batch {
                    insert(&mut tx, rows + i, now).await?;
                }
            } else {
                let mut done = 0;
                while done < args.batch {
                    let n = CHUNK.min(args.batch - done);
                    let sql = if n == CHUNK {
                        &full_chunk
                    } else {
                        &multi_insert(n)
                    };
                    insert_many(&mut tx, sql, rows + done, n, now).await?;
                    done += n;
                }
            }
            tx.commit().await?;
        }
        rows += args.batch;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close().await?;
    println!(
        "{}",
        json!({
            "tool": "ceiling-sqlite",
            "synchronous": args.synchronous.to_ascii_lowercase(),
            "batch": args.batch,
            "indexes": !args.bare,
            "row_by_row": args.batch == 1 || args.row_by_row,
            "rows": rows,
            "commits": commits,
            "elapsed_s": (secs * 1000.0).round() / 1000.0,
            "rows_per_s": (rows as f64 / secs).round(),
            "commits_per_s": (commits as f64 / secs).round(),
        })
    );
    Ok(())
}
