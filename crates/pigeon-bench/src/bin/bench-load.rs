//! `bench-load`: a small HTTP/1.1 load client for the benchmarks.
//!
//! Closed loop (default): C connections each send a request, wait for the answer, send the
//! next, for D seconds (or until `--requests` were sent). Open loop (`--rate R`): requests are
//! scheduled every 1/R s whatever the answers, and handed to the first free connection of C;
//! latency is measured from the scheduled time, so a stalled server is not hidden by the client
//! waiting for it (no coordinated omission).
//!
//! `{n}` in the URL, the headers and the body is replaced by a per-request counter (from
//! `--start`, zero-padded to `--pad` digits), e.g. to make unique phone numbers. Prints one JSON
//! line: sent, ok (2xx), errors, the statuses seen, the rate achieved and latency percentiles.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pigeon_bench::{Template, require_loopback, unix_ms};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "bench-load",
    about = "HTTP load client (closed or open loop), JSON result"
)]
struct Args {
    /// Target, http://127.0.0.1:PORT/path?query (may contain `{n}`).
    #[arg(long)]
    url: String,
    /// HTTP method [default: POST with a body, GET without].
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// A request header, `Name: value` (may contain `{n}`); repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body (may contain `{n}`); `@FILE` reads it from a file.
    #[arg(long, short = 'b')]
    body: Option<String>,
    /// First value of the `{n}` counter.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Width `{n}` is zero-padded to (the counter wraps at 10^pad).
    #[arg(long, default_value_t = 8)]
    pad: usize,
    /// Connections (closed loop: requests in flight; open loop: the most in flight).
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// How long requests are sent, in seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Open loop: requests per second, scheduled whatever the answers.
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Stop after this many requests (also bounded by `--duration`).
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Client threads (1: a single-threaded runtime, leaving the other core to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// After `--duration`, how long answers are still waited for, in seconds; requests not sent
    /// by then count as `not_sent`.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Timeout of one request, in seconds (counts as an error, the connection is reopened).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// What a request is made of, `{n}` still in place.
struct Shape {
    method: hyper::Method,
    authority: String,
    addr: String,
    path: Template,
    headers: Vec<(hyper::header::HeaderName, Template)>,
    body: Option<Template>,
}

impl Shape {
    fn request(&self, n: u64) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let mut req = hyper::Request::builder()
            .method(self.method.clone())
            .uri(self.path.render(n))
            .header(hyper::header::HOST, &self.authority);
        for (name, value) in &self.headers {
            req = req.header(name, value.render(n));
        }
        let body = match &self.body {
            Some(b) => Bytes::from(b.render(n)),
            None => Bytes::new(),
        };
        Ok(req.body(Full::new(body))?)
    }
}

fn parse(args: &Args) -> anyhow::Result<Shape> {
    let rest = args
        .url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>()?),
        _ => (authority, 80),
    };
    require_loopback(host)?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header `{h}` is not `Name: value`"))?;
        headers.push((
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            Template::new(value.trim(), args.pad),
        ));
    }
    let body = match &args.body {
        Some(b) if b.starts_with('@') => {
            Some(std::fs::read_to_string(&b[1..]).with_context(|| format!("reading {}", &b[1..]))?)
        }
        Some(b) => Some(b.clone()),
        None => None,
    };
    let method = match &args.method {
        Some(m) => m.to_ascii_uppercase().parse()?,
        None if body.is_some() => hyper::Method::POST,
        None => hyper::Method::GET,
    };
    if body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n == hyper::header::CONTENT_TYPE)
    {
        headers.push((
            hyper::header::CONTENT_TYPE,
            Template::new("application/x-www-form-urlencoded", args.pad),
        ));
    }
    Ok(Shape {
        method,
        authority: authority.to_string(),
        addr: format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        ),
        path: Template::new(path, args.pad),
        headers,
        body: body.map(|b| Template::new(&b, args.pad)),
    })
}

/// What one connection saw.
struct Tally {
    latency_us: Histogram<u64>,
    sent: u64,
    ok: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    error_kinds: BTreeMap<String, u64>,
    last_answer: Option<Instant>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            sent: 0,
            ok: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            error_kinds: BTreeMap::new(),
            last_answer: None,
        }
    }

    fn error(&mut self, kind: &str) {
        self.errors += 1;
        *self.error_kinds.entry(kind.to_string()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.sent += other.sent;
        self.ok += other.ok;
        self.errors += other.errors;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += v;
        }
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}

/// Where a connection gets its next request: (scheduled time, counter), or `None` to stop.
enum Source {
    Closed {
        counter: Arc<AtomicU64>,
        end: Option<u64>,
        deadline: Instant,
    },
    Open(Arc<Mutex<mpsc::UnboundedReceiver<(Instant, u64)>>>),
}

