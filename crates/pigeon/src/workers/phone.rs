//! One sender per phone, so a slow phone only ever delays its own messages: it claims up to
//! its channel's concurrency and a quarter more ahead (so that a freed slot does not wait for
//! the next claim's commit), sends, records, and polls the phone for inbound SMS if the
//! channel is polled. The supervisor starts a worker per phone of each active account, and
//! restarts it when the phone changes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigeon_channels::{Channel, Context};
use pigeon_core::time::Ts;
use pigeon_store::phones::{self, Phone};
use pigeon_store::{queue, users};
use serde_json::{Map, Value};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppState};
use crate::services::{ServiceError, inbound, sending};

/// The running phone workers: phone id → (the phone's `updated_at` it runs with, its stop).
#[derive(Default)]
pub struct Supervisor {
    running: HashMap<i64, (i64, CancellationToken)>,
}

impl Supervisor {
    /// Starts workers for new or changed phones and stops those of deleted phones (or of
    /// suspended accounts).
    pub async fn sync(
        &mut self,
        app: &AppState,
        tracker: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<(), ServiceError> {
        let phones = phones::all_active(&app.store).await?;
        let current: HashMap<i64, i64> = phones.iter().map(|p| (p.id, p.updated_at)).collect();
        self.running.retain(|id, (updated, token)| {
            let keep = current.get(id) == Some(updated);
            if !keep {
                token.cancel();
            }
            keep
        });
        for phone in phones {
            // Device agents connect to the server; the device protocol drives their phones.
            let is_agent = pigeon_channels::find(&phone.adapter).is_some_and(|a| a.name == "agent");
            if is_agent || self.running.contains_key(&phone.id) {
                continue;
            }
            let channel = match open(app, &phone).await {
                Ok(channel) => Arc::new(channel),
                Err(e) => {
                    tracing::error!(phone = phone.id, error = %e, "phone cannot be opened; its messages wait");
                    self.running
                        .insert(phone.id, (phone.updated_at, CancellationToken::new()));
                    continue;
                }
            };
            let token = stop.child_token();
            self.running
                .insert(phone.id, (phone.updated_at, token.clone()));
            tracker.spawn(run(app.clone(), phone, channel, token));
        }
        Ok(())
    }

    pub fn stop_all(&mut self) {
        for (_, (_, token)) in self.running.drain() {
            token.cancel();
        }
    }
}

/// Opens a phone's channel with its (unsealed) adapter data.
pub async fn open(app: &App, phone: &Phone) -> Result<Channel, ServiceError> {
    let data: Map<String, Value> =
        serde_json::from_str(&app.key.open(&phone.adapter_data_sealed)?).unwrap_or_default();
    let user = users::get(&app.store, phone.user_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let api_key = app.key.open(&user.api_key_sealed)?;
    let adapter = pigeon_channels::find(&phone.adapter).map_or(phone.adapter.as_str(), |a| a.name);
    let callback = format!(
        "{}/callback/status/{adapter}/{}?api_key={api_key}",
        app.public_base, phone.id
    );
    let ctx = Context {
        phone_id: phone.id,
        data_dir: app
            .config
            .data_dir
            .join("channels")
            .join(phone.id.to_string()),
        status_callback_url: callback,
        events: app.events.clone(),
        http: app.outbound.clone(),
    };
    Channel::open(&phone.adapter, &data, ctx).map_err(|e| ServiceError::Invalid(e.to_string()))
}

/// A phone's worker loop; on stop it finishes the sends under way, and gives back those
/// claimed ahead, before returning.
async fn run(app: AppState, phone: Phone, channel: Arc<Channel>, stop: CancellationToken) {
    let tick = Duration::from_millis(app.config.tick_ms.max(10));
    let read_every = Duration::from_secs(app.config.read_interval_secs.max(1));
    let mut last_read: Option<Instant> = None;
    // A message claimed ahead starts only while half its lease is left for the send itself.
    let hold = Duration::from_millis((app.config.lease_secs.max(0) * 500) as u64);
    let mut sends = Sends::new(channel.concurrency(), hold);
    let mut claiming: Option<(usize, JoinHandle<Claimed>)> = None;
    let phone = Arc::new(phone);
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Listening from before the claim: messages routed during it are not missed.
        let routed = app.routed.notified();
        tokio::pin!(routed);
        routed.as_mut().enable();
        sends.start(&app, &channel, &phone);
        if claiming.is_none()
            && let Some(room) = sends.take_room()
        {
            let (app, phone_id) = (app.clone(), phone.id);
            let claim = tokio::spawn(async move { claim(&app, phone_id, room).await });
            claiming = Some((room, claim));
        }
        if last_read.is_none_or(|at| at.elapsed() >= read_every) {
            last_read = Some(Instant::now());
            read(&app, &phone, &channel).await;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = sends.inflight.join_next(), if !sends.inflight.is_empty() => {
                while sends.inflight.try_join_next().is_some() {}
                sends.woken();
            }
            (asked, claimed) = claim_done(&mut claiming), if claiming.is_some() => {
                claiming = None;
                sends.claimed(phone.id, claimed, asked);
            }
            _ = routed => sends.woken(),
            _ = tokio::time::sleep(tick) => sends.woken(),
        }
    }
    if let Some((_, claim)) = claiming {
        sends.claimed(phone.id, claim.await, 0);
    }
    sends.give_back(&app, phone.id).await;
    while sends.inflight.join_next().await.is_some() {}
}

type Claimed = Result<Vec<queue::Queued>, ServiceError>;

/// The outcome of the claim under way and how many it asked for; pending while there is none.
async fn claim_done(
    claiming: &mut Option<(usize, JoinHandle<Claimed>)>,
) -> (usize, Result<Claimed, JoinError>) {
    match claiming {
        Some((asked, claim)) => (*asked, claim.await),
        None => std::future::pending().await,
    }
}

/// A phone's sends: those under way, and those claimed ahead, which start as slots free up
/// instead of waiting for the next claim's commit.
struct Sends {
    inflight: JoinSet<()>,
    /// Claimed ahead, with when the claim came back.
    ready: VecDeque<(Instant, queue::Queued)>,
    concurrency: usize,
    /// How long a message claimed ahead may wait for a slot: past that it is left to its
    /// lease (which returns it to the queue) rather than sent when the lease could run out
    /// mid-send and a second claim send it again.
    hold: Duration,
    /// Whether to claim at the next chance. A claim that came back short found the queue
    /// empty: the next one waits for a reason (a routed message, a finished send, the tick)
    /// instead of spinning on the committer.
    claim_now: bool,
}

impl Sends {
    fn new(concurrency: usize, hold: Duration) -> Self {
        Sends {
            inflight: JoinSet::new(),
            ready: VecDeque::new(),
            concurrency,
            hold,
            claim_now: true,
        }
    }

