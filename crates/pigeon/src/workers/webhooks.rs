//! The webhook delivery worker: claims due deliveries per endpoint (at most
//! `webhook_endpoint_concurrency` in flight for one webhook or notification host and `webhook_concurrency` overall, so
//! a hanging endpoint never delays the others), POSTs them signed with Standard Webhooks
//! headers, records every attempt, and retries on the configured schedule.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use pigeon_channels::http_client;
use pigeon_core::time::Ts;
use pigeon_core::{retry, signature};
use pigeon_store::outbox::{self, Attempt, Delivery, Outcome};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppState};
use crate::services::ServiceError;

/// How much of a response body an attempt keeps.
const KEPT_BODY_BYTES: usize = 2048;
/// A claimed delivery belongs to its attempt this long.
const LEASE_MS: i64 = 5 * 60 * 1000;

pub async fn run(app: AppState, stop: CancellationToken) {
    // Events are written by many paths without a wake-up; a short poll keeps webhooks prompt
    // (the query runs on an index and answers from memory when nothing is due).
    let tick = Duration::from_millis(app.config.tick_ms.clamp(10, 250));
    if let Err(e) = outbox::reap(&app.store, Ts(i64::MAX)).await {
        tracing::error!(error = %e, "interrupted webhook deliveries could not be requeued");
    }
    let mut slots = Slots::default();
    // The claim runs as a task of its own, so that the endpoints' slots are refilled from what
    // was claimed ahead while it waits on the database.
    let mut claiming: Option<JoinHandle<Result<Claimed, ServiceError>>> = None;
    // A claim is due now when the last one found work or a slot freed, and at most every
    // WAKE_GAP on wake-ups and ticks: under load every accepted request wakes the workers,
    // and a claim per request would find nothing most of the time.
    let mut claim_now = false;
    let mut woken = true;
    let mut last_claim = Instant::now();
    loop {
        if stop.is_cancelled() {
            break;
        }
        let wake_gap_over = last_claim.elapsed() >= WAKE_GAP;
        if claiming.is_none() && (claim_now || (woken && wake_gap_over)) {
            (claim_now, woken) = (false, false);
            last_claim = Instant::now();
            claiming = Some(tokio::spawn(claim_due(app.clone(), slots.held())));
        }
        let waiting_for_gap = woken && claiming.is_none();
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = slots.inflight.join_next(), if !slots.inflight.is_empty() => {
                let mut room = slots.release(&app, done);
                while let Some(done) = slots.inflight.try_join_next() {
                    room |= slots.release(&app, done);
                }
                slots.start(&app);
                // Endpoints not held are looked for on wake-ups and when nothing is in flight.
                claim_now |= room;
            }
            claimed = async { claiming.as_mut().expect("guarded").await }, if claiming.is_some() => {
                claiming = None;
                match claimed {
                    Ok(Ok(claimed)) => {
                        claim_now |= !claimed.is_empty();
                        for (endpoint, deliveries) in claimed {
                            slots.ready.entry(endpoint).or_default().extend(deliveries);
                        }
                        slots.start(&app);
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "webhook deliveries could not be claimed"),
                    Err(e) => tracing::error!(error = %e, "the webhook claim stopped"),
                }
            }
            _ = app.wake.notified(), if !woken => woken = true,
            _ = tokio::time::sleep_until((last_claim + WAKE_GAP).into()), if waiting_for_gap => {}
            _ = tokio::time::sleep(tick) => woken = true,
        }
    }
    // What a claim under way takes is never started: taken back when the server starts again.
    if let Some(claiming) = claiming {
        let _ = claiming.await;
    }
    // Attempts under way finish (each is bounded by the request timeout); those claimed ahead
    // are taken back when the server starts again.
    while let Some(done) = slots.inflight.join_next().await {
        slots.release(&app, done);
    }
    while slots.recording.join_next().await.is_some() {}
}

/// The least time between two claims made on wake-ups or ticks.
const WAKE_GAP: Duration = Duration::from_millis(10);

/// Deliveries claimed ahead per endpoint, as a multiple of its concurrency: a claim costs a
/// commit, so when receivers answer quickly the next deliveries are at hand. Few enough that
/// the last of them starts well within its lease even against a receiver that times out.
const CLAIM_AHEAD: usize = 4;

