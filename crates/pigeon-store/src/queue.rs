//! The send queue: campaigns due for dispatch, and outbound messages claimed with a lease.
//!
//! A due campaign becomes its messages in one transaction, so a crash never dispatches it twice
//! or half. A sender claims queued messages of one phone (`sending`, with a lease), calls the
//! channel outside any transaction, then records the result; a lease that runs out (the server
//! died mid-send) puts the message back in the queue.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use crate::campaigns::Campaign;
use crate::group::{execute, insert_id, row, rows};
use crate::message_counts::NewCounts;
use crate::messages::{Detailed, Item, history};
use crate::outbox::{self, NewDelivery};
use crate::{Result, Store, StoreError, Ts, placeholders};

/// One message a dispatch creates.
#[derive(Debug, Clone, Default)]
pub struct NewOutbound {
    pub destination: String,
    pub text: String,
    pub encoding: &'static str,
    pub segments: i64,
    pub phone_id: Option<i64>,
    pub media: Vec<i64>,
}

/// What every message of one dispatch shares.
#[derive(Debug, Clone, Default)]
pub struct Dispatch {
    pub campaign_id: i64,
    pub user_id: i64,
    pub phone_group_id: Option<i64>,
    pub phone_fixed: bool,
    pub flash: bool,
    pub mms: bool,
    pub tag: Option<String>,
    pub max_tries: i64,
    pub valid_until: Ts,
}

/// A message in the send queue.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Queued {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: Option<i64>,
    pub phone_group_id: Option<i64>,
    pub phone_fixed: bool,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub text: String,
    pub encoding: String,
    pub segments: i64,
    pub flash: bool,
    pub mms: bool,
    pub campaign_id: Option<i64>,
    pub tag: Option<String>,
    pub tries: i64,
    pub max_tries: i64,
    pub valid_until: Option<i64>,
    /// It asked for notifications (an API's callback URL).
    pub notified: bool,
}

impl Queued {
    /// A row of [`queued_columns`], in their order.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Queued> {
        Ok(Queued {
            id: r.get(0)?,
            user_id: r.get(1)?,
            phone_id: r.get(2)?,
            phone_group_id: r.get(3)?,
            phone_fixed: r.get(4)?,
            origin: r.get(5)?,
            destination: r.get(6)?,
            text: r.get(7)?,
            encoding: r.get(8)?,
            segments: r.get(9)?,
            flash: r.get(10)?,
            mms: r.get(11)?,
            campaign_id: r.get(12)?,
            tag: r.get(13)?,
            tries: r.get(14)?,
            max_tries: r.get(15)?,
            valid_until: r.get(16)?,
            notified: r.get(17)?,
        })
    }
}

macro_rules! queued_columns {
    () => {
        "id, user_id, phone_id, phone_group_id, phone_fixed, origin, destination, text, encoding, segments, flash, mms, \
         campaign_id, tag, tries, max_tries, valid_until, (callback_url IS NOT NULL AND callback_url <> '') AS notified"
    };
}

const DUE_CAMPAIGNS: &str = "SELECT c.id, c.user_id, c.text, c.at, c.phone_id, c.phone_group_id, \
    c.flash, c.mms, c.tag, c.status, c.created_at, c.updated_at FROM campaigns c JOIN users u ON u.id = c.user_id \
    WHERE c.status = 'scheduled' AND c.at <= $1 AND u.status = 'active' ORDER BY c.at, c.id LIMIT $2";

/// Campaigns due now whose owner is active, oldest first.
pub async fn due_campaigns(store: &Store, now: Ts, limit: i64) -> Result<Vec<Campaign>> {
    store
        .read_direct(move |conn| rows(conn, DUE_CAMPAIGNS, &[&now.0, &limit], Campaign::read))
        .await
}

/// Turns a campaign into its messages, in one transaction; `false` when it was already
/// dispatched or deleted meanwhile (nothing is written then).
async fn dispatch(store: &Store, d: &Dispatch, messages: &[NewOutbound]) -> Result<bool> {
    let (d, messages) = (d.clone(), messages.to_vec());
    store
        .grouped(move |conn| {
            let mut counts = NewCounts::default();
            let taken = dispatch_in(conn, &d, &messages, &mut counts)?;
            counts.write(conn)?;
            Ok(taken)
        })
        .await
}