    /// How many to claim now, if any (the claim is then under way): up to a quarter of the
    /// slots ahead of those free. A claim costs a commit: when sends are quick, waiting for a
    /// quarter of the slots keeps claims large instead of one message each.
    fn take_room(&mut self) -> Option<usize> {
        let held = self.inflight.len() + self.ready.len();
        let room = (self.concurrency + self.concurrency.div_ceil(4)).saturating_sub(held);
        let now = self.claim_now && room > 0 && (held == 0 || room * 4 >= self.concurrency);
        self.claim_now &= !now;
        now.then_some(room)
    }

    /// There may be something to claim again.
    fn woken(&mut self) {
        self.claim_now = true;
    }

    fn start(&mut self, app: &AppState, channel: &Arc<Channel>, phone: &Arc<Phone>) {
        while self.inflight.len() < self.concurrency {
            let Some(m) = self.next_ready() else {
                break;
            };
            let (app, channel, phone) = (app.clone(), channel.clone(), phone.clone());
            self.inflight.spawn(async move {
                if let Err(e) = sending::send(&app, &channel, &phone, &m).await {
                    tracing::error!(message = m.id, error = %e, "send not recorded; its lease will return it to the queue");
                }
            });
        }
    }

    /// The next message claimed ahead that has waited less than `hold`.
    fn next_ready(&mut self) -> Option<queue::Queued> {
        while let Some((at, m)) = self.ready.pop_front() {
            if at.elapsed() < self.hold {
                return Some(m);
            }
            tracing::warn!(
                message = m.id,
                "claimed ahead too long ago; its lease returns it to the queue"
            );
        }
        None
    }