/// The requests under way, the attempts being recorded, and the deliveries claimed for each
/// endpoint and not started yet. An endpoint's slot is free again once it has answered: the
/// record of the attempt does not hold it.
#[derive(Default)]
struct Slots {
    inflight: JoinSet<Requested>,
    busy: HashMap<String, usize>,
    ready: HashMap<String, VecDeque<Delivery>>,
    recording: JoinSet<()>,
}

/// A request that ended: its delivery, and the attempt to record (none if it could not be made).
type Requested = (Delivery, Option<Attempt>);

impl Slots {
    /// Frees the slot of a request that ended; whether its endpoint now has room for a claim.
    fn release(&mut self, app: &AppState, done: Result<Requested, tokio::task::JoinError>) -> bool {
        while self.recording.try_join_next().is_some() {}
        let Ok((delivery, attempt)) = done else {
            return false;
        };
        let endpoint = &delivery.endpoint;
        let busy = self.busy.remove(endpoint).unwrap_or(0).saturating_sub(1);
        if busy > 0 {
            self.busy.insert(endpoint.clone(), busy);
        }
        let ready = self.ready.get(endpoint).map_or(0, VecDeque::len);
        let room = worth_claiming(busy + ready, claim_ahead(app));
        if let Some(attempt) = attempt {
            let app = app.clone();
            self.recording.spawn(async move {
                if let Err(e) = record(&app, &delivery, attempt).await {
                    tracing::error!(delivery = delivery.id, error = %e, "webhook attempt not recorded");
                }
            });
        }
        room
    }

    /// Deliveries each endpoint holds: under way or claimed ahead.
    fn held(&self) -> HashMap<String, usize> {
        let mut held = self.busy.clone();
        for (endpoint, ready) in &self.ready {
            *held.entry(endpoint.clone()).or_default() += ready.len();
        }
        held
    }

    /// Starts claimed deliveries while their endpoint and the worker have room.
    fn start(&mut self, app: &AppState) {
        let per_endpoint = app.config.webhook_endpoint_concurrency.max(1);
        let global = app.config.webhook_concurrency.max(1);
        for (endpoint, ready) in &mut self.ready {
            let busy = self.busy.entry(endpoint.clone()).or_default();
            while *busy < per_endpoint && self.inflight.len() < global {
                let Some(delivery) = ready.pop_front() else {
                    break;
                };
                *busy += 1;
                let app = app.clone();
                self.inflight.spawn(async move {
                    match request(&app, &delivery).await {
                        Ok(attempt) => (delivery, Some(attempt)),
                        Err(e) => {
                            tracing::error!(delivery = delivery.id, error = %e, "webhook attempt not made");
                            (delivery, None)
                        }
                    }
                });
            }
        }
        self.ready.retain(|_, ready| !ready.is_empty());
    }
}

/// How many deliveries an endpoint holds at most.
fn claim_ahead(app: &App) -> usize {
    app.config.webhook_endpoint_concurrency.max(1) * CLAIM_AHEAD
}

/// Whether an endpoint holding `held` deliveries gets more: topped up by a quarter at least,
/// so that claims stay large.
fn worth_claiming(held: usize, ahead: usize) -> bool {
    let room = ahead.saturating_sub(held);
    room > 0 && (held == 0 || room * 4 >= ahead)
}

/// Deliveries claimed, by endpoint.
type Claimed = Vec<(String, Vec<Delivery>)>;

/// Tops up each due endpoint's claimed deliveries, given how many each holds already.
async fn claim_due(app: AppState, held: HashMap<String, usize>) -> Result<Claimed, ServiceError> {
    let now = Ts::now();
    let ahead = claim_ahead(&app);
    let mut claimed = Vec::new();
    for endpoint in outbox::due_endpoints(&app.store, now).await? {
        let held = held.get(&endpoint).copied().unwrap_or(0);
        if !worth_claiming(held, ahead) {
            continue;
        }
        let room = ahead - held;
        let lease_until = Ts(now.0 + LEASE_MS);
        let deliveries =
            outbox::claim(&app.store, &endpoint, now, lease_until, room as i64).await?;
        if !deliveries.is_empty() {
            claimed.push((endpoint, deliveries));
        }
    }
    Ok(claimed)
}

/// What the endpoint answered.
struct Answer {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
    throttled: bool,
    /// Retrying cannot help (the address is refused).
    permanent: bool,
}

