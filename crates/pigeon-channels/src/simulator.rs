//! A configurable phone for tests, demos and benchmarks: it accepts or fails sends at a given
//! rate, answers with delivery reports and auto-replies after a delay, and is idempotent across
//! restarts through a log of accepted sends.
//!
//! Outcomes are drawn from a hash of (seed, idempotency key, attempt), not from a shared random
//! generator, so that with a seed they do not depend on the order concurrent sends run in. The
//! attempt number (failures of that key so far, counted in memory) lets a retried message
//! eventually go through, as it would on a real phone.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pigeon_core::time::Ts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::data::flag;
use crate::{Ack, ConfigError, Context, Event, Inbound, Outgoing, Report, SendError, Sent};

const LOG: &str = "sent.jsonl";
/// Idempotency keys whose delivery report went out, one per line: at open, an accepted send
/// without one (the process died before its report) gets its report then.
const REPORTED: &str = "reported.jsonl";

/// One accepted send, as recorded in the simulator's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedSend {
    pub idempotency_key: String,
    pub provider_id: String,
    pub destination: String,
    pub text: String,
    /// Epoch milliseconds.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Config {
    success_rate: f64,
    permanent: bool,
    latency: Duration,
    dlr_delay: Duration,
    delivered_rate: f64,
    dlr: bool,
    auto_reply: String,
    seed: u64,
    concurrency: usize,
}

#[derive(Debug)]
struct State {
    log: File,
    /// Idempotency key → provider id, for every send in the log.
    sent: HashMap<String, String>,
    /// Idempotency key → simulated failures so far.
    failures: HashMap<String, u32>,
}

#[derive(Debug)]
pub struct Simulator {
    config: Config,
    phone_id: i64,
    events: mpsc::Sender<Event>,
    state: Mutex<State>,
    reported: Arc<Mutex<File>>,
}

impl Simulator {
    pub fn open(data: &Map<String, Value>, ctx: Context) -> Result<Simulator, ConfigError> {
        let config = Config::from_data(data)?;
        let dir_error = |e: std::io::Error| ConfigError::Field {
            field: "data_dir".into(),
            reason: format!(
                "cannot use the simulator log in {}: {e}",
                ctx.data_dir.display()
            ),
        };
        std::fs::create_dir_all(&ctx.data_dir).map_err(dir_error)?;
        let path = ctx.data_dir.join(LOG);
        let loaded = read_log(&path).map_err(dir_error)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(dir_error)?;
        // The next line must not be glued to a partial one a crash left behind.
        match loaded.repair {
            Repair::None => {}
            Repair::Truncate(len) => log.set_len(len).map_err(dir_error)?,
            Repair::Newline => log.write_all(b"\n").map_err(dir_error)?,
        }
        let mut sent = HashMap::new();
        for entry in &loaded.sends {
            sent.entry(entry.idempotency_key.clone())
                .or_insert(entry.provider_id.clone());
        }
        let reported_path = ctx.data_dir.join(REPORTED);
        let already: std::collections::HashSet<String> = std::fs::read_to_string(&reported_path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let reported = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&reported_path)
            .map_err(dir_error)?;
        let simulator = Simulator {
            config,
            phone_id: ctx.phone_id,
            events: ctx.events,
            state: Mutex::new(State {
                log,
                sent,
                failures: HashMap::new(),
            }),
            reported: Arc::new(Mutex::new(reported)),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            for entry in loaded
                .sends
                .iter()
                .filter(|e| !already.contains(&e.idempotency_key))
            {
                simulator.schedule_events(
                    &entry.idempotency_key,
                    &entry.provider_id,
                    &entry.destination,
                    false,
                );
            }
        }
        Ok(simulator)
    }

