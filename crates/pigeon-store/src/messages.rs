//! Messages: one SMS each, outbound or inbound.

use std::collections::BTreeMap;

use rusqlite::Connection;
use sqlx::AssertSqlSafe;

use crate::group::{execute, insert_id};
use crate::message_counts::{Counted, NewCounts, counted};
use crate::outbox::{self, NewDelivery};
use crate::{Page, Result, Store, Ts, placeholders};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: Option<i64>,
    pub direction: String,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub text: String,
    pub flash: bool,
    pub mms: bool,
    pub status: String,
    pub provider_id: Option<String>,
    pub adapter: Option<String>,
    pub campaign_id: Option<i64>,
    pub tag: Option<String>,
    pub at: i64,
    pub is_read: bool,
    pub command: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub user_id: i64,
    pub phone_id: Option<i64>,
    /// `outbound` or `inbound`.
    pub direction: &'static str,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub text: String,
    pub flash: bool,
    pub mms: bool,
    pub status: String,
    pub provider_id: Option<String>,
    pub adapter: Option<String>,
    pub campaign_id: Option<i64>,
    pub tag: Option<String>,
    pub at: Ts,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, phone_id, direction, origin, destination, text, flash, mms, status, provider_id, \
             adapter, campaign_id, tag, at, is_read, command, created_at, updated_at FROM messages",
            $tail
        )
    };
}

/// A step of a message's history, written with the change it records.
pub(crate) fn history(
    conn: &Connection,
    id: i64,
    status: &str,
    detail: Option<&str>,
    at: i64,
) -> Result<()> {
    execute(
        conn,
        "INSERT INTO message_history (message_id, status, detail, at) VALUES ($1, $2, $3, $4)",
        &[&id, &status, &detail, &at],
    )?;
    Ok(())
}

pub async fn insert(store: &Store, m: &NewMessage) -> Result<i64> {
    insert_with(store, m, |_| Vec::new()).await
}

/// Inserts a message with the webhook deliveries it causes (rendered from its id), in one
/// transaction.
pub async fn insert_with(
    store: &Store,
    m: &NewMessage,
    deliveries: impl Fn(i64) -> Vec<NewDelivery> + Send + 'static,
) -> Result<i64> {
    let m = m.clone();
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            let id = insert_id(
                conn,
                "INSERT INTO messages (user_id, phone_id, direction, origin, destination, text, flash, mms, status, \
                 initial_status, provider_id, adapter, campaign_id, tag, at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $15)",
                &[
                    &m.user_id,
                    &m.phone_id,
                    &m.direction,
                    &m.origin,
                    &m.destination,
                    &m.text,
                    &m.flash,
                    &m.mms,
                    &m.status,
                    &m.provider_id,
                    &m.adapter,
                    &m.campaign_id,
                    &m.tag,
                    &m.at.0,
                    &now,
                ],
            )?;
            let mut counts = NewCounts::default();
            counts.add(m.user_id, m.phone_id, m.direction, &m.status);
            counts.write(conn)?;
            outbox::insert(conn, &deliveries(id), now)?;
            Ok(id)
        })
        .await
}

/// What RaspiSMS lists as "sended": outbound messages that went through a send attempt
/// (handed to, or refused by, a channel). `SENDED_LIST` filters on these statuses.
const SENDED: [&str; 5] = ["sent", "delivered", "undelivered", "failed", "expired"];
const SENDED_LIST: &str = select!(
    " WHERE user_id = $1 AND direction = 'outbound' \
     AND status IN ('sent', 'delivered', 'undelivered', 'failed', 'expired')"
);

pub async fn page_sent(store: &Store, user_id: i64, page: Page) -> Result<Vec<Message>> {
    let sended = Counted {
        direction: Some("outbound"),
        statuses: &SENDED,
        devices: false,
    };
    store
        .page_counted(SENDED_LIST, user_id, page, &sended)
        .await
}

pub async fn page_received(store: &Store, user_id: i64, page: Page) -> Result<Vec<Message>> {
    let received = Counted {
        direction: Some("inbound"),
        ..Counted::default()
    };
    store
        .page_counted(
            select!(" WHERE user_id = $1 AND direction = 'inbound'"),
            user_id,
            page,
            &received,
        )
        .await
}

