//! The simulator: seeded outcomes, events, and idempotency across restarts.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigeon_channels::simulator::{SimulatedSend, Simulator, load_log};
use pigeon_channels::{Ack, Channel, Event, Inbound, Report, SendError, Sent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::helpers::{PHONE_ID, Phone, data, outgoing};

/// Long enough for any event on a loaded machine; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(5);

fn open(phone: &Phone, config: Value) -> Simulator {
    Simulator::open(&data(config), phone.ctx()).expect("valid simulator data")
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .ok()
        .flatten()
        .expect("an event")
}

/// Nothing arrives within a short wait (events are due at once in these tests).
async fn assert_no_event(events: &mut mpsc::Receiver<Event>) {
    let got = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    assert!(got.is_err(), "unexpected event {got:?}");
}

fn log_lines(phone: &Phone) -> Vec<String> {
    let text =
        std::fs::read_to_string(phone.dir.path().join("phone/sent.jsonl")).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// The outcome of 200 distinct messages, by key.
async fn outcomes(seed: u64, concurrently: bool) -> BTreeMap<String, Result<Sent, SendError>> {
    let phone = Phone::new();
    let simulator = Arc::new(open(
        &phone,
        json!({"seed": seed, "success_rate": 0.5, "dlr": "0"}),
    ));
    let messages: Vec<_> = (1..=200)
        .map(|i| outgoing(i, "+33611111111", "load"))
        .collect();
    let mut results = BTreeMap::new();
    if concurrently {
        let mut tasks = JoinSet::new();
        // Last first, so that the order really differs from the sequential run.
        for m in messages.into_iter().rev() {
            let simulator = simulator.clone();
            tasks.spawn(async move { (m.idempotency_key.clone(), simulator.send(&m).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let (key, result) = joined.expect("send task");
            results.insert(key, result);
        }
    } else {
        for m in messages {
            results.insert(m.idempotency_key.clone(), simulator.send(&m).await);
        }
    }
    results
}

#[tokio::test]
async fn a_seed_fixes_outcomes_whatever_the_order() {
    let sequential = outcomes(7, false).await;
    let concurrent = outcomes(7, true).await;
    assert_eq!(sequential.len(), 200);
    assert_eq!(sequential, concurrent);
    let other_seed = outcomes(8, false).await;
    assert_ne!(sequential, other_seed);
    for result in sequential.values() {
        match result {
            Ok(sent) => assert!(sent.provider_id.starts_with("sim-")),
            Err(e) => assert_eq!(e, &SendError::Transient("simulated failure".into())),
        }
    }
}

#[tokio::test]
async fn half_the_sends_fail_at_a_success_rate_of_one_half() {
    for seed in 1..=4 {
        let failures = outcomes(seed, true)
            .await
            .values()
            .filter(|r| r.is_err())
            .count();
        // Binomial(200, 0.5): standard deviation about 7.
        assert!(
            (70..=130).contains(&failures),
            "seed {seed}: {failures} failures of 200"
        );
    }
}

#[tokio::test]
async fn failures_are_permanent_when_configured_and_retries_eventually_pass() {
    let phone = Phone::new();
    let permanent = open(
        &phone,
        json!({"seed": 3, "success_rate": 0, "failure": "permanent"}),
    );
    let result = permanent.send(&outgoing(1, "+1", "x")).await;
    assert_eq!(
        result,
        Err(SendError::Permanent("simulated failure".into()))
    );
    assert!(log_lines(&phone).is_empty());

    // A transient failure is drawn again on each attempt, as a real retry would meet it.
    let phone = Phone::new();
    let flaky = open(&phone, json!({"seed": 3, "success_rate": 0.5, "dlr": 0}));
    let mut passed = 0;
    for id in 1..=20 {
        let m = outgoing(id, "+1", "x");
        for _attempt in 0..40 {
            if flaky.send(&m).await.is_ok() {
                passed += 1;
                break;
            }
        }
    }
    assert_eq!(passed, 20);
    assert_eq!(log_lines(&phone).len(), 20);
}

#[tokio::test]
async fn delivery_reports_and_auto_replies_arrive_as_events() {
    let mut phone = Phone::new();
    let simulator = open(
        &phone,
        json!({"seed": 1, "dlr_delay_ms": "150", "auto_reply": "pong"}),
    );
    let started = Instant::now();
    let sent = simulator
        .send(&outgoing(7, "+33611111111", "ping"))
        .await
        .expect("accepted");
    assert_eq!(sent.provider_id, "sim-7");

    let report = next_event(&mut phone.events).await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the report came before dlr_delay_ms"
    );
    assert_eq!(
        report,
        Event::Status {
            phone_id: PHONE_ID,
            provider_id: "sim-7".into(),
            report: Report::Delivered,
            ack: Ack::default(),
        }
    );
    match next_event(&mut phone.events).await {
        Event::Inbound {
            phone_id,
            sms: Inbound { origin, text, .. },
        } => {
            assert_eq!(
                (phone_id, origin.as_str(), text.as_str()),
                (PHONE_ID, "+33611111111", "pong")
            );
        }
        other => panic!("expected the auto-reply, got {other:?}"),
    }
}

#[tokio::test]
async fn delivered_rate_splits_delivered_and_undelivered() {
    let mut phone = Phone::new();
    let simulator = open(&phone, json!({"seed": 5, "delivered_rate": 0.5}));
    let mut sent = Vec::new();
    for id in 1..=100 {
        sent.push(
            simulator
                .send(&outgoing(id, "+1", "x"))
                .await
                .expect("accepted")
                .provider_id,
        );
    }
    let mut reports = BTreeMap::new();
    for _ in 0..100 {
        match next_event(&mut phone.events).await {
            Event::Status {
                provider_id,
                report,
                ..
            } => reports.insert(provider_id, report),
            other => panic!("expected a report, got {other:?}"),
        };
    }
    sent.sort();
    assert_eq!(reports.keys().cloned().collect::<Vec<_>>(), sent);
    let delivered = reports
        .values()
        .filter(|r| **r == Report::Delivered)
        .count();
    let undelivered = reports
        .values()
        .filter(|r| **r == Report::Undelivered)
        .count();
    assert_eq!(delivered + undelivered, 100);
    assert!(
        (30..=70).contains(&delivered),
        "{delivered} delivered of 100"
    );
}

#[tokio::test]
async fn no_events_without_reports_or_auto_reply() {
    let mut phone = Phone::new();
    let simulator = open(&phone, json!({"dlr": "0"}));
    simulator
        .send(&outgoing(1, "+1", "x"))
        .await
        .expect("accepted");
    assert_no_event(&mut phone.events).await;
}

#[tokio::test]
async fn a_repeated_key_returns_the_same_id_logged_once_and_reports_again() {
    let mut phone = Phone::new();
    let simulator = open(&phone, json!({"seed": 1, "auto_reply": "ok"}));
    let first = simulator
        .send(&outgoing(1, "+1", "x"))
        .await
        .expect("accepted");
    // The same message retried after a crash: a new row id, the same key.
    let mut again = outgoing(99, "+1", "x");
    again.idempotency_key = "key-1".into();
    let second = simulator.send(&again).await.expect("accepted");
    assert_eq!(first, second);
    assert_eq!(log_lines(&phone).len(), 1);
    // One report per send (the first one's may have died with a crashed server), one reply.
    let mut statuses = 0;
    let mut replies = 0;
    for _ in 0..3 {
        match next_event(&mut phone.events).await {
            Event::Status { .. } => statuses += 1,
            Event::Inbound { .. } => replies += 1,
        }
    }
    assert_eq!((statuses, replies), (2, 1));
    assert_no_event(&mut phone.events).await;
}

#[tokio::test]
async fn concurrent_sends_of_one_key_are_recorded_once() {
    let mut phone = Phone::new();
    let simulator = Arc::new(open(&phone, json!({"seed": 1})));
    let mut tasks = JoinSet::new();
    for _ in 0..32 {
        let simulator = simulator.clone();
        tasks.spawn(async move { simulator.send(&outgoing(5, "+1", "x")).await });
    }
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(
            joined.expect("send task"),
            Ok(Sent {
                provider_id: "sim-5".into()
            })
        );
    }
    assert_eq!(log_lines(&phone).len(), 1);
    for _ in 0..32 {
        assert!(matches!(
            next_event(&mut phone.events).await,
            Event::Status { ref provider_id, .. } if provider_id == "sim-5"
        ));
    }
    assert_no_event(&mut phone.events).await;
}

/// Checks a report is for `provider_id` and acknowledges it, as the services do once recorded.
fn acknowledge(event: Event, provider_id: &str) {
    match event {
        Event::Status {
            provider_id: got,
            ack,
            ..
        } if got == provider_id => ack.done(),
        other => panic!("expected the report of {provider_id}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unacknowledged_report_is_sent_again_at_the_next_open() {
    let mut phone = Phone::new();
    let simulator = open(&phone, json!({"seed": 1}));
    simulator
        .send(&outgoing(1, "+1", "x"))
        .await
        .expect("accepted");
    // Received but never acknowledged: the server died before recording it.
    drop(next_event(&mut phone.events).await);
    drop(simulator);
    let _reopened = open(&phone, json!({"seed": 1}));
    acknowledge(next_event(&mut phone.events).await, "sim-1");
}

/// The reports the simulator has recorded as sent.
fn reported(phone: &Phone) -> Vec<String> {
    let text =
        std::fs::read_to_string(phone.dir.path().join("phone/reported.jsonl")).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_send_whose_report_died_with_the_process_is_reported_at_open() {
    let mut phone = Phone::new();
    let dir = phone.dir.path().join("phone");
    std::fs::create_dir_all(&dir).expect("dir");
    let logged = SimulatedSend {
        idempotency_key: "key-7".into(),
        provider_id: "sim-7".into(),
        destination: "+1".into(),
        text: "x".into(),
        at: 1,
    };
    let line = format!("{}\n", serde_json::to_string(&logged).expect("json"));
    std::fs::write(dir.join("sent.jsonl"), line).expect("log");
    let _simulator = open(&phone, json!({"seed": 1, "auto_reply": "ok"}));
    acknowledge(next_event(&mut phone.events).await, "sim-7");
    assert_no_event(&mut phone.events).await;
    let start = Instant::now();
    while reported(&phone).is_empty() && start.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(reported(&phone), ["key-7"]);
    // Reported once: a second restart sends nothing.
    let mut phone_again = phone;
    let _reopened = open(&phone_again, json!({"seed": 1}));
    assert_no_event(&mut phone_again.events).await;
}

#[tokio::test]
async fn a_restarted_simulator_remembers_what_it_sent() {
    let mut phone = Phone::new();
    let simulator = open(&phone, json!({"seed": 1}));
    let sent = simulator
        .send(&outgoing(1, "+1", "x"))
        .await
        .expect("accepted");
    acknowledge(next_event(&mut phone.events).await, "sim-1");
    let start = Instant::now();
    while reported(&phone).is_empty() && start.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(simulator);

    let restarted = open(&phone, json!({"seed": 1}));
    // Its report went out before the restart: nothing is due at open.
    assert_no_event(&mut phone.events).await;
    let mut again = outgoing(2, "+1", "x");
    again.idempotency_key = "key-1".into();
    assert_eq!(restarted.send(&again).await, Ok(sent));
    assert_eq!(log_lines(&phone).len(), 1);
    assert!(matches!(
        next_event(&mut phone.events).await,
        Event::Status { .. }
    ));
    assert_no_event(&mut phone.events).await;

    restarted
        .send(&outgoing(3, "+1", "y"))
        .await
        .expect("accepted");
    let keys: Vec<String> = load_log(&phone.dir.path().join("phone"))
        .expect("log")
        .into_iter()
        .map(|s| s.idempotency_key)
        .collect();
    assert_eq!(keys, ["key-1", "key-3"]);
}

#[tokio::test]
async fn a_log_cut_by_a_crash_loads_and_stays_well_formed() {
    let phone = Phone::new();
    let dir = phone.dir.path().join("phone");
    std::fs::create_dir_all(&dir).expect("dir");
    let whole = SimulatedSend {
        idempotency_key: "key-1".into(),
        provider_id: "sim-1".into(),
        destination: "+1".into(),
        text: "x".into(),
        at: 1_700_000_000_000,
    };
    let mut file = std::fs::File::create(dir.join("sent.jsonl")).expect("log");
    let line = serde_json::to_string(&whole).expect("json");
    write!(
        file,
        "{line}\n{{\"idempotency_key\":\"key-2\",\"provider_id\":\"si"
    )
    .expect("write");
    drop(file);
    assert_eq!(load_log(&dir).expect("log"), [whole]);

    let simulator = open(&phone, json!({"seed": 1, "dlr": 0}));
    let mut again = outgoing(1, "+1", "x");
    again.message_id = 10;
    assert_eq!(
        simulator.send(&again).await.map(|s| s.provider_id),
        Ok("sim-1".into())
    );
    // The key whose line was cut was never acknowledged: it is sent anew.
    assert_eq!(
        simulator
            .send(&outgoing(2, "+1", "y"))
            .await
            .map(|s| s.provider_id),
        Ok("sim-2".into())
    );

    let lines = log_lines(&phone);
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<SimulatedSend>(l).is_ok()),
        "{lines:?}"
    );
    let keys: Vec<String> = load_log(&dir)
        .expect("log")
        .into_iter()
        .map(|s| s.idempotency_key)
        .collect();
    assert_eq!(keys, ["key-1", "key-2"]);
}

#[tokio::test]
async fn latency_and_concurrency_come_from_the_data() {
    let phone = Phone::new();
    let channel = Channel::open(
        "adapters\\SimulatorAdapter",
        &data(json!({"latency_ms": 80, "concurrency": 3})),
        phone.ctx(),
    )
    .expect("valid data");
    assert_eq!(channel.concurrency(), 3);
    let started = Instant::now();
    channel
        .send(&outgoing(1, "+1", "x"))
        .await
        .expect("accepted");
    assert!(started.elapsed() >= Duration::from_millis(80));
}