/// Several campaigns' dispatches as one write (a scheduler pass's): whether each was taken.
/// One write for all saves a savepoint and a hand-off to the committer per campaign; if one
/// of them fails, each goes again alone, so that only the failing one fails (as an error).
/// (A savepoint per campaign inside the write would journal the same pages once per
/// campaign: the committer's CPU at 11,000 sends/s went from 4.3 to 5.3 s per 10 s.)
pub async fn dispatch_all(
    store: &Store,
    dispatches: Arc<Vec<(Dispatch, Vec<NewOutbound>)>>,
) -> Result<Vec<bool>> {
    let all = dispatches.clone();
    let together = store
        .grouped(move |conn| {
            let mut counts = NewCounts::default();
            let taken = all
                .iter()
                .map(|(d, messages)| dispatch_in(conn, d, messages, &mut counts))
                .collect::<Result<Vec<bool>>>()?;
            counts.write(conn)?;
            Ok(taken)
        })
        .await;
    match together {
        Ok(taken) => Ok(taken),
        // The group itself failed (its commit or flush, or the store closed): its writes may
        // be on disk already, and going again would hide the failure behind "already taken".
        Err(e @ (StoreError::Group(_) | StoreError::Closed)) => Err(e),
        Err(_) => {
            futures_util::future::try_join_all(
                dispatches
                    .iter()
                    .map(|(d, messages)| dispatch(store, d, messages)),
            )
            .await
        }
    }
}

/// One campaign's dispatch; the messages it inserts are added to `counts`, which the caller
/// writes once for the whole write (one upsert per key, not per campaign).
fn dispatch_in(
    conn: &Connection,
    d: &Dispatch,
    messages: &[NewOutbound],
    counts: &mut NewCounts<'static>,
) -> Result<bool> {
    let now = Ts::now().0;
    let taken = execute(
        conn,
        "UPDATE campaigns SET status = 'dispatched', updated_at = $1 WHERE id = $2 AND status = 'scheduled'",
        &[&now, &d.campaign_id],
    )?;
    if taken == 0 {
        return Ok(false);
    }
    for m in messages {
        let id = insert_id(
            conn,
            "INSERT INTO messages (user_id, phone_id, phone_group_id, phone_fixed, direction, destination, text, \
             encoding, segments, flash, mms, status, initial_status, campaign_id, tag, valid_until, max_tries, tries, \
             next_try_at, at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'outbound', $5, $6, $7, $8, $9, $10, 'queued', 'queued', $11, $12, $13, $14, 0, $15, $15, \
             $15, $15)",
            &[
                &d.user_id,
                &m.phone_id,
                &d.phone_group_id,
                &d.phone_fixed,
                &m.destination,
                &m.text,
                &m.encoding,
                &m.segments,
                &d.flash,
                &d.mms,
                &d.campaign_id,
                &d.tag,
                &d.valid_until.0,
                &d.max_tries,
                &now,
            ],
        )?;
        counts.add(d.user_id, m.phone_id, "outbound", "queued");
        for media in &m.media {
            execute(
                conn,
                "INSERT INTO message_media (message_id, media_id) VALUES ($1, $2)",
                &[&id, media],
            )?;
        }
    }
    Ok(true)
}

const CLAIM: &str = concat!(
    "UPDATE messages SET status = 'sending', lease_until = $1, tries = tries + 1, updated_at = $2 \
     WHERE id IN (SELECT id FROM messages WHERE status = 'queued' AND phone_id = $3 AND next_try_at <= $2 \
     AND (valid_until IS NULL OR valid_until >= $2) ORDER BY next_try_at, id LIMIT $4) RETURNING ",
    queued_columns!()
);