/// The media ids attached to each of the given messages.
pub async fn media(store: &Store, message_ids: &[i64]) -> Result<BTreeMap<i64, Vec<i64>>> {
    let mut out = BTreeMap::new();
    if message_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT message_id, media_id FROM message_media WHERE message_id IN ({}) ORDER BY media_id",
        placeholders(1, message_ids.len())
    );
    let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
    for id in message_ids {
        q = q.bind(id);
    }
    for (message, media) in q.fetch_all(store.r()).await? {
        out.entry(message).or_insert_with(Vec::new).push(media);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PAGE_SIZE, testing};

    #[tokio::test]
    async fn sent_pages_skip_only_sent_messages_and_cursors_move_through_them() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let mut sent = Vec::new();
        for i in 0..60 {
            let status = ["queued", "delivered", "failed"][i % 3];
            let m = NewMessage {
                user_id: a,
                direction: "outbound",
                text: "hi".into(),
                status: status.into(),
                ..Default::default()
            };
            let id = insert(&store, &m).await.expect("insert");
            if status != "queued" {
                sent.push(id);
            }
        }
        let ids = |page: Vec<Message>| page.iter().map(|m| m.id).collect::<Vec<_>>();
        let second = page_sent(&store, a, Page::Number(1)).await.expect("page 1");
        assert_eq!(ids(second), sent[25..40]);
        let after = page_sent(&store, a, Page::After(sent[9]))
            .await
            .expect("after");
        assert_eq!(ids(after), sent[10..35]);
        let before = page_sent(&store, a, Page::Before(sent[30]))
            .await
            .expect("before");
        assert_eq!(ids(before), sent[5..30]);
    }

    /// Numbered pages near the end of a list are read from its end (see `Store::page_counted`;
    /// here pages 5 and 6 of the 160 sent, 4 to 6 of the 160 received): every page is the
    /// slice it names, whatever the other statuses and accounts around it, and a page past
    /// the end is empty.
    #[tokio::test]
    async fn numbered_pages_are_the_same_read_from_either_end() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let (mut sent, mut received) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let (user_id, direction, status) = [
                (a, "outbound", "queued"),
                (a, "outbound", "sent"),
                (a, "inbound", "received"),
                (a, "outbound", "expired"),
                (a, "inbound", "received"),
                (b, "outbound", "delivered"),
                (a, "outbound", "delivered"),
                (a, "inbound", "received"),
                (a, "outbound", "failed"),
                (a, "inbound", "received"),
            ][i % 10];
            let m = NewMessage {
                user_id,
                direction,
                text: "hi".into(),
                status: status.into(),
                ..Default::default()
            };
            let id = insert(&store, &m).await.expect("insert");
            match (user_id == a, direction, status) {
                (true, "outbound", "queued") => {}
                (true, "outbound", _) => sent.push(id),
                (true, "inbound", _) => received.push(id),
                _ => {}
            }
        }
        let size = PAGE_SIZE as usize;
        let ids = |page: Vec<Message>| page.iter().map(|m| m.id).collect::<Vec<_>>();
        for n in 0..8 {
            let slice = |all: &[i64]| {
                all[(n * size).min(all.len())..((n + 1) * size).min(all.len())].to_vec()
            };
            let page = Page::Number(n as i64);
            assert_eq!(
                ids(page_sent(&store, a, page).await.expect("sent")),
                slice(&sent),
                "sent page {n}"
            );
            assert_eq!(
                ids(page_received(&store, a, page).await.expect("received")),
                slice(&received),
                "received page {n}"
            );
        }
        let far = Page::Number(i64::MAX);
        assert!(page_sent(&store, a, far).await.expect("far").is_empty());
    }

    /// The statuses counted for the sended list are the ones it shows (were they not, its
    /// numbered pages near the end would be cut wrong).
    #[test]
    fn the_sended_counts_and_list_name_the_same_statuses() {
        let quoted: Vec<String> = SENDED.iter().map(|s| format!("'{s}'")).collect();
        let filter = format!("status IN ({})", quoted.join(", "));
        assert!(SENDED_LIST.ends_with(&filter), "{SENDED_LIST}");
    }

    /// A history is the creation (from the row) then the changes; a message written before
    /// `initial_status` existed has its creation in `message_history` and reads the same.
    #[tokio::test]
    async fn a_history_starts_with_the_creation_whether_in_the_row_or_in_the_table() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let new = insert(
            &store,
            &NewMessage {
                user_id: a,
                direction: "outbound",
                text: "new".into(),
                status: "queued".into(),
                ..Default::default()
            },
        )
        .await
        .expect("new");
        let old: i64 = sqlx::query_scalar(
            "INSERT INTO messages (user_id, direction, text, status, at, created_at, updated_at) \
             VALUES ($1, 'outbound', 'old', 'queued', 5, 5, 5) RETURNING id",
        )
        .bind(a)
        .fetch_one(store.w())
        .await
        .expect("old");
        store
            .grouped(move |conn| {
                history(conn, old, "queued", None, 5)?;
                history(conn, old, "sent", None, 7)?;
                history(conn, new, "sent", None, i64::MAX)
            })
            .await
            .expect("changes");
        let created = item(&store, a, new).await.expect("item").expect("found");
        let read = |m: i64| {
            let store = store.clone();
            async move {
                histories(&store, &[m, old])
                    .await
                    .expect("histories")
                    .into_iter()
                    .filter(|h| h.message_id == m)
                    .map(|h| (h.status, h.at))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            read(new).await,
            [
                ("queued".into(), created.created_at),
                ("sent".into(), i64::MAX)
            ]
        );
        assert_eq!(read(old).await, [("queued".into(), 5), ("sent".into(), 7)]);
    }

    #[tokio::test]
    async fn sent_and_received_are_separate_and_scoped() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let out = NewMessage {
            user_id: a,
            direction: "outbound",
            destination: Some("+33612345678".into()),
            text: "hi".into(),
            status: "sent".into(),
            ..Default::default()
        };
        insert(&store, &out).await.expect("out");
        insert(
            &store,
            &NewMessage {
                status: "queued".into(),
                ..out.clone()
            },
        )
        .await
        .expect("queued");
        insert(
            &store,
            &NewMessage {
                direction: "inbound",
                status: "received".into(),
                ..out.clone()
            },
        )
        .await
        .expect("in");
        assert_eq!(
            page_sent(&store, a, Page::Number(0))
                .await
                .expect("s")
                .len(),
            1
        );
        assert_eq!(
            page_received(&store, a, Page::Number(0))
                .await
                .expect("r")
                .len(),
            1
        );
        assert!(
            page_sent(&store, b, Page::Number(0))
                .await
                .expect("s")
                .is_empty()
        );
    }
}