    pub async fn send(&self, m: &Outgoing) -> Result<Sent, SendError> {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        // An empty key would make every keyless message a repeat of the first one.
        let key = if m.idempotency_key.is_empty() {
            format!("message-{}", m.message_id)
        } else {
            m.idempotency_key.clone()
        };
        let provider_id = {
            // Held across the append so that two sends of one key cannot both be recorded; the
            // append is one short write to the page cache, cheaper than a blocking-pool hop.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(provider_id) = state.sent.get(&key).cloned() {
                // A repeat after a crash: the report may have died with the process, so it is
                // sent again (reports only move a message forward, so a second one is harmless).
                drop(state);
                self.schedule_events(&key, &provider_id, &m.destination, false);
                return Ok(Sent { provider_id });
            }
            let attempt = state.failures.get(&key).copied().unwrap_or(0);
            if draw(self.config.seed, &key, attempt, Purpose::Accept) >= self.config.success_rate {
                let failures = state.failures.entry(key).or_default();
                *failures = failures.saturating_add(1);
                let reason = "simulated failure".to_string();
                return Err(if self.config.permanent {
                    SendError::Permanent(reason)
                } else {
                    SendError::Transient(reason)
                });
            }
            let provider_id = format!("sim-{}", m.message_id);
            let entry = SimulatedSend {
                idempotency_key: key.clone(),
                provider_id: provider_id.clone(),
                destination: m.destination.clone(),
                text: m.text.clone(),
                at: Ts::now().0,
            };
            let record_error =
                |e: String| SendError::Transient(format!("simulator: cannot record the send: {e}"));
            let mut line = serde_json::to_vec(&entry).map_err(|e| record_error(e.to_string()))?;
            line.push(b'\n');
            // One write per line (the file is O_APPEND): a kill leaves at most a partial last line.
            state
                .log
                .write_all(&line)
                .map_err(|e| record_error(e.to_string()))?;
            state.failures.remove(&key);
            state.sent.insert(key.clone(), provider_id.clone());
            provider_id
        };
        self.schedule_events(&key, &provider_id, &m.destination, true);
        Ok(Sent { provider_id })
    }

    pub fn concurrency(&self) -> usize {
        self.config.concurrency
    }

    /// The delivery report (and, with `reply`, the auto-reply) of an accepted send, after
    /// `dlr_delay_ms`.
    fn schedule_events(&self, key: &str, provider_id: &str, destination: &str, reply: bool) {
        let config = &self.config;
        let report = config.dlr.then(|| {
            if draw(config.seed, key, 0, Purpose::Deliver) < config.delivered_rate {
                Report::Delivered
            } else {
                Report::Undelivered
            }
        });
        let reply = (reply && !config.auto_reply.is_empty()).then(|| config.auto_reply.clone());
        if report.is_none() && reply.is_none() {
            return;
        }
        let (events, phone_id, delay) = (self.events.clone(), self.phone_id, config.dlr_delay);
        let (provider_id, origin) = (provider_id.to_string(), destination.to_string());
        let (reported, key) = (self.reported.clone(), key.to_string());
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // A closed receiver means the server is shutting down: nobody is left to tell.
            let mut acknowledged = None;
            if let Some(report) = report {
                let (ack, waiting) = Ack::new();
                let event = Event::Status {
                    phone_id,
                    provider_id,
                    report,
                    ack,
                };
                if events.send(event).await.is_err() {
                    return;
                }
                acknowledged = Some(waiting);
            }
            if let Some(text) = reply {
                let sms = Inbound {
                    origin,
                    text,
                    at: Ts::now(),
                };
                let _ = events.send(Event::Inbound { phone_id, sms }).await;
            }
            // Recorded as reported only once the services say they recorded it, so a report
            // lost in a crash is sent again at the next open.
            if let Some(waiting) = acknowledged
                && waiting.await.is_ok()
            {
                let mut file = reported.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = file.write_all(format!("{key}\n").as_bytes()) {
                    tracing::warn!(error = %e, "simulator: cannot record a sent report");
                }
            }
        });
    }
}

/// Every accepted send recorded in a simulator's log directory, one entry per idempotency key
/// (the first), in log order; a partial last line is ignored.
pub fn load_log(data_dir: &Path) -> std::io::Result<Vec<SimulatedSend>> {
    let mut seen = std::collections::HashSet::new();
    let sends = read_log(&data_dir.join(LOG))?.sends;
    Ok(sends
        .into_iter()
        .filter(|s| seen.insert(s.idempotency_key.clone()))
        .collect())
}

#[derive(Debug, PartialEq, Eq)]
enum Repair {
    None,
    /// Cut an unreadable partial last line off at this length.
    Truncate(u64),
    /// The last entry is whole but its newline was not written.
    Newline,
}

#[derive(Debug)]
struct Loaded {
    sends: Vec<SimulatedSend>,
    repair: Repair,
}

fn read_log(path: &Path) -> std::io::Result<Loaded> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_log(&bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Loaded {
            sends: Vec::new(),
            repair: Repair::None,
        }),
        Err(e) => Err(e),
    }
}