/// Claims up to `limit` due messages of a phone: they become `sending` until `lease_until`,
/// and count one more try.
pub async fn claim(
    store: &Store,
    phone_id: i64,
    now: Ts,
    lease_until: Ts,
    limit: i64,
) -> Result<Vec<Queued>> {
    let mut claimed: Vec<Queued> = store
        .grouped(move |conn| {
            rows(
                conn,
                CLAIM,
                &[&lease_until.0, &now.0, &phone_id, &limit],
                Queued::read,
            )
        })
        .await?;
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// Gives back claimed messages that were never handed to their channel (a phone worker
/// stopping with sends claimed ahead): queued again, their try not counted.
pub async fn unclaim(store: &Store, ids: Vec<i64>) -> Result<()> {
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            for id in &ids {
                execute(
                    conn,
                    "UPDATE messages SET status = 'queued', lease_until = NULL, tries = tries - 1, updated_at = $1 \
                     WHERE id = $2 AND status = 'sending'",
                    &[&now, id],
                )?;
            }
            Ok(())
        })
        .await
}

const UNASSIGNED: &str = concat!(
    "SELECT ",
    queued_columns!(),
    " FROM messages WHERE status = 'queued' AND phone_id IS NULL ORDER BY id LIMIT $1"
);

/// Queued messages without a usable phone yet (none was free at dispatch, or theirs is gone).
pub async fn unassigned(store: &Store, limit: i64) -> Result<Vec<Queued>> {
    store
        .read_direct(move |conn| rows(conn, UNASSIGNED, &[&limit], Queued::read))
        .await
}

/// Gives queued messages a phone each (or takes it away with `None`), in one write.
pub async fn assign(store: &Store, assignments: Vec<(i64, Option<i64>)>) -> Result<()> {
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            for &(id, phone_id) in &assignments {
                execute(
                    conn,
                    "UPDATE messages SET phone_id = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'",
                    &[&phone_id, &now, &id],
                )?;
            }
            Ok(())
        })
        .await
}

/// What a send attempt ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent {
        provider_id: String,
        adapter: &'static str,
    },
    /// Back to the queue from `at`, on `phone_id` (`None`: to be routed to a phone again);
    /// `attempted` is false when the channel was not even called, and the try is given back.
    Retry {
        at: Ts,
        phone_id: Option<i64>,
        error: String,
        attempted: bool,
    },
    Failed {
        error: String,
    },
}

/// Records the end of a claimed send with the webhook deliveries it causes; `false` when the
/// claim was lost (the lease ran out and the message was claimed again), in which case nothing
/// is written.
pub async fn record(
    store: &Store,
    id: i64,
    attempt: Attempt,
    deliveries: Vec<NewDelivery>,
) -> Result<bool> {
    store
        .grouped(move |conn| record_in(conn, id, &attempt, &deliveries))
        .await
}

fn record_in(
    conn: &Connection,
    id: i64,
    attempt: &Attempt,
    deliveries: &[NewDelivery],
) -> Result<bool> {
    let now = Ts::now().0;
    let (status, detail, done) = match attempt {
        Attempt::Sent {
            provider_id,
            adapter,
        } => {
            let done = execute(
                conn,
                "UPDATE messages SET status = 'sent', provider_id = $1, adapter = $2, lease_until = NULL, \
                 error_text = NULL, at = $3, updated_at = $3 WHERE id = $4 AND status = 'sending'",
                &[provider_id, adapter, &now, &id],
            )?;
            ("sent", Some(provider_id.as_str()), done)
        }
        Attempt::Retry {
            at,
            phone_id,
            error,
            attempted,
        } => {
            let given_back: i64 = if *attempted { 0 } else { 1 };
            let done = execute(
                conn,
                "UPDATE messages SET status = 'queued', next_try_at = $1, phone_id = $2, \
                 lease_until = NULL, error_text = $3, updated_at = $4, tries = tries - $6 \
                 WHERE id = $5 AND status = 'sending'",
                &[&at.0, phone_id, error, &now, &id, &given_back],
            )?;
            ("queued", Some(error.as_str()), done)
        }
        Attempt::Failed { error } => {
            let done = execute(
                conn,
                "UPDATE messages SET status = 'failed', lease_until = NULL, error_text = $1, at = $2, updated_at = $2 \
                 WHERE id = $3 AND status = 'sending'",
                &[error, &now, &id],
            )?;
            ("failed", Some(error.as_str()), done)
        }
    };
    if done == 0 {
        return Ok(false);
    }
    history(conn, id, status, detail, now)?;
    outbox::insert(conn, deliveries, now)?;
    Ok(true)
}

