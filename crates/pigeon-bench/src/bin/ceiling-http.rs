//! `ceiling-http`: the machine's HTTP ceiling, a trivial axum handler on 127.0.0.1 that reads
//! the request (body included, as a form handler would) and answers a small JSON, on the same
//! runtime Pigeon uses (tokio's multi-threaded one, a worker per core). Stops by itself after
//! `--duration` seconds and prints how many requests it answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use clap::Parser;
use pigeon_bench::serve_for;

#[derive(Debug, Parser)]
#[command(
    name = "ceiling-http",
    about = "A trivial axum handler: the HTTP ceiling"
)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: String,
    /// Seconds before it stops by itself.
    #[arg(long, default_value_t = 600)]
    duration: u64,
}

async fn answer(State(count): State<Arc<AtomicU64>>, body: Bytes) -> impl IntoResponse {
    count.fetch_add(1, Ordering::Relaxed);
    let _ = body.len();
    (
        axum::http::StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":0,"message":null,"response":1,"next":null,"prev":null}"#,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new().fallback(answer).with_state(count.clone());
    let duration = Duration::from_secs(args.duration);
    serve_for("ceiling-http", &args.listen, app, duration).await?;
    println!(
        "{}",
        serde_json::json!({"tool": "ceiling-http", "answered": count.load(Ordering::Relaxed)})
    );
    Ok(())
}
