//! Crash under load (issue item): while many clients are still POSTing single messages (RaspiSMS
//! `POST /api/scheduled/` and Reach `create`), the real `pigeon` binary is killed with SIGKILL,
//! restarted on the same directory, and left to drain into the simulator phone. Each request has
//! its own number, so what the simulator accepted tells what became of each request:
//!
//! - a request that got a success answer was sent exactly once (by its message's idempotency
//!   key and its number), as the message the answer named;
//! - a request that got an error answer was never sent, nor stored;
//! - a request without an answer (reset by the kill) was sent at most once;
//! - no number was sent twice, and the database and the simulator agree message for message.
//!
//! The load goes on against the restarted server, so it drains the interrupted work while new
//! requests arrive. `bench/crash.sh` runs the ignored variant on the release binary with a
//! bigger load (sizes from the `CRASH_*` environment variables, see [`Load::from_env`]).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pigeon::formats::reach::parse_message_id;
use pigeon_channels::simulator::{self, SimulatedSend};
use serde_json::Value;
use tokio::sync::watch;

use crate::binary::{free_address, logs, read_api_key, spawn, stop_cleanly, wait_until_up};
use crate::helpers::sql_at;

/// How much load, and when to kill.
#[derive(Debug, Clone)]
struct Load {
    /// Requests in all, one number each.
    requests: usize,
    /// Clients POSTing at once.
    concurrency: usize,
    /// Requests started per second, all clients together (0: as fast as the clients go). Under
    /// a load it cannot keep up with, Pigeon's senders fall far behind its API (seconds without
    /// a send), and the kill would find no send in flight; a rate above what it sends but below
    /// what it accepts builds a backlog with sends under way.
    rate: usize,
    /// The kill comes once this many requests got a success answer...
    kill_after: usize,
    /// ... and the simulator accepted at least this many sends.
    min_sends: usize,
    /// The simulator phone: slow enough that a backlog builds up, so sends are in flight at the
    /// kill.
    sim_latency_ms: u64,
    sim_concurrency: u64,
    /// How long the kill may wait for its moment.
    kill_deadline: Duration,
    /// How long the restarted server may take to send everything.
    drain_deadline: Duration,
}

impl Load {
    /// The integration test's size: well under a minute on a debug build.
    fn small() -> Load {
        Load {
            requests: 3000,
            concurrency: 32,
            rate: 250,
            kill_after: 1000,
            min_sends: 50,
            // Sends long enough that the kill, just after one was seen under way, cuts it off.
            sim_latency_ms: 40,
            sim_concurrency: 16,
            kill_deadline: Duration::from_secs(60),
            drain_deadline: Duration::from_secs(120),
        }
    }