/// Moves every message `select` finds (it binds `now` as `$1`) to `to`, with a history row each
/// and the deliveries `notify` has for it.
async fn sweep(
    store: &Store,
    select: &'static str,
    to: &'static str,
    detail: &'static str,
    now: Ts,
    notify: &HashMap<i64, Vec<NewDelivery>>,
) -> Result<u64> {
    let notify = notify.clone();
    store
        .grouped(move |conn| {
            let ids = rows(conn, select, &[&now.0], |r| r.get::<_, i64>(0))?;
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "UPDATE messages SET status = $1, lease_until = NULL, updated_at = $2 WHERE id IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![&to, &now.0];
                params.extend(chunk.iter().map(|id| id as &dyn rusqlite::ToSql));
                execute(conn, &sql, &params)?;
                for id in chunk {
                    history(conn, *id, to, Some(detail), now.0)?;
                    if let Some(deliveries) = notify.get(id) {
                        outbox::insert(conn, deliveries, now.0)?;
                    }
                }
            }
            Ok(ids.len() as u64)
        })
        .await
}

const EXPIRE: &str = "SELECT id FROM messages WHERE status = 'queued' AND valid_until IS NOT NULL AND valid_until < $1";

/// Queued messages past their validity become `expired`, with the notifications prepared for
/// them (see [`expiring_notified`]).
pub async fn expire(
    store: &Store,
    now: Ts,
    notify: &HashMap<i64, Vec<NewDelivery>>,
) -> Result<u64> {
    sweep(
        store,
        EXPIRE,
        "expired",
        "validity period exceeded",
        now,
        notify,
    )
    .await
}

const RELEASE: &str = "SELECT id FROM messages WHERE status = 'scheduled' AND next_try_at <= $1";

/// Scheduled messages whose time has come join the queue, with the notifications prepared for
/// them (see [`releasing_notified`]).
pub async fn release(
    store: &Store,
    now: Ts,
    notify: &HashMap<i64, Vec<NewDelivery>>,
) -> Result<u64> {
    sweep(
        store,
        RELEASE,
        "queued",
        "scheduled time reached",
        now,
        notify,
    )
    .await
}

const REAP: &str = "SELECT id FROM messages WHERE status = 'sending' AND lease_until < $1";

/// Sends whose lease ran out (the server stopped mid-send) go back to the queue.
pub async fn reap(store: &Store, now: Ts) -> Result<u64> {
    sweep(
        store,
        REAP,
        "queued",
        "lease expired: the send may not have completed",
        now,
        &HashMap::new(),
    )
    .await
}

/// A message [`enqueue_all`] stored: its id and creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub created_at: i64,
}

/// One message sent outside any campaign, through an API (Astandes, Reach): through a phone it
/// may leave for another of the same kind if that one fails, or routed like a campaign's.
#[derive(Debug, Clone)]
pub struct Single {
    pub user_id: i64,
    /// The API that created it (`astandes`, `reach`).
    pub api: &'static str,
    pub phone_id: Option<i64>,
    /// It goes through that phone only (no failover).
    pub phone_fixed: bool,
    pub flash: bool,
    /// The sender the client asked for.
    pub origin: Option<String>,
    pub destination: String,
    pub text: String,
    pub encoding: &'static str,
    pub segments: i64,
    pub max_tries: i64,
    pub valid_until: Ts,
    pub client_ref: Option<String>,
    pub callback_url: Option<String>,
    /// A group of messages the client names (Reach's `bulkIdentifier`).
    pub tag: Option<String>,
    /// When to send it, if later (it is `scheduled` until then).
    pub scheduled: Option<Ts>,
    /// Why it fails at once (a price above the client's maximum), if it does: (code, text).
    pub error: Option<(String, String)>,
}