fn parse_log(bytes: &[u8]) -> Loaded {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let (lines, tail) = bytes.split_at(complete);
    let mut sends = Vec::new();
    for (index, line) in lines.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<SimulatedSend>(line) {
            Ok(entry) => sends.push(entry),
            Err(e) => {
                tracing::warn!(line = index + 1, error = %e, "simulator: skipping a bad {LOG} line")
            }
        }
    }
    let repair = if tail.is_empty() {
        Repair::None
    } else if let Ok(entry) = serde_json::from_slice::<SimulatedSend>(tail) {
        sends.push(entry);
        Repair::Newline
    } else {
        tracing::warn!("simulator: dropping the partial last line of {LOG} (interrupted write)");
        Repair::Truncate(complete as u64)
    };
    Loaded { sends, repair }
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Accept = 1,
    Deliver = 2,
}

/// A uniform number in [0, 1) from (seed, key, attempt, purpose): FNV-1a over the key, started
/// from the mixed seed, finished with SplitMix64 (stable, unlike std's hasher).
fn draw(seed: u64, key: &str, attempt: u32, purpose: Purpose) -> f64 {
    let mut hash = splitmix64(seed) ^ 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mixed = splitmix64(splitmix64(hash) ^ (u64::from(attempt) << 8 | purpose as u64));
    // The top 53 bits make an exact f64 in [0, 1).
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Config {
    fn from_data(data: &Map<String, Value>) -> Result<Config, ConfigError> {
        let failure = match text(data, "failure")?
            .map(|f| f.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("transient") => false,
            Some("permanent") => true,
            Some(_) => return Err(bad("failure", "must be `transient` or `permanent`")),
        };
        let seed = match integer(data, "seed")? {
            Some(seed) if seed != 0 => seed,
            _ => rand::random(),
        };
        let concurrency = integer(data, "concurrency")?.unwrap_or(64);
        let concurrency = usize::try_from(concurrency)
            .ok()
            .filter(|c| (1..=100_000).contains(c))
            .ok_or_else(|| bad("concurrency", "must be between 1 and 100000"))?;
        Ok(Config {
            success_rate: rate(data, "success_rate")?,
            permanent: failure,
            latency: Duration::from_millis(integer(data, "latency_ms")?.unwrap_or(0)),
            dlr_delay: Duration::from_millis(integer(data, "dlr_delay_ms")?.unwrap_or(0)),
            delivered_rate: rate(data, "delivered_rate")?,
            dlr: flag(data, "dlr")?.unwrap_or(true),
            auto_reply: text(data, "auto_reply")?.unwrap_or_default(),
            seed,
            concurrency,
        })
    }
}

fn bad(field: &str, reason: &str) -> ConfigError {
    ConfigError::Field {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// A set field: absent, null and blank (what an empty form field gives) mean the default.
fn value<'a>(data: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match data.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(v),
    }
}

fn rate(data: &Map<String, Value>, name: &str) -> Result<f64, ConfigError> {
    let Some(v) = value(data, name) else {
        return Ok(1.0);
    };
    let rate = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    // NaN fails `contains` too.
    rate.filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| bad(name, "must be a number between 0 and 1"))
}

