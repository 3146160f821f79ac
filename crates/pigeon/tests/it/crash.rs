//! Crash safety (issue 3, item 7): the real `pigeon` binary is killed with SIGKILL in the
//! middle of 1,000 sends to the simulator, then restarted on the same directory. Every message
//! must come out of the queue, the campaign must not be dispatched twice, and the simulator
//! (which takes the message's idempotency key) must have accepted each message exactly once.
//!
//! Every message must end `delivered`: the simulator sends, at its next start, the reports that
//! were due in the killed process, and answers a send the restarted server repeats (it was in
//! flight at the kill) with the same provider id and its report again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pigeon_channels::simulator::{self, SimulatedSend};
use pigeon_core::time::Ts;
use pigeon_store::messages::{self, Message};
use pigeon_store::{Page, Store, phones, queue, stats, users};

use crate::binary::{free_address, logs, read_api_key, spawn, stop_cleanly, wait_until_up};
use crate::helpers::{Answer, answer};

/// Short leases and ticks, so the restart picks the interrupted sends up at once.
const SETTINGS: &[(&str, &str)] = &[("PIGEON_LEASE_SECS", "2"), ("PIGEON_TICK_MS", "50")];

const MESSAGES: usize = 1000;
/// The simulator phone's concurrency: at most this many sends are in flight at once.
const CONCURRENCY: i64 = 8;
/// Sends recorded before the kill.
const KILL_AFTER: i64 = 200;
const POLL: Duration = Duration::from_millis(10);