impl Single {
    /// The message as [`enqueue_all`] stored it, for the APIs' answers.
    pub fn item(&self, stored: Stored) -> Item {
        let (error_code, error_text) = self.error.clone().unzip();
        Item {
            id: stored.id,
            user_id: self.user_id,
            phone_id: self.phone_id,
            direction: "outbound".into(),
            origin: self.origin.clone(),
            destination: Some(self.destination.clone()),
            text: self.text.clone(),
            segments: self.segments,
            status: self.status().into(),
            tag: self.tag.clone(),
            api: Some(self.api.into()),
            callback_url: self.callback_url.clone(),
            error_code,
            error_text,
            at: self.scheduled.map_or(stored.created_at, |t| t.0),
            sent_at: None,
            delivered_at: None,
            created_at: stored.created_at,
            updated_at: stored.created_at,
        }
    }

    /// [`Single::item`] with the fields of [`Detailed`].
    pub fn detailed(&self, stored: Stored) -> Detailed {
        Detailed {
            id: stored.id,
            user_id: self.user_id,
            phone_id: self.phone_id,
            direction: "outbound".into(),
            origin: self.origin.clone(),
            destination: Some(self.destination.clone()),
            text: self.text.clone(),
            status: self.status().into(),
            client_ref: self.client_ref.clone(),
            callback_url: self.callback_url.clone(),
            valid_until: Some(self.valid_until.0),
            max_tries: self.max_tries,
            tries: 0,
            error_code: self.error.as_ref().map(|(code, _)| code.clone()),
            created_at: stored.created_at,
            updated_at: stored.created_at,
        }
    }

    /// Its first status.
    pub fn status(&self) -> &'static str {
        match (&self.error, self.scheduled) {
            (Some(_), _) => "failed",
            (None, Some(_)) => "scheduled",
            (None, None) => "queued",
        }
    }
}

/// Stores messages in one transaction, each with its first status as its initial status.
/// `deliveries` renders the notifications of each (index, id, creation time) with it.
pub async fn enqueue_all(
    store: &Store,
    messages: &[Single],
    deliveries: impl Fn(usize, i64, i64) -> Vec<NewDelivery> + Send + 'static,
) -> Result<Vec<Stored>> {
    let messages = messages.to_vec();
    store
        .grouped(move |conn| insert_all(conn, &messages, &deliveries))
        .await
}

fn insert_all(
    conn: &Connection,
    messages: &[Single],
    deliveries: impl Fn(usize, i64, i64) -> Vec<NewDelivery>,
) -> Result<Vec<Stored>> {
    let now = Ts::now().0;
    let mut stored = Vec::with_capacity(messages.len());
    let mut counts = NewCounts::default();
    for (index, m) in messages.iter().enumerate() {
        let at = m.scheduled.map_or(now, |t| t.0);
        let (error_code, error_text) = match &m.error {
            Some((code, text)) => (Some(code.as_str()), Some(text.as_str())),
            None => (None, None),
        };
        let id = insert_id(
            conn,
            "INSERT INTO messages (user_id, api, phone_id, phone_fixed, flash, direction, origin, destination, text, encoding, \
             segments, status, initial_status, client_ref, callback_url, tag, error_code, error_text, valid_until, max_tries, \
             tries, next_try_at, at, created_at, updated_at) \
             VALUES ($1, $2, $3, $19, $20, 'outbound', $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, \
             $17, $18, $18)",
            &[
                &m.user_id,
                &m.api,
                &m.phone_id,
                &m.origin,
                &m.destination,
                &m.text,
                &m.encoding,
                &m.segments,
                &m.status(),
                &m.client_ref,
                &m.callback_url,
                &m.tag,
                &error_code,
                &error_text,
                &m.valid_until.0,
                &m.max_tries,
                &at,
                &now,
                &m.phone_fixed,
                &m.flash,
            ],
        )?;
        counts.add(m.user_id, m.phone_id, "outbound", m.status());
        outbox::insert(conn, &deliveries(index, id, now), now)?;
        stored.push(Stored {
            id,
            created_at: now,
        });
    }
    counts.write(conn)?;
    Ok(stored)
}