    /// `bench/crash.sh`'s size: `CRASH_REQUESTS` (default 30,000), `CRASH_CONCURRENCY` (64),
    /// `CRASH_RATE` (requests per second, 0 for no limit: the default),
    /// `CRASH_KILL_AFTER` (a third of the requests), `CRASH_KILL_MIN_SENDS` (200),
    /// `CRASH_SIM_LATENCY_MS` (20), `CRASH_SIM_CONCURRENCY` (32), `CRASH_DEADLINE_SECS` (for the
    /// kill and for the drain each; 60 + 20 ms a request).
    fn from_env() -> Load {
        fn var(name: &str, default: usize) -> usize {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        }
        let requests = var("CRASH_REQUESTS", 30_000);
        assert!(
            (100..10_000_000).contains(&requests),
            "CRASH_REQUESTS must be 100 to 9,999,999"
        );
        let deadline = Duration::from_secs(var("CRASH_DEADLINE_SECS", 60 + requests / 50) as u64);
        let load = Load {
            requests,
            concurrency: var("CRASH_CONCURRENCY", 64).max(1),
            rate: var("CRASH_RATE", 0),
            kill_after: var("CRASH_KILL_AFTER", requests / 3),
            min_sends: var("CRASH_KILL_MIN_SENDS", 200).max(1),
            sim_latency_ms: var("CRASH_SIM_LATENCY_MS", 20) as u64,
            sim_concurrency: var("CRASH_SIM_CONCURRENCY", 32).max(1) as u64,
            kill_deadline: deadline,
            drain_deadline: deadline,
        };
        assert!(
            load.kill_after > 0 && load.kill_after < load.requests,
            "CRASH_KILL_AFTER must be between 1 and CRASH_REQUESTS - 1"
        );
        load
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_sends_every_accepted_message_once_and_no_refused_one() {
    run(Load::small()).await;
}

/// What `bench/crash.sh` runs (`cargo test --release ... -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the bigger load of bench/crash.sh; sizes from CRASH_* variables"]
async fn bigger_load_of_bench_crash_sh() {
    run(Load::from_env()).await;
}

/// Short leases and ticks, so the restart picks the interrupted sends up at once; no Reach rate
/// limit.
const SETTINGS: &[(&str, &str)] = &[
    ("PIGEON_LEASE_SECS", "2"),
    ("PIGEON_TICK_MS", "50"),
    ("PIGEON_REACH_RATE_PER_SEC", "0"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `POST /api/scheduled/` with one number.
    Raspi,
    /// `POST /rest/messaging/v1/create`.
    Reach,
    /// A RaspiSMS request Pigeon must refuse (bad number data), with a valid number.
    BadRaspi,
    /// A Reach create Pigeon must refuse (a sender ID too long), with a valid `dest`.
    BadReach,
}

impl Kind {
    fn of(i: usize) -> Kind {
        if i % 20 == 19 {
            if (i / 20).is_multiple_of(2) {
                Kind::BadRaspi
            } else {
                Kind::BadReach
            }
        } else if i % 5 == 1 {
            Kind::Reach
        } else {
            Kind::Raspi
        }
    }

    fn bad(self) -> bool {
        matches!(self, Kind::BadRaspi | Kind::BadReach)
    }
}

/// Request `i`'s number: valid French mobile numbers, one per request.
fn number(i: usize) -> String {
    format!("+3361{i:07}")
}

fn index_of(number: &str) -> Option<usize> {
    number.strip_prefix("+3361")?.parse().ok()
}

#[derive(Debug, Clone)]
enum Outcome {
    /// A success answer, with the id it named: the scheduled SMS (RaspiSMS) or the message
    /// (Reach).
    Success(i64),
    /// An error answer: its status and body.
    Error(u16, String),
    /// Sent without an answer (the kill reset the connection): Pigeon may or may not have it.
    Unknown(String),
    /// No connection (the server was down): Pigeon never saw it.
    Refused,
}

/// What a client needs to send.
struct Target {
    base: String,
    key: String,
    email: String,
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn request(client: &reqwest::Client, t: &Target, i: usize) -> Outcome {
    let number = number(i);
    let text = format!("crash load {i}");
    let kind = Kind::of(i);
    let raspi = |pairs: &[(&str, &str)]| {
        client
            .post(format!("{}/api/scheduled/", t.base))
            .header("X-Api-Key", &t.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    };
    let reach = |pairs: &[(&str, &str)]| {
        client
            .post(format!("{}/rest/messaging/v1/create", t.base))
            .header("ApiUser", &t.email)
            .header("ApiKey", &t.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    };
    let builder = match kind {
        Kind::Raspi => raspi(&[("text", &text), ("numbers", &number)]),
        Kind::BadRaspi => raspi(&[
            ("text", &text),
            ("numbers[0][number]", &number),
            ("numbers[0][data]", "{not json"),
        ]),
        Kind::Reach => reach(&[("dest", &number), ("src", "Pigeon"), ("body", &text)]),
        Kind::BadReach => reach(&[
            ("dest", &number),
            ("src", "far too long a sender"),
            ("body", &text),
        ]),
    };
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Refused,
        Err(e) => return Outcome::Unknown(format!("{e:?}")),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Outcome::Unknown(format!("status {status}, then no body: {e:?}")),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let id = match kind {
        Kind::Raspi | Kind::BadRaspi if status == 201 && body["error"] == 0 => {
            body["response"].as_i64()
        }
        Kind::Reach | Kind::BadReach if status == 201 => {
            body["messageId"].as_str().and_then(parse_message_id)
        }
        _ => None,
    };
    match id {
        Some(id) => Outcome::Success(id),
        None => Outcome::Error(status, text),
    }
}

/// What the clients share.
struct Clients {
    client: reqwest::Client,
    target: Target,
    requests: usize,
    /// The next request to make.
    next: AtomicUsize,
    successes: AtomicUsize,
    /// With a rate: when the next request may start (a request every `1 / rate` s).
    pace: Option<(Duration, tokio::sync::Mutex<tokio::time::Instant>)>,
}

impl Clients {
    /// Waits for the next slot of the rate; after a pause (the restart) the slots resume from
    /// now rather than catching up.
    async fn paced(&self) {
        if let Some((every, next)) = &self.pace {
            let slot = {
                let mut next = next.lock().await;
                let slot = (*next).max(tokio::time::Instant::now());
                *next = slot + *every;
                slot
            };
            tokio::time::sleep_until(slot).await;
        }
    }
}

/// One client: takes the next request while the server is up, until none is left.
async fn client_loop(c: Arc<Clients>, mut up: watch::Receiver<bool>) -> Vec<(usize, Outcome)> {
    let mut out = Vec::new();
    loop {
        c.paced().await;
        if up.wait_for(|up| *up).await.is_err() {
            return out;
        }
        let i = c.next.fetch_add(1, Ordering::SeqCst);
        if i >= c.requests {
            return out;
        }
        let outcome = request(&c.client, &c.target, i).await;
        if matches!(outcome, Outcome::Success(_)) {
            c.successes.fetch_add(1, Ordering::SeqCst);
        }
        out.push((i, outcome));
    }
}

/// The lines of a growing file, read as it grows.
struct LineCount {
    path: std::path::PathBuf,
    read: u64,
    lines: usize,
}

impl LineCount {
    fn new(path: std::path::PathBuf) -> LineCount {
        LineCount {
            path,
            read: 0,
            lines: 0,
        }
    }

    fn count(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            let mut new = Vec::new();
            if file.seek(SeekFrom::Start(self.read)).is_ok() && file.read_to_end(&mut new).is_ok() {
                self.read += new.len() as u64;
                self.lines += new.iter().filter(|b| **b == b'\n').count();
            }
        }
        self.lines
    }
}

/// Every line of the simulator's log, repeats included.
fn raw_log(dir: &Path) -> Vec<SimulatedSend> {
    let text = std::fs::read_to_string(dir.join("sent.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

fn int(row: &Value, column: &str) -> i64 {
    row[column].as_i64().unwrap_or(0)
}

/// Outbound messages per status, and scheduled SMS not dispatched yet.
async fn state(db: &Path) -> (BTreeMap<String, i64>, i64) {
    let statuses = sql_at(
        db,
        "SELECT status, count(*) AS n FROM messages WHERE direction = 'outbound' GROUP BY status",
    )
    .await
    .iter()
    .map(|r| {
        (
            r["status"].as_str().unwrap_or_default().to_string(),
            int(r, "n"),
        )
    })
    .collect();
    let scheduled = sql_at(
        db,
        "SELECT count(*) AS n FROM campaigns WHERE status = 'scheduled'",
    )
    .await;
    (statuses, scheduled.first().map_or(0, |r| int(r, "n")))
}

/// Messages not at the end of their sending yet (a `sent` one still waits for its report).
fn open(statuses: &BTreeMap<String, i64>) -> i64 {
    ["queued", "sending", "sent"]
        .iter()
        .map(|s| statuses.get(*s).copied().unwrap_or(0))
        .sum()
}

/// One outbound message as stored.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    destination: String,
    status: String,
    provider_id: Option<String>,
    campaign_id: Option<i64>,
}

async fn rows(db: &Path) -> Vec<Row> {
    sql_at(
        db,
        "SELECT id, destination, status, provider_id, campaign_id FROM messages \
         WHERE direction = 'outbound' ORDER BY id",
    )
    .await
    .iter()
    .map(|r| Row {
        id: int(r, "id"),
        destination: r["destination"].as_str().unwrap_or_default().to_string(),
        status: r["status"].as_str().unwrap_or_default().to_string(),
        provider_id: r["provider_id"].as_str().map(str::to_string),
        campaign_id: r["campaign_id"].as_i64(),
    })
    .collect()
}

async fn run(load: Load) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let db = dir.join("pigeon.db");
    let (listen, base) = free_address();
    let setup_client = reqwest::Client::new();
    eprintln!(
        "crash_load: {load:?}, binary {}",
        env!("CARGO_BIN_EXE_pigeon")
    );

    // 1. The first server, its first account, and a simulator phone that reports deliveries.
    let mut first = spawn(dir, &listen, "first.log", Stdio::piped(), SETTINGS);
    let key = read_api_key(&mut first, dir).await;
    wait_until_up(&setup_client, &base, &mut first, dir).await;
    let email = sql_at(&db, "SELECT email FROM users ORDER BY id LIMIT 1").await[0]["email"]
        .as_str()
        .expect("the first account's email")
        .to_string();
    let phone = setup_client
        .post(format!("{base}/api/phone/"))
        .header("X-Api-Key", &key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("name", "simulator"),
            ("adapter", "simulator"),
            ("adapter_data[latency_ms]", &load.sim_latency_ms.to_string()),
            (
                "adapter_data[concurrency]",
                &load.sim_concurrency.to_string(),
            ),
            ("adapter_data[dlr]", "1"),
            ("adapter_data[dlr_delay_ms]", "10"),
        ]))
        .send()
        .await
        .expect("create the phone");
    assert_eq!(phone.status(), 201, "the simulator phone");
    let phone: Value = phone.json().await.expect("phone JSON");
    let phone_id = phone["response"].as_i64().expect("phone id");
    let sim_dir = dir
        .join("pigeon-data")
        .join("channels")
        .join(phone_id.to_string());

    // 2. The load: clients take requests in order while the server is up.
    let shared = Arc::new(Clients {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(load.concurrency)
            .build()
            .expect("client"),
        target: Target {
            base: base.clone(),
            key: key.clone(),
            email,
        },
        requests: load.requests,
        next: AtomicUsize::new(0),
        successes: AtomicUsize::new(0),
        pace: (load.rate > 0).then(|| {
            (
                Duration::from_secs_f64(1.0 / load.rate as f64),
                tokio::sync::Mutex::new(tokio::time::Instant::now()),
            )
        }),
    });
    let (next, successes) = (&shared.next, &shared.successes);
    let (up_tx, up_rx) = watch::channel(true);
    let load_started = Instant::now();
    let clients: Vec<_> = (0..load.concurrency)
        .map(|_| tokio::spawn(client_loop(shared.clone(), up_rx.clone())))
        .collect();

    // 3. SIGKILL once enough requests succeeded and the simulator accepted enough sends, while
    // the clients are still POSTing and a send is under way.
    let deadline = Instant::now() + load.kill_deadline;
    let mut sends = LineCount::new(sim_dir.join("sent.jsonl"));
    loop {
        let sends = sends.count();
        if successes.load(Ordering::SeqCst) >= load.kill_after
            && sends >= load.min_sends
            && state(&db).await.0.get("sending").is_some_and(|&n| n > 0)
        {
            break;
        }
        if let Some(status) = first.try_wait().expect("try_wait") {
            panic!("the first server exited by itself ({status}){}", logs(dir));
        }
        assert!(
            next.load(Ordering::SeqCst) < load.requests,
            "the load ran out before the kill: {} successes, {sends} sends",
            successes.load(Ordering::SeqCst)
        );
        assert!(
            Instant::now() < deadline,
            "no kill within {:?}: {} successes, {sends} sends{}",
            load.kill_deadline,
            successes.load(Ordering::SeqCst),
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.start_kill().expect("SIGKILL");
    let killed_at = Instant::now();
    let issued_at_kill = next.load(Ordering::SeqCst);
    let successes_at_kill = successes.load(Ordering::SeqCst);
    let status = first.wait().await.expect("wait");
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    // The clients wait for the restart; those in flight at the kill got no answer.
    up_tx.send_replace(false);

    // The state the kill left.
    let (at_kill, scheduled_at_kill) = state(&db).await;
    let log_at_kill = raw_log(&sim_dir);
    // Sends in flight: claimed, not recorded; some already accepted by the simulator, whose
    // repeat after the restart must not send them again.
    let in_flight: Vec<String> = sql_at(
        &db,
        "SELECT id FROM messages WHERE direction = 'outbound' AND status = 'sending'",
    )
    .await
    .iter()
    .map(|r| format!("pigeon-{}", int(r, "id")))
    .collect();
    let accepted_in_flight = in_flight
        .iter()
        .filter(|key| log_at_kill.iter().any(|s| &s.idempotency_key == *key))
        .count();
    let backlog_at_kill = open(&at_kill) - at_kill.get("sent").copied().unwrap_or(0);
    eprintln!(
        "crash_load: killed {:?} into the load, {issued_at_kill} requests issued and \
         {successes_at_kill} answered with success; at the kill: outbound {at_kill:?}, \
         {scheduled_at_kill} scheduled SMS not dispatched yet, simulator log {} lines; \
         {} sends in flight, {accepted_in_flight} of them already accepted by the simulator",
        killed_at - load_started,
        log_at_kill.len(),
        in_flight.len(),
    );
    assert!(!log_at_kill.is_empty(), "the kill came before any send");
    assert!(
        at_kill.get("sending").copied().unwrap_or(0) > 0,
        "no send in flight at the kill: {at_kill:?}"
    );
    assert!(
        backlog_at_kill + scheduled_at_kill > 0,
        "the kill came when nothing was left to send: {at_kill:?}"
    );

    // 4. The restart, on the same directory, port and settings; the load resumes.
    let mut second = spawn(dir, &listen, "second.log", Stdio::null(), SETTINGS);
    wait_until_up(&setup_client, &base, &mut second, dir).await;
    let restarted_at = Instant::now();
    up_tx.send_replace(true);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; load.requests];
    for handle in clients {
        for (i, outcome) in handle.await.expect("client task") {
            outcomes[i] = Some(outcome);
        }
    }
    let load_done = load_started.elapsed();
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| panic!("request {i} was never made")))
        .collect();

    // 5. The drain: every scheduled SMS dispatched, every message at the end of its sending.
    let deadline = Instant::now() + load.drain_deadline;
    let drained = loop {
        if let Some(status) = second.try_wait().expect("try_wait") {
            panic!("the restarted server exited ({status}){}", logs(dir));
        }
        let (statuses, scheduled) = state(&db).await;
        if scheduled == 0 && open(&statuses) == 0 {
            break statuses;
        }
        assert!(
            Instant::now() < deadline,
            "no drain within {:?} of the restart: outbound {statuses:?}, {scheduled} scheduled \
             SMS left{}",
            load.drain_deadline,
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_done = restarted_at.elapsed();

    // A clean stop, so the database and the simulator's log are read at rest.
    stop_cleanly(&mut second, dir, Duration::from_secs(30)).await;

    // 6. The checks. Every failure is collected, so one run gives all the evidence.
    let rows = rows(&db).await;
    let log = raw_log(&sim_dir);
    let mut failures: Vec<String> = Vec::new();
    let mut fail = |what: String| {
        if failures.len() < 50 {
            failures.push(what);
        } else if failures.len() == 50 {
            failures.push("... (more failures left out)".into());
        }
    };

    // The simulator: no key and no number twice, only the load's numbers.
    let mut log_by_key: HashMap<&str, Vec<&SimulatedSend>> = HashMap::new();
    let mut log_by_number: HashMap<&str, Vec<&SimulatedSend>> = HashMap::new();
    for s in &log {
        log_by_key.entry(&s.idempotency_key).or_default().push(s);
        log_by_number.entry(&s.destination).or_default().push(s);
        if index_of(&s.destination).is_none_or(|i| i >= load.requests) {
            fail(format!(
                "the simulator accepted a send to a number of no request: {s:?}"
            ));
        }
    }
    for (key, sends) in &log_by_key {
        if sends.len() > 1 {
            fail(format!(
                "idempotency key {key} accepted {} times: {sends:?}",
                sends.len()
            ));
        }
    }
    for (number, sends) in &log_by_number {
        if sends.len() > 1 {
            fail(format!("{number} sent {} times: {sends:?}", sends.len()));
        }
    }
    let loaded = simulator::load_log(&sim_dir).expect("load_log");
    if loaded.len() != log_by_key.len() {
        fail(format!(
            "the simulator's own reading of its log has {} sends, the raw log {} keys",
            loaded.len(),
            log_by_key.len()
        ));
    }

    // The database and the simulator agree message for message.
    let mut rows_by_number: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &rows {
        rows_by_number
            .entry(&row.destination)
            .or_default()
            .push(row);
        let key = format!("pigeon-{}", row.id);
        match log_by_key.get(key.as_str()).map(Vec::as_slice) {
            Some([s]) if s.destination == row.destination => {}
            other => fail(format!(
                "message {} to {} ({}) and the simulator disagree: {other:?}",
                row.id, row.destination, row.status
            )),
        }
        if row.status != "delivered" {
            fail(format!(
                "message {} ended {}, not delivered: {row:?}",
                row.id, row.status
            ));
        }
        if row.provider_id.as_deref() != Some(format!("sim-{}", row.id).as_str()) {
            fail(format!(
                "message {} has another send's provider id: {row:?}",
                row.id
            ));
        }
    }
    for (number, rows) in &rows_by_number {
        if rows.len() > 1 {
            fail(format!(
                "{number} has {} outbound messages: {rows:?}",
                rows.len()
            ));
        }
    }
    let rows_by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    for s in &log {
        let row = s
            .idempotency_key
            .strip_prefix("pigeon-")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| rows_by_id.get(&id));
        if row.is_none_or(|r| r.destination != s.destination) {
            fail(format!("a simulator send with no message behind it: {s:?}"));
        }
    }
    let campaigns = sql_at(
        &db,
        "SELECT c.id, c.status, count(m.id) AS messages FROM campaigns c \
         LEFT JOIN messages m ON m.campaign_id = c.id GROUP BY c.id",
    )
    .await;
    for c in &campaigns {
        if c["status"] != "dispatched" || int(c, "messages") != 1 {
            fail(format!(
                "a scheduled SMS not dispatched into exactly one message: {c}"
            ));
        }
    }

    // Each request against what became of it.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexpected_errors: Vec<String> = Vec::new();
    let mut unknown_sent = 0;
    let mut unknown_not_sent = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        let number = number(i);
        let kind = Kind::of(i);
        let sent = log_by_number.get(number.as_str()).map_or(0, Vec::len);
        let stored = rows_by_number
            .get(number.as_str())
            .map_or(&[][..], Vec::as_slice);
        match outcome {
            Outcome::Success(id) => {
                *counts
                    .entry(if kind == Kind::Reach {
                        "success reach"
                    } else {
                        "success raspisms"
                    })
                    .or_default() += 1;
                if kind.bad() {
                    fail(format!(
                        "request {i} ({kind:?}) should have been refused: success {id}"
                    ));
                }
                if sent != 1 {
                    fail(format!(
                        "request {i} ({kind:?}, {number}) got a success answer (id {id}) but was \
                         sent {sent} times; stored: {stored:?}"
                    ));
                }
                // The answer named the message (Reach) or scheduled SMS (RaspiSMS) that was sent.
                let named = match kind {
                    Kind::Reach | Kind::BadReach => stored.iter().any(|r| r.id == *id),
                    Kind::Raspi | Kind::BadRaspi => {
                        stored.iter().any(|r| r.campaign_id == Some(*id))
                    }
                };
                if !named {
                    fail(format!(
                        "request {i} ({kind:?}, {number}) was answered with id {id}, but its \
                         stored message is {stored:?}"
                    ));
                }
            }
            Outcome::Error(status, text) => {
                *counts.entry("error").or_default() += 1;
                if !kind.bad() {
                    unexpected_errors.push(format!("request {i} ({kind:?}): {status} {text}"));
                }
                if sent != 0 || !stored.is_empty() {
                    fail(format!(
                        "request {i} ({kind:?}, {number}) got an error answer ({status} {text}) \
                         but was sent {sent} times; stored: {stored:?}"
                    ));
                }
            }
            Outcome::Unknown(_) => {
                *counts.entry("no answer").or_default() += 1;
                match sent {
                    0 => unknown_not_sent += 1,
                    1 => unknown_sent += 1,
                    n => fail(format!(
                        "request {i} ({kind:?}) without answer sent {n} times"
                    )),
                }
                if kind.bad() && sent != 0 {
                    fail(format!("request {i} ({kind:?}), a refused kind, was sent"));
                }
            }
            Outcome::Refused => {
                *counts.entry("not connected").or_default() += 1;
                if sent != 0 || !stored.is_empty() {
                    fail(format!(
                        "request {i} ({kind:?}, {number}) never reached the server but was sent \
                         {sent} times; stored: {stored:?}"
                    ));
                }
            }
        }
    }
    let unknown_details: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Outcome::Unknown(e) => Some(format!("{i}: {e}")),
            _ => None,
        })
        .take(3)
        .collect();

    eprintln!(
        "crash_load: results: {counts:?}; no answer: {unknown_sent} sent once, \
         {unknown_not_sent} not sent; error answers to valid requests: {}; simulator sends {}, \
         outbound messages {} ({drained:?}), scheduled SMS {}",
        unexpected_errors.len(),
        log.len(),
        rows.len(),
        campaigns.len()
    );
    if !unknown_details.is_empty() {
        eprintln!("crash_load: no-answer examples: {unknown_details:?}");
    }
    for e in unexpected_errors.iter().take(5) {
        eprintln!("crash_load: error answer to a valid request: {e}");
    }
    eprintln!(
        "crash_load: timing: kill {:?} into the load, load done {load_done:?}, restart to \
         drained {drain_done:?}, whole run {:?}",
        killed_at - load_started,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "crash_load: FAIL, {} problems:\n{}{}",
        failures.len(),
        failures.join("\n"),
        logs(dir)
    );
    eprintln!("crash_load: PASS");
}