fn numbers() -> Vec<String> {
    (0..MESSAGES).map(|i| format!("+33612{i:06}")).collect()
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    answer(
        client
            .post(format!("{base}{path}"))
            .header("X-Api-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// Where the messages are, read from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    /// Outbound messages on the phone plus those waiting for one.
    total: i64,
    /// Messages without a phone yet.
    unassigned: i64,
    /// Messages that went through a send attempt (`sent` or a final state).
    attempted: i64,
}

impl Counts {
    /// Messages still `queued` or `sending` on the phone.
    fn waiting(&self) -> i64 {
        self.total - self.attempted
    }
}

async fn attempted(store: &Store, user_id: i64, phone_id: i64) -> i64 {
    stats::usage(store, user_id, None, None, None)
        .await
        .expect("usage")
        .into_iter()
        .find(|(phone, _)| *phone == phone_id)
        .map_or(0, |(_, n)| n)
}

async fn counts(store: &Store, user_id: i64, phone_id: i64) -> Counts {
    let unassigned = queue::unassigned(store, 10 * MESSAGES as i64)
        .await
        .expect("unassigned")
        .len() as i64;
    // Sent (whatever the report said) or still on its way: every message on the phone.
    let on_phone = phones::used_volume(store, phone_id, Ts(0), phones::Pending::All)
        .await
        .expect("count");
    Counts {
        total: on_phone + unassigned,
        unassigned,
        attempted: attempted(store, user_id, phone_id).await,
    }
}

/// Every message that went through a send attempt, oldest first.
async fn attempted_rows(store: &Store, user_id: i64) -> Vec<Message> {
    let mut rows: Vec<Message> = Vec::new();
    loop {
        let after = rows.last().map_or(0, |m| m.id);
        let page = messages::page_sent(store, user_id, Page::After(after))
            .await
            .expect("page");
        if page.is_empty() {
            return rows;
        }
        rows.extend(page);
    }
}

fn by_status(rows: &[Message]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for m in rows {
        *out.entry(m.status.clone()).or_insert(0) += 1;
    }
    out
}

/// Every line of the simulator's log, repeats included.
fn raw_log(dir: &Path) -> Vec<SimulatedSend> {
    let text = std::fs::read_to_string(dir.join("sent.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn a_server_killed_mid_send_resumes_without_losing_or_repeating_messages() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (listen, base) = free_address();
    let client = reqwest::Client::new();

    // 1. The first server; it prints the first admin's key.
    let mut first = spawn(dir, &listen, "first.log", Stdio::piped(), SETTINGS);
    let key = read_api_key(&mut first, dir).await;
    wait_until_up(&client, &base, &mut first, dir).await;
    let store = Store::connect(&format!("sqlite://{}", dir.join("pigeon.db").display()))
        .await
        .expect("db");
    let user_id = users::by_api_key_digest(&store, &pigeon_core::secret::sha256_hex(&key))
        .await
        .expect("user")
        .expect("the printed key's account")
        .id;

    // 2. A simulator phone: slow enough that the kill lands mid-way.
    let concurrency = CONCURRENCY.to_string();
    let phone = post(
        &client,
        &base,
        &key,
        "/api/phone/",
        &[
            ("name", "simulator"),
            ("adapter", "simulator"),
            ("adapter_data[latency_ms]", "5"),
            ("adapter_data[concurrency]", &concurrency),
            ("adapter_data[dlr_delay_ms]", "10"),
        ],
    )
    .await;
    assert_eq!(phone.status, 201, "{}", phone.text);
    let phone_id = phone.ok().as_i64().expect("phone id");
    let sim_dir = dir
        .join("pigeon-data")
        .join("channels")
        .join(phone_id.to_string());

    // 3. One campaign of 1,000 distinct numbers.
    let numbers = numbers();
    let mut form = vec![("text", "Crash test")];
    form.extend(numbers.iter().map(|n| ("numbers[]", n.as_str())));
    let campaign = post(&client, &base, &key, "/api/scheduled/", &form).await;
    assert_eq!(campaign.status, 201, "{}", campaign.text);
    let queued_at = Instant::now();

    // 4. SIGKILL once enough sends are recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while seen < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {seen} sends recorded before the kill deadline{}",
            logs(dir)
        );
        if let Some(status) = first.try_wait().expect("try_wait") {
            panic!("the first server exited by itself ({status}){}", logs(dir));
        }
        tokio::time::sleep(POLL).await;
        seen = attempted(&store, user_id, phone_id).await;
    }
    first.kill().await.expect("SIGKILL");
    let killed_at = Instant::now();
    let status = first.wait().await.expect("wait");
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");

    // The state the kill left.
    let at_kill = counts(&store, user_id, phone_id).await;
    let rows_at_kill = attempted_rows(&store, user_id).await;
    let statuses_at_kill = by_status(&rows_at_kill);
    let sent_at_kill = statuses_at_kill.get("sent").copied().unwrap_or(0);
    let log_at_kill = raw_log(&sim_dir).len();
    eprintln!(
        "crash: killed {:?} after the campaign was queued; at the kill: {at_kill:?}, \
         waiting {}, statuses {statuses_at_kill:?}, simulator log {log_at_kill} lines",
        killed_at - queued_at,
        at_kill.waiting()
    );
    assert_eq!(
        at_kill.total, MESSAGES as i64,
        "the campaign was not dispatched whole"
    );
    assert!(
        at_kill.attempted < MESSAGES as i64 - 100,
        "the kill came too late to test anything: {at_kill:?}"
    );

    // 5. The restart, on the same directory, port and settings.
    let mut second = spawn(dir, &listen, "second.log", Stdio::null(), SETTINGS);
    wait_until_up(&client, &base, &mut second, dir).await;
    let restarted_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Option<(Counts, BTreeMap<String, i64>)> = None;
    let mut stable_since = Instant::now();
    let (after, rows) = loop {
        if let Some(status) = second.try_wait().expect("try_wait") {
            panic!("the restarted server exited ({status}){}", logs(dir));
        }
        let now = counts(&store, user_id, phone_id).await;
        let mut rows = None;
        if now.waiting() == 0 && now.unassigned == 0 {
            // Everything went through a send attempt; wait for the delivery reports to settle.
            let all = attempted_rows(&store, user_id).await;
            let statuses = by_status(&all);
            let current = (now.clone(), statuses.clone());
            if last.as_ref() != Some(&current) {
                last = Some(current);
                stable_since = Instant::now();
            }
            let delivered = statuses.get("delivered").copied().unwrap_or(0);
            if delivered == MESSAGES as i64 || stable_since.elapsed() >= Duration::from_millis(1500)
            {
                rows = Some(all);
            }
        }
        if let Some(rows) = rows {
            break (now, rows);
        }
        assert!(
            Instant::now() < deadline,
            "not every message reached the end of its sending within 60 s of the restart: \
             {now:?}, statuses {:?}{}",
            last.map(|l| l.1),
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finished_in = restarted_at.elapsed();

    // 6. Nothing lost, nothing repeated.
    let statuses = by_status(&rows);
    eprintln!(
        "crash: restarted server finished in {finished_in:?}: {after:?}, statuses {statuses:?}"
    );
    assert_eq!(
        after.total, MESSAGES as i64,
        "outbound messages: the campaign was dispatched again or lost some"
    );
    assert_eq!(rows.len(), MESSAGES, "messages that went through a send");
    assert_eq!(
        after.waiting(),
        0,
        "messages left queued or sending: {after:?}"
    );
    let delivered = statuses.get("delivered").copied().unwrap_or(0);
    assert_eq!(
        delivered, MESSAGES as i64,
        "every send succeeds on this phone and every report is sent, so every message is \
         delivered ({sent_at_kill} were sent without their report at the kill): {statuses:?}"
    );
    let expected: BTreeSet<&str> = numbers.iter().map(String::as_str).collect();
    let mut destinations: Vec<&str> = rows
        .iter()
        .map(|m| m.destination.as_deref().unwrap_or_default())
        .collect();
    destinations.sort_unstable();
    assert_eq!(
        destinations,
        expected.iter().copied().collect::<Vec<_>>(),
        "one message per number"
    );
    for m in &rows {
        assert_eq!(
            m.provider_id.as_deref(),
            Some(format!("sim-{}", m.id).as_str()),
            "message {} was recorded with another send's provider id",
            m.id
        );
    }

    // The simulator accepted each message exactly once, under the message's own key.
    let log = raw_log(&sim_dir);
    let keys: HashSet<&str> = log.iter().map(|s| s.idempotency_key.as_str()).collect();
    assert_eq!(
        (log.len(), keys.len()),
        (MESSAGES, MESSAGES),
        "simulator log lines and distinct keys"
    );
    let own_keys: HashSet<String> = rows.iter().map(|m| format!("pigeon-{}", m.id)).collect();
    assert!(
        log.iter().all(|s| own_keys.contains(&s.idempotency_key)),
        "a simulator send under a key that is not a message's own"
    );
    let mut log_destinations: Vec<&str> = log.iter().map(|s| s.destination.as_str()).collect();
    log_destinations.sort_unstable();
    assert_eq!(
        log_destinations, destinations,
        "the simulator saw each number once"
    );
    let loaded = simulator::load_log(&sim_dir).expect("load_log");
    assert_eq!(loaded.len(), MESSAGES);

    // 7. A clean stop.
    stop_cleanly(&mut second, dir, Duration::from_secs(10)).await;
    store.close().await;
    eprintln!(
        "crash: whole test {:?} (kill after {:?}, restart to done {finished_in:?})",
        started.elapsed(),
        killed_at - queued_at
    );
}