/// Cancels a message of the user that has not been handed to a channel yet, with the
/// deliveries its change causes.
pub async fn cancel(
    store: &Store,
    user_id: i64,
    id: i64,
    why: &str,
    deliveries: &[NewDelivery],
) -> Result<bool> {
    let (why, deliveries) = (why.to_string(), deliveries.to_vec());
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            let done = execute(
                conn,
                "UPDATE messages SET status = 'canceled', updated_at = $1 WHERE id = $2 AND user_id = $3 \
                 AND status IN ('scheduled', 'queued')",
                &[&now, &id, &user_id],
            )?;
            if done == 0 {
                return Ok(false);
            }
            history(conn, id, "canceled", Some(&why), now)?;
            outbox::insert(conn, &deliveries, now)?;
            Ok(true)
        })
        .await
}

/// Keeps the raw error code a device or provider reported on a failed message.
pub async fn set_error_code(store: &Store, id: i64, code: &str) -> Result<()> {
    sqlx::query("UPDATE messages SET error_code = $1 WHERE id = $2")
        .bind(code)
        .bind(id)
        .execute(store.w())
        .await?;
    Ok(())
}

/// Queued messages past their validity that asked for notifications: (user, message).
pub async fn expiring_notified(store: &Store, now: Ts) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, id FROM messages WHERE status = 'queued' AND valid_until IS NOT NULL AND valid_until < $1 \
         AND callback_url IS NOT NULL AND callback_url <> ''",
    )
    .bind(now.0)
    .fetch_all(store.r())
    .await?)
}

/// Scheduled messages due now that asked for notifications: (user, message).
pub async fn releasing_notified(store: &Store, now: Ts) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, id FROM messages WHERE status = 'scheduled' AND next_try_at <= $1 \
         AND callback_url IS NOT NULL AND callback_url <> ''",
    )
    .bind(now.0)
    .fetch_all(store.r())
    .await?)
}

/// Moves the queued messages of one phone to another (a device went away); how many.
pub async fn move_queued(store: &Store, from_phone: i64, to_phone: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE messages SET phone_id = $1, updated_at = $2 WHERE phone_id = $3 AND status = 'queued' \
         AND direction = 'outbound'",
    )
    .bind(to_phone)
    .bind(Ts::now().0)
    .bind(from_phone)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected())
}

/// Adds a stage a device reported for a message it is sending to the message's history,
/// without changing its state (`device_received`, `sending`).
pub async fn note(store: &Store, id: i64, stage: &str, deliveries: &[NewDelivery]) -> Result<()> {
    let (stage, deliveries) = (stage.to_string(), deliveries.to_vec());
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            let sending = row(
                conn,
                "SELECT id FROM messages WHERE id = $1 AND status = 'sending'",
                &[&id],
                |r| r.get::<_, i64>(0),
            )?;
            if sending.is_some() {
                history(conn, id, &stage, Some("reported by the device"), now)?;
                outbox::insert(conn, &deliveries, now)?;
            }
            Ok(())
        })
        .await
}

/// Each status compared with `=`: a partial index serves only queries that name its condition
/// (migration 0008).
const LOAD: &str = "SELECT (SELECT COUNT(*) FROM messages WHERE status = 'queued' AND phone_id = $1) \
    + (SELECT COUNT(*) FROM messages WHERE status = 'sending' AND phone_id = $1)";

