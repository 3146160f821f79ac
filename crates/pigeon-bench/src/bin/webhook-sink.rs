//! `webhook-sink`: counts the webhooks (and Kannel's DLR callbacks) it receives on 127.0.0.1.
//! Every request is answered 200 at once and counted by kind: the form field `webhook_type`
//! of a RaspiSMS webhook, else its method and path. `GET /_stats` (not counted) answers the
//! counts with the first and last arrival times; the same JSON is printed when it stops, by
//! itself after `--duration` seconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::routing::get;
use clap::Parser;
use pigeon_bench::{serve_for, unix_ms};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "webhook-sink", about = "Counts webhook deliveries")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:18091")]
    listen: String,
    /// Seconds before it stops by itself.
    #[arg(long, default_value_t = 600)]
    duration: u64,
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    by_kind: BTreeMap<String, u64>,
    first_unix_ms: Option<u64>,
    last_unix_ms: Option<u64>,
}

type Shared = Arc<Mutex<Counts>>;

fn kind(method: &Method, uri: &Uri, body: &[u8]) -> String {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "webhook_type")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| format!("{method} {}", uri.path()))
}

async fn hit(State(counts): State<Shared>, method: Method, uri: Uri, body: Bytes) -> &'static str {
    let kind = kind(&method, &uri, &body);
    let now = unix_ms();
    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
    c.total += 1;
    *c.by_kind.entry(kind).or_default() += 1;
    c.first_unix_ms.get_or_insert(now);
    c.last_unix_ms = Some(now);
    "ACK"
}

fn snapshot(counts: &Shared) -> Value {
    let c = counts.lock().unwrap_or_else(|e| e.into_inner());
    json!({
        "tool": "webhook-sink",
        "total": c.total,
        "by_kind": c.by_kind,
        "first_unix_ms": c.first_unix_ms,
        "last_unix_ms": c.last_unix_ms,
        "now_unix_ms": unix_ms(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counts: Shared = Arc::default();
    let stats = counts.clone();
    let app = Router::new()
        .route(
            "/_stats",
            get(move || {
                let stats = stats.clone();
                async move { axum::Json(snapshot(&stats)) }
            }),
        )
        .fallback(hit)
        .with_state(counts.clone());
    let duration = Duration::from_secs(args.duration);
    serve_for("webhook-sink", &args.listen, app, duration).await?;
    println!("{}", snapshot(&counts));
    Ok(())
}