/// A message of the user with what the device APIs show: its client reference, callback URL,
/// limits and history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Detailed {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: Option<i64>,
    pub direction: String,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub text: String,
    pub status: String,
    pub client_ref: Option<String>,
    pub callback_url: Option<String>,
    pub valid_until: Option<i64>,
    pub max_tries: i64,
    pub tries: i64,
    pub error_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryEntry {
    pub message_id: i64,
    pub status: String,
    /// Why, where the change had a reason (a retry's error, a report); none for the creation.
    pub detail: Option<String>,
    pub at: i64,
}

macro_rules! detailed {
    ($tail:literal) => {
        concat!(
            "SELECT m.id, m.user_id, m.phone_id, m.direction, m.origin, m.destination, m.text, m.status, \
             m.client_ref, m.callback_url, m.valid_until, m.max_tries, m.tries, m.error_code, m.created_at, \
             m.updated_at FROM messages m",
            $tail
        )
    };
}

/// A message of one of the user's devices.
pub async fn device_message(store: &Store, user_id: i64, id: i64) -> Result<Option<Detailed>> {
    Ok(
        sqlx::query_as(detailed!(
            " WHERE m.id = $1 AND m.user_id = $2 AND m.phone_id IN (SELECT phone_id FROM devices WHERE user_id = $2)"
        ))
            .bind(id)
            .bind(user_id)
            .fetch_optional(store.r())
            .await?,
    )
}