/// One attempt of one delivery: the request, and the outcome it leads to.
async fn request(app: &App, d: &Delivery) -> Result<Attempt, ServiceError> {
    let started = Instant::now();
    let at = Ts::now();
    let answer = post(app, d, at).await?;
    let duration_ms = started.elapsed().as_millis() as i64;
    let succeeded = answer.status.is_some_and(|s| (200..300).contains(&s));
    let outcome = if succeeded {
        Outcome::Succeeded
    } else if answer.permanent || d.attempts > app.config.webhook_retry_ms.len() as i64 {
        Outcome::Failed
    } else {
        Outcome::Retry(next_attempt(app, d.attempts, &answer))
    };
    Ok(Attempt {
        at,
        status_code: answer.status.map(i64::from),
        duration_ms,
        response_body: answer.body,
        error: answer.error,
        outcome,
    })
}

/// Records an attempt with its outcome.
async fn record(app: &App, d: &Delivery, attempt: Attempt) -> Result<(), ServiceError> {
    let disable_after = app.config.webhook_disable_after_secs as i64 * 1000;
    if outbox::record(&app.store, d, attempt, disable_after).await? {
        // New events stop going to it at once.
        app.recent_targets.clear();
        tracing::warn!(
            webhook = d.webhook_id,
            "webhook disabled after failing for too long"
        );
    }
    Ok(())
}

/// The schedule's delay (±20 %), at least the throttle wait after a 429 or a timeout, and at
/// least what `Retry-After` asked for (within twice the scheduled delay).
fn next_attempt(app: &App, attempts: i64, answer: &Answer) -> Ts {
    let schedule: Vec<Duration> = app
        .config
        .webhook_retry_ms
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    let floor = if answer.throttled {
        Duration::from_millis(app.config.webhook_throttle_ms)
    } else {
        Duration::ZERO
    };
    let mut wait = retry::delay(
        &schedule,
        attempts.max(1) as u32,
        0.2,
        rand::random::<f64>(),
        floor,
    );
    if let Some(asked) = answer.retry_after {
        wait = wait.max(asked.min(wait * 2));
    }
    Ts(Ts::now().0 + wait.as_millis() as i64)
}

async fn post(app: &App, d: &Delivery, at: Ts) -> Result<Answer, ServiceError> {
    let request = if d.method == "GET" {
        app.outbound.get(&d.url)
    } else {
        app.outbound.post(&d.url)
    };
    let mut request = match request {
        Ok(request) => request,
        Err(blocked) => return Ok(refused(blocked.to_string())),
    };
    if !d.secret_sealed.is_empty() {
        let secret = app.key.open(&d.secret_sealed)?;
        let timestamp = at.0 / 1000;
        let signed = signature::standard(&secret, &d.event_id, timestamp, d.body.as_bytes())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        request = request
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed);
    }
    let extra: serde_json::Map<String, serde_json::Value> = d
        .headers
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    for (name, value) in &extra {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    if !d.content_type.is_empty() {
        request = request.header("content-type", &d.content_type);
    }
    let response = request
        .timeout(Duration::from_millis(app.config.webhook_timeout_ms))
        .header(
            "user-agent",
            concat!("Pigeon-Webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .body(d.body.clone())
        .send()
        .await;
    Ok(match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, Ts::now().0 / 1000));
            let body = read_some(response).await;
            Answer {
                status: Some(status),
                body,
                error: None,
                retry_after,
                throttled: status == 429,
                permanent: false,
            }
        }
        Err(e) if http_client::is_blocked_error(&e) => refused(http_client::describe(&e)),
        Err(e) => {
            let throttled = e.is_timeout();
            Answer {
                status: None,
                body: None,
                error: Some(http_client::describe(&e)),
                retry_after: None,
                throttled,
                permanent: false,
            }
        }
    })
}

fn refused(reason: String) -> Answer {
    Answer {
        status: None,
        body: None,
        error: Some(reason),
        retry_after: None,
        throttled: false,
        permanent: true,
    }
}

/// The start of a response body, without reading more of it than is kept.
async fn read_some(mut response: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < KEPT_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEPT_BODY_BYTES);
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
}

#[cfg(test)]
mod tests {
    use super::worth_claiming;

    #[test]
    fn an_endpoint_is_topped_up_by_a_quarter_at_least() {
        // 4 in flight at most, 16 held at most.
        assert!(worth_claiming(0, 16));
        assert!(worth_claiming(12, 16));
        assert!(!worth_claiming(13, 16));
        assert!(!worth_claiming(16, 16));
        assert!(!worth_claiming(20, 16));
        // With room for one only, an endpoint holding none still gets it.
        assert!(worth_claiming(0, 1));
        assert!(!worth_claiming(1, 1));
    }
}