fn integer(data: &Map<String, Value>, name: &str) -> Result<Option<u64>, ConfigError> {
    let Some(v) = value(data, name) else {
        return Ok(None);
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.map(Some)
        .ok_or_else(|| bad(name, "must be a non-negative integer"))
}

fn text(data: &Map<String, Value>, name: &str) -> Result<Option<String>, ConfigError> {
    match value(data, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(name, "must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn field_of(result: Result<Config, ConfigError>) -> Option<String> {
        match result {
            Err(ConfigError::Field { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn defaults() {
        let config = Config::from_data(&Map::new()).expect("empty data is valid");
        assert_eq!(config.success_rate, 1.0);
        assert!(!config.permanent);
        assert_eq!(config.latency, Duration::ZERO);
        assert_eq!(config.dlr_delay, Duration::ZERO);
        assert_eq!(config.delivered_rate, 1.0);
        assert!(config.dlr);
        assert_eq!(config.auto_reply, "");
        assert_eq!(config.concurrency, 64);
    }

    #[test]
    fn values_may_be_numbers_or_strings() {
        let from_numbers = json!({
            "success_rate": 0.25, "failure": "permanent", "latency_ms": 5, "dlr_delay_ms": 7,
            "delivered_rate": 0.5, "dlr": 0, "auto_reply": "pong", "seed": 42, "concurrency": 3,
        });
        let from_strings = json!({
            "success_rate": "0.25", "failure": "Permanent", "latency_ms": "5", "dlr_delay_ms": " 7",
            "delivered_rate": ".5", "dlr": "0", "auto_reply": "pong", "seed": "42", "concurrency": "3",
        });
        let a = Config::from_data(&data(from_numbers)).expect("valid");
        let b = Config::from_data(&data(from_strings)).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.success_rate, 0.25);
        assert!(a.permanent && !a.dlr);
        assert_eq!(
            (a.latency, a.dlr_delay),
            (Duration::from_millis(5), Duration::from_millis(7))
        );
        assert_eq!((a.seed, a.concurrency), (42, 3));
    }

    #[test]
    fn blank_and_null_mean_default() {
        let config =
            Config::from_data(&data(json!({"success_rate": "", "dlr": null, "seed": " "})))
                .expect("valid");
        assert_eq!(config.success_rate, 1.0);
        assert!(config.dlr);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (json!({"success_rate": 1.5}), "success_rate"),
            (json!({"success_rate": "half"}), "success_rate"),
            (json!({"success_rate": "NaN"}), "success_rate"),
            (json!({"delivered_rate": -0.1}), "delivered_rate"),
            (json!({"failure": "sometimes"}), "failure"),
            (json!({"latency_ms": -1}), "latency_ms"),
            (json!({"dlr_delay_ms": 1.5}), "dlr_delay_ms"),
            (json!({"dlr": "yes"}), "dlr"),
            (json!({"dlr": 2}), "dlr"),
            (json!({"auto_reply": 3}), "auto_reply"),
            (json!({"seed": "x"}), "seed"),
            (json!({"concurrency": 0}), "concurrency"),
            (json!({"concurrency": [1]}), "concurrency"),
        ];
        for (input, field) in cases {
            assert_eq!(
                field_of(Config::from_data(&data(input.clone()))).as_deref(),
                Some(field),
                "{input}"
            );
        }
    }

    #[test]
    fn zero_seed_draws_one_from_entropy() {
        let a = Config::from_data(&data(json!({"seed": 0}))).expect("valid");
        let b = Config::from_data(&data(json!({"seed": 0}))).expect("valid");
        assert_ne!(a.seed, b.seed);
    }

    #[test]
    fn draw_is_a_stable_uniform_function_of_its_inputs() {
        assert_eq!(
            draw(7, "k", 0, Purpose::Accept),
            draw(7, "k", 0, Purpose::Accept)
        );
        assert_ne!(
            draw(7, "k", 0, Purpose::Accept),
            draw(8, "k", 0, Purpose::Accept)
        );
        assert_ne!(
            draw(7, "k", 0, Purpose::Accept),
            draw(7, "k2", 0, Purpose::Accept)
        );
        assert_ne!(
            draw(7, "k", 0, Purpose::Accept),
            draw(7, "k", 1, Purpose::Accept)
        );
        assert_ne!(
            draw(7, "k", 0, Purpose::Accept),
            draw(7, "k", 0, Purpose::Deliver)
        );
        let draws: Vec<f64> = (0..10_000)
            .map(|i| draw(1, &format!("key-{i}"), 0, Purpose::Accept))
            .collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        for decile in 0..10 {
            let low = f64::from(decile) / 10.0;
            let count = draws
                .iter()
                .filter(|d| (low..low + 0.1).contains(*d))
                .count();
            // Expected 1000, standard deviation 30.
            assert!((850..1150).contains(&count), "decile {decile}: {count}");
        }
    }

    fn entry_line(key: &str) -> String {
        format!(
            "{{\"idempotency_key\":\"{key}\",\"provider_id\":\"sim-1\",\"destination\":\"+1\",\"text\":\"t\",\"at\":1}}"
        )
    }

    #[test]
    fn log_tolerates_a_partial_last_line() {
        let whole = format!("{}\n{}\n", entry_line("a"), entry_line("b"));
        let loaded = parse_log(whole.as_bytes());
        assert_eq!((loaded.sends.len(), loaded.repair), (2, Repair::None));

        let partial = format!("{whole}{{\"idempotency_key\":\"c\",\"provi");
        let loaded = parse_log(partial.as_bytes());
        assert_eq!(loaded.sends.len(), 2);
        assert_eq!(loaded.repair, Repair::Truncate(whole.len() as u64));

        let no_newline = format!("{whole}{}", entry_line("c"));
        let loaded = parse_log(no_newline.as_bytes());
        assert_eq!((loaded.sends.len(), loaded.repair), (3, Repair::Newline));

        let only_partial = parse_log(b"{\"idem");
        assert_eq!(
            (only_partial.sends.len(), only_partial.repair),
            (0, Repair::Truncate(0))
        );
    }

    #[test]
    fn log_skips_a_damaged_middle_line() {
        let log = format!("{}\ngarbage\n{}\n", entry_line("a"), entry_line("b"));
        let loaded = parse_log(log.as_bytes());
        let keys: Vec<&str> = loaded
            .sends
            .iter()
            .map(|s| s.idempotency_key.as_str())
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