/// One page of the messages of the user's devices (filters as the device list's), and the
/// total that match.
pub async fn device_messages(
    store: &Store,
    user_id: i64,
    f: &crate::devices::Filter,
) -> Result<(Vec<Detailed>, i64)> {
    // The device phones' messages are found through their phones (`+` keeps SQLite off the
    // index of all the account's messages), so other phones' traffic costs nothing here.
    let filter = " WHERE +m.user_id = $1 AND m.phone_id IN (SELECT phone_id FROM devices WHERE user_id = $1) \
                  AND ($2 IS NULL OR m.created_at >= $2) AND ($3 IS NULL OR m.created_at <= $3) \
                  AND ($4 IS NULL OR m.updated_at >= $4) AND ($5 IS NULL OR m.updated_at <= $5)";
    let order = format!(
        " ORDER BY m.{} {}, m.id LIMIT $6 OFFSET $7",
        f.sort.0,
        if f.sort.1 { "DESC" } else { "ASC" }
    );
    let rows = sqlx::query_as(AssertSqlSafe(format!("{}{filter}{order}", detailed!(""))))
        .bind(user_id)
        .bind(f.created.0.map(|t| t.0))
        .bind(f.created.1.map(|t| t.0))
        .bind(f.updated.0.map(|t| t.0))
        .bind(f.updated.1.map(|t| t.0))
        .bind(f.limit)
        .bind(f.skip)
        .fetch_all(store.r())
        .await?;
    let dated = [f.created.0, f.created.1, f.updated.0, f.updated.1];
    let total = if dated.iter().all(Option::is_none) {
        counted(
            store.r(),
            user_id,
            &Counted {
                devices: true,
                ..Counted::default()
            },
        )
        .await?
    } else {
        let count = format!("SELECT COUNT(*) FROM messages m{filter}");
        sqlx::query_scalar(AssertSqlSafe(count))
            .bind(user_id)
            .bind(f.created.0.map(|t| t.0))
            .bind(f.created.1.map(|t| t.0))
            .bind(f.updated.0.map(|t| t.0))
            .bind(f.updated.1.map(|t| t.0))
            .fetch_one(store.r())
            .await?
    };
    Ok((rows, total))
}

/// The status history of the given messages, each oldest first: its creation (from its row;
/// from `message_history` for messages written before `initial_status`), then its changes.
pub async fn histories(store: &Store, ids: &[i64]) -> Result<Vec<HistoryEntry>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids_in = placeholders(1, ids.len());
    let sql = format!(
        "SELECT message_id, status, detail, at FROM ( \
         SELECT id AS message_id, initial_status AS status, NULL AS detail, created_at AS at, 0 AS seq \
         FROM messages WHERE id IN ({ids_in}) AND initial_status IS NOT NULL \
         UNION ALL SELECT message_id, status, detail, at, id FROM message_history WHERE message_id IN ({ids_in})) \
         ORDER BY message_id, seq"
    );
    let mut q = sqlx::query_as(AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(store.r()).await?)
}

/// A message as the messaging APIs show it (Reach's MessageItem): one of the user's, either
/// direction, with its group, segments, error and when it was sent.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Item {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: Option<i64>,
    pub direction: String,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub text: String,
    pub segments: i64,
    pub status: String,
    pub tag: Option<String>,
    pub api: Option<String>,
    pub callback_url: Option<String>,
    pub error_code: Option<String>,
    pub error_text: Option<String>,
    pub at: i64,
    /// When it was first handed to a channel, and when it was delivered (from its history).
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! item {
    ($tail:literal) => {
        concat!(
            "SELECT m.id, m.user_id, m.phone_id, m.direction, m.origin, m.destination, m.text, m.segments, m.status, \
             m.tag, m.api, m.callback_url, m.error_code, m.error_text, m.at, \
             (SELECT MIN(h.at) FROM message_history h WHERE h.message_id = m.id AND h.status = 'sent') AS sent_at, \
             (SELECT MIN(h.at) FROM message_history h WHERE h.message_id = m.id AND h.status = 'delivered') AS delivered_at, \
             m.created_at, m.updated_at FROM messages m",
            $tail
        )
    };
}