impl Source {
    async fn next(&self) -> Option<(Instant, u64)> {
        match self {
            Source::Closed {
                counter,
                end,
                deadline,
            } => {
                let now = Instant::now();
                if now >= *deadline {
                    return None;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if end.is_some_and(|end| n >= end) {
                    return None;
                }
                Some((now, n))
            }
            Source::Open(rx) => rx.lock().await.recv().await,
        }
    }
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection(
    shape: Arc<Shape>,
    source: Arc<Source>,
    hard_stop: Instant,
    timeout: Duration,
    mut sender: Option<SendRequest<Full<Bytes>>>,
) -> Tally {
    let mut tally = Tally::new();
    while let Some((scheduled, n)) = source.next().await {
        if Instant::now() >= hard_stop {
            break;
        }
        tally.sent += 1;
        let req = match shape.request(n) {
            Ok(r) => r,
            Err(_) => {
                tally.error("bad request");
                continue;
            }
        };
        let outcome = tokio::time::timeout(timeout, async {
            let s = match sender.as_mut() {
                Some(s) if !s.is_closed() => s,
                _ => sender.insert(connect(&shape.addr).await?),
            };
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            anyhow::Ok(status)
        })
        .await;
        let now = Instant::now();
        match outcome {
            Ok(Ok(status)) => {
                let us = now.saturating_duration_since(scheduled).as_micros() as u64;
                tally.latency_us.saturating_record(us.max(1));
                tally.last_answer = Some(now);
                if (200..300).contains(&status) {
                    tally.ok += 1;
                } else {
                    tally.error(&format!("HTTP {status}"));
                }
                *tally.statuses.entry(status).or_default() += 1;
            }
            Ok(Err(e)) => {
                sender = None;
                let kind = if e.downcast_ref::<std::io::Error>().is_some() {
                    "connect"
                } else {
                    "connection"
                };
                tally.error(kind);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => {
                sender = None;
                tally.error("timeout");
            }
        }
    }
    tally
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.duration.is_nan() || args.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    let shape = Arc::new(parse(&args)?);
    // Connections are opened one by one before the clock starts: a burst of connects overflows
    // small accept queues (Kannel's is 10) and costs the first requests a SYN retransmission.
    let mut ready = Vec::with_capacity(args.connections);
    let mut connect_errors = 0u64;
    for _ in 0..args.connections {
        match tokio::time::timeout(Duration::from_secs(5), connect(&shape.addr)).await {
            Ok(Ok(sender)) => ready.push(Some(sender)),
            _ => {
                connect_errors += 1;
                ready.push(None);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let duration = Duration::from_secs_f64(args.duration);
    let grace = Duration::from_secs_f64(args.grace.max(0.0));
    let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    let start = Instant::now();
    let started_ms = unix_ms();
    let deadline = start + duration;
    let hard_stop = deadline + grace;
    let end = args.requests.map(|r| args.start + r);

    let mut scheduled_count = Arc::new(AtomicU64::new(0));
    let (source, scheduler) = match args.rate {
        None => (
            Source::Closed {
                counter: Arc::new(AtomicU64::new(args.start)),
                end,
                deadline,
            },
            None,
        ),
        Some(rate) => {
            if rate.is_nan() || rate <= 0.0 {
                bail!("--rate must be positive");
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let count = Arc::new(AtomicU64::new(0));
            scheduled_count = count.clone();
            let first = args.start;
            let scheduler = tokio::spawn(async move {
                let interval = 1.0 / rate;
                let mut i: u64 = 0;
                loop {
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    if due >= deadline || end.is_some_and(|end| first + i >= end) {
                        break;
                    }
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                    }
                    // Everything due by now goes out, each with its own scheduled time.
                    let now = Instant::now();
                    loop {
                        let due = start + Duration::from_secs_f64(i as f64 * interval);
                        if due > now || due >= deadline || end.is_some_and(|end| first + i >= end) {
                            break;
                        }
                        if tx.send((due, first + i)).is_err() {
                            return;
                        }
                        i += 1;
                        count.store(i, Ordering::Relaxed);
                    }
                }
            });
            (Source::Open(Arc::new(Mutex::new(rx))), Some(scheduler))
        }
    };
    let source = Arc::new(source);
    let mut tasks = Vec::with_capacity(args.connections);
    for sender in ready {
        tasks.push(tokio::spawn(connection(
            shape.clone(),
            source.clone(),
            hard_stop,
            timeout,
            sender,
        )));
    }
    let mut total = Tally::new();
    let overall = hard_stop + timeout + Duration::from_secs(1);
    for task in tasks {
        match tokio::time::timeout_at(overall, task).await {
            Ok(Ok(tally)) => total.merge(tally),
            Ok(Err(e)) => bail!("a connection task failed: {e}"),
            Err(_) => total.error("unfinished at the hard stop"),
        }
    }
    if let Some(s) = scheduler {
        s.abort();
    }
    let finished = Instant::now();
    let scheduled = match args.rate {
        Some(_) => scheduled_count.load(Ordering::Relaxed),
        None => total.sent,
    };
    // The rate is counted up to the last answer: an open loop that falls behind shows a rate
    // below the one offered, a closed loop the rate the server sustained.
    let span = total
        .last_answer
        .unwrap_or(finished)
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-9);
    let h = &total.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "tool": "bench-load",
        "label": args.label,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate_target": args.rate,
        "connections": args.connections,
        "duration_s": args.duration,
        "started_unix_ms": started_ms,
        "elapsed_s": round3(span),
        "scheduled": scheduled,
        "sent": total.sent,
        "not_sent": scheduled.saturating_sub(total.sent),
        "ok": total.ok,
        "errors": total.errors,
        "preconnect_errors": connect_errors,
        "error_kinds": total.error_kinds,
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "rate": round3(total.ok as f64 / span),
        "p50_ms": round3(ms(0.50)),
        "p90_ms": round3(ms(0.90)),
        "p99_ms": round3(ms(0.99)),
        "max_ms": round3(h.max() as f64 / 1000.0),
        "mean_ms": round3(h.mean() / 1000.0),
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let result = runtime.block_on(run(args))?;
    println!("{result}");
    // Connections still open to a stalled server must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