/// Messages waiting or in flight on a phone: its load.
pub async fn load(store: &Store, phone_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(LOAD)
        .bind(phone_id)
        .fetch_one(store.r())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaigns::{self, NewCampaign};
    use crate::testing;

    async fn campaign(store: &Store, user: i64) -> (Dispatch, Vec<NewOutbound>) {
        let c = NewCampaign {
            text: "hi".into(),
            numbers: vec![("+33612345678".into(), "[]".into())],
            ..Default::default()
        };
        let id = campaigns::create(store, user, &c).await.expect("campaign");
        let d = Dispatch {
            campaign_id: id,
            user_id: user,
            max_tries: 1,
            ..Default::default()
        };
        let m = NewOutbound {
            destination: "+33612345678".into(),
            text: "hi".into(),
            encoding: "gsm7",
            segments: 1,
            phone_id: None,
            media: Vec::new(),
        };
        (d, vec![m])
    }

    async fn messages_of(store: &Store, campaign: i64) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE campaign_id = $1")
            .bind(campaign)
            .fetch_one(store.r())
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn dispatching_together_takes_each_campaign_once_and_a_failing_one_fails_alone() {
        let (_dir, store) = testing::store().await;
        let user = testing::user(&store, "a@x").await;
        let (a, b) = (campaign(&store, user).await, campaign(&store, user).await);
        let both = Arc::new(vec![a.clone(), b.clone()]);
        assert_eq!(
            dispatch_all(&store, both.clone())
                .await
                .expect("dispatched"),
            [true, true]
        );
        assert_eq!(
            dispatch_all(&store, both).await.expect("again"),
            [false, false]
        );
        assert_eq!(messages_of(&store, a.0.campaign_id).await, 1);

        // A message linking to media that does not exist fails its campaign's write.
        let (c, e) = (campaign(&store, user).await, campaign(&store, user).await);
        let mut failing = campaign(&store, user).await;
        failing.1[0].media = vec![999];
        let mixed = Arc::new(vec![c.clone(), failing.clone(), e.clone()]);
        assert!(dispatch_all(&store, mixed).await.is_err());
        assert_eq!(messages_of(&store, c.0.campaign_id).await, 1);
        assert_eq!(messages_of(&store, e.0.campaign_id).await, 1);
        assert_eq!(messages_of(&store, failing.0.campaign_id).await, 0);
    }

    /// The plan SQLite picks for `sql` (its steps' details, one per line).
    async fn plan(store: &Store, sql: &'static str) -> String {
        store
            .read_direct(move |conn| {
                let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let mut rows = explain.raw_query();
                let mut steps = Vec::new();
                while let Some(row) = rows.next()? {
                    steps.push(row.get::<_, String>(3)?);
                }
                Ok(steps.join("\n"))
            })
            .await
            .expect("plan")
    }

    #[tokio::test]
    async fn the_queue_reads_its_partial_indexes() {
        let (_dir, store) = testing::store().await;
        let cases = [
            (CLAIM, "messages", "messages_queue"),
            (UNASSIGNED, "messages", "messages_queue"),
            (EXPIRE, "messages", "messages_queue"),
            (RELEASE, "messages", "messages_queue"),
            (REAP, "messages", "messages_queue"),
            (LOAD, "messages", "messages_queue"),
            (DUE_CAMPAIGNS, "c", "campaigns_due"),
        ];
        for (sql, table, index) in cases {
            let plan = plan(&store, sql).await;
            let searches: Vec<&str> = plan
                .lines()
                .filter(|step| step.starts_with(&format!("SEARCH {table} ")))
                .collect();
            // (The claim's UPDATE finds the rows its subquery chose by their ids.)
            let by_index = |step: &&str| step.contains(&format!("INDEX {index} "));
            let by_id = |step: &&str| step.contains("USING INTEGER PRIMARY KEY");
            assert!(searches.iter().any(by_index), "{sql}\n{plan}");
            assert!(
                searches.iter().all(|s| by_index(s) || by_id(s)),
                "{sql}\n{plan}"
            );
            let scan = |step: &str| step.starts_with("SCAN") && step != "SCAN CONSTANT ROW";
            assert!(!plan.lines().any(scan), "{sql}\n{plan}");
        }
        // Partial: sent messages and dispatched campaigns leave them.
        for index in [
            "messages_queue",
            "messages_provider",
            "messages_campaign",
            "campaigns_due",
        ] {
            let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = $1")
                .bind(index)
                .fetch_one(store.r())
                .await
                .expect("index");
            assert!(sql.contains(" WHERE "), "{sql}");
        }
    }
}