pub async fn item(store: &Store, user_id: i64, id: i64) -> Result<Option<Item>> {
    Ok(sqlx::query_as(item!(" WHERE m.id = $1 AND m.user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// Which of the user's messages a list shows; `None` (or empty) matches everything.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// `outbound` or `inbound`.
    pub direction: Option<&'static str>,
    /// The statuses shown.
    pub statuses: &'static [&'static str],
    pub destination: Option<String>,
    pub origin: Option<String>,
    pub tag: Option<String>,
    /// The send time (`at`) from, inclusive, and to, exclusive.
    pub at: (Option<Ts>, Option<Ts>),
    /// The creation time from and to, both inclusive.
    pub created: (Option<Ts>, Option<Ts>),
    pub offset: i64,
    pub limit: i64,
}

/// One page of the user's messages, newest first (ids grow with creation), and how many match
/// in all.
pub async fn items(store: &Store, user_id: i64, f: &ItemFilter) -> Result<(Vec<Item>, i64)> {
    const FILTER: &str = " WHERE m.user_id = $1 AND ($2 IS NULL OR m.destination = $2) \
         AND ($3 IS NULL OR m.origin = $3) AND ($4 IS NULL OR m.tag = $4) \
         AND ($5 IS NULL OR m.at >= $5) AND ($6 IS NULL OR m.at < $6) \
         AND ($7 IS NULL OR m.direction = $7) AND ($8 IS NULL OR (',' || $8 || ',') LIKE ('%,' || m.status || ',%')) \
         AND ($9 IS NULL OR m.created_at >= $9) AND ($10 IS NULL OR m.created_at <= $10)";
    let statuses = (!f.statuses.is_empty()).then(|| f.statuses.join(","));
    let bind = |sql: String| {
        sqlx::query(AssertSqlSafe(sql))
            .bind(user_id)
            .bind(f.destination.clone())
            .bind(f.origin.clone())
            .bind(f.tag.clone())
            .bind(f.at.0.map(|t| t.0))
            .bind(f.at.1.map(|t| t.0))
            .bind(f.direction)
            .bind(statuses.clone())
            .bind(f.created.0.map(|t| t.0))
            .bind(f.created.1.map(|t| t.0))
    };
    use sqlx::Row;
    let counts_suffice = f.destination.is_none()
        && f.origin.is_none()
        && f.tag.is_none()
        && [f.at.0, f.at.1, f.created.0, f.created.1]
            .iter()
            .all(Option::is_none);
    let total: i64 = if counts_suffice {
        let c = Counted {
            direction: f.direction,
            statuses: f.statuses,
            devices: false,
        };
        counted(store.r(), user_id, &c).await?
    } else {
        bind(format!("SELECT COUNT(*) FROM messages m{FILTER}"))
            .fetch_one(store.r())
            .await?
            .try_get(0)?
    };
    let rows = bind(format!(
        "{}{FILTER} ORDER BY m.id DESC LIMIT $11 OFFSET $12",
        item!("")
    ))
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(store.r())
    .await?;
    let items = rows
        .iter()
        .map(<Item as sqlx::FromRow<_>>::from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((items, total))
}

/// Rewrites a message's stored text (Reach's redaction); a message not sent yet will go with
/// the new text, so its encoding and segments follow.
pub async fn rewrite(
    store: &Store,
    user_id: i64,
    id: i64,
    text: &str,
    encoding: &str,
    segments: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET text = $1, encoding = $2, segments = $3, updated_at = $4 \
         WHERE id = $5 AND user_id = $6",
    )
    .bind(text)
    .bind(encoding)
    .bind(segments)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a message of the user whose story is over (`final_statuses`); whether it did.
pub async fn delete_final(
    store: &Store,
    user_id: i64,
    id: i64,
    final_statuses: &[&str],
) -> Result<bool> {
    let sql = format!(
        "DELETE FROM messages WHERE id = $1 AND user_id = $2 AND status IN ({})",
        placeholders(3, final_statuses.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id).bind(user_id);
    for s in final_statuses {
        q = q.bind(*s);
    }
    Ok(q.execute(store.w()).await?.rows_affected() == 1)
}