    /// Takes in a claim of `asked` messages; claims again at once only if it got them all.
    fn claimed(&mut self, phone_id: i64, claimed: Result<Claimed, JoinError>, asked: usize) {
        let error = match claimed {
            Ok(Ok(messages)) => {
                self.claim_now |= messages.len() == asked && asked > 0;
                let at = Instant::now();
                self.ready.extend(messages.into_iter().map(|m| (at, m)));
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(phone = phone_id, error, "claim failed");
    }

    /// The messages claimed ahead go back to the queue untried; those held past `hold` are
    /// left to their lease, which may have returned them already (and another claim taken
    /// them).
    async fn give_back(&mut self, app: &App, phone_id: i64) {
        let ids: Vec<i64> = std::iter::from_fn(|| self.next_ready())
            .map(|m| m.id)
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = queue::unclaim(&app.store, ids).await {
            tracing::error!(phone = phone_id, error = %e, "claimed messages not given back; their lease will");
        }
    }
}

async fn claim(app: &App, phone_id: i64, free: usize) -> Result<Vec<queue::Queued>, ServiceError> {
    let now = Ts::now();
    let lease_until = Ts(now.0 + app.config.lease_secs * 1000);
    Ok(queue::claim(&app.store, phone_id, now, lease_until, free as i64).await?)
}

async fn read(app: &App, phone: &Phone, channel: &Channel) {
    match channel.read().await {
        Ok(messages) => {
            for sms in messages {
                if let Err(e) = inbound::receive(app, phone.id, &sms).await {
                    tracing::error!(phone = phone.id, error = %e, "inbound SMS not stored");
                }
            }
        }
        Err(e) => tracing::warn!(phone = phone.id, error = %e, "reading the phone failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_that_came_back_short_waits_for_a_reason_to_claim_again() {
        let mut sends = Sends::new(8, Duration::from_secs(3600));
        // Nothing held: the slots and a quarter more ahead.
        assert_eq!(sends.take_room(), Some(10));
        assert_eq!(sends.take_room(), None, "one claim at a time");
        sends.claimed(1, Ok(Ok(Vec::new())), 10);
        assert_eq!(
            sends.take_room(),
            None,
            "an empty queue is not claimed again at once"
        );
        sends.woken();
        assert_eq!(sends.take_room(), Some(10));
        sends.claimed(1, Ok(Err(ServiceError::NotFound)), 10);
        assert_eq!(sends.take_room(), None, "nor after a failed claim");
        sends.woken();
        assert_eq!(sends.take_room(), Some(10));
    }

    fn queued(id: i64) -> queue::Queued {
        queue::Queued {
            id,
            user_id: 1,
            phone_id: Some(1),
            phone_group_id: None,
            phone_fixed: false,
            origin: None,
            destination: Some("+33612345678".into()),
            text: "hi".into(),
            encoding: "gsm7".into(),
            segments: 1,
            flash: false,
            mms: false,
            campaign_id: None,
            tag: None,
            tries: 1,
            max_tries: 3,
            valid_until: None,
            notified: false,
        }
    }

    /// A message claimed ahead that waited half its lease for a slot is not started (its lease
    /// could run out mid-send and a later claim send it again); fresher ones are.
    #[test]
    fn a_message_claimed_ahead_too_long_ago_is_left_to_its_lease() {
        let mut fresh = Sends::new(2, Duration::from_secs(3600));
        fresh.claimed(1, Ok(Ok(vec![queued(1), queued(2)])), 2);
        assert_eq!(fresh.next_ready().map(|m| m.id), Some(1));
        assert_eq!(fresh.next_ready().map(|m| m.id), Some(2));
        assert_eq!(fresh.next_ready(), None);
        let mut stale = Sends::new(2, Duration::ZERO);
        stale.claimed(1, Ok(Ok(vec![queued(3)])), 1);
        assert_eq!(stale.next_ready(), None);
    }
}
