//! Delivery reports: a provider's or device's word on a message it sent moves that message
//! forward (never backwards), with its history and webhook deliveries, in one write.

use crate::group::{execute, row};
use crate::messages::history;
use crate::outbox::{self, NewDelivery};
use crate::{Result, Store, Ts};

/// A delivery report moved a message: (message id, user id, new status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub id: i64,
    pub user_id: i64,
    pub status: String,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    Moved(Moved),
    /// No message in a state the report may move from: unknown, late or duplicated.
    Unmatched,
    /// The message asks for notifications and `notified` named another: nothing was written;
    /// prepare this one's and apply the report again.
    Unprepared(i64),
}

/// Applies a provider's report to the message it sent as `provider_id`, if the message's
/// current status is one of `from` (the states that may become `to`: a late or duplicated
/// report never moves a message backwards). The message is found on its phone, or among the
/// user's messages sent through an adapter. `deliveries` renders the webhook deliveries of the
/// change, written in the same transaction; `notified` is the message whose notifications
/// they include, if any. Which message a report applies to is known only in the write (the
/// send's record may commit just before it), so a message with a callback that `notified`
/// does not name is left as it is ([`Reported::Unprepared`]), rather than moved silently.
pub async fn report(
    store: &Store,
    find: ReportTarget<'_>,
    provider_id: &str,
    from: &[&str],
    to: &str,
    notified: Option<i64>,
    deliveries: impl Fn(&Moved) -> Vec<NewDelivery> + Send + 'static,
) -> Result<Reported> {
    if from.is_empty() {
        return Ok(Reported::Unmatched);
    }
    let (phone, user, adapter) = match find {
        ReportTarget::Phone(phone) => (Some(phone), None, None),
        ReportTarget::UserAdapter(user, adapter) => (None, Some(user), Some(adapter.to_string())),
    };
    let (provider_id, to) = (provider_id.to_string(), to.to_string());
    let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            let found: Option<(i64, i64, String, bool)> = row(
                conn,
                "SELECT id, user_id, status, COALESCE(callback_url, '') <> '' FROM messages \
                 WHERE provider_id = $1 AND direction = 'outbound' AND ($2 IS NULL OR phone_id = $2) \
                 AND ($3 IS NULL OR user_id = $3) AND ($4 IS NULL OR adapter = $4) \
                 ORDER BY id DESC LIMIT 1",
                &[&provider_id, &phone, &user, &adapter],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let Some((id, user_id, status, wants_notice)) = found else {
                return Ok(Reported::Unmatched);
            };
            if !from.contains(&status) {
                return Ok(Reported::Unmatched);
            }
            if wants_notice && notified != Some(id) {
                return Ok(Reported::Unprepared(id));
            }
            execute(
                conn,
                "UPDATE messages SET status = $1, updated_at = $2 WHERE id = $3",
                &[&to, &now, &id],
            )?;
            history(conn, id, &to, Some("delivery report"), now)?;
            let moved = Moved {
                id,
                user_id,
                status: to.clone(),
            };
            outbox::insert(conn, &deliveries(&moved), now)?;
            Ok(Reported::Moved(moved))
        })
        .await
}

/// How a delivery report finds its message.
#[derive(Debug, Clone, Copy)]
pub enum ReportTarget<'a> {
    Phone(i64),
    UserAdapter(i64, &'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn a_report_leaves_a_message_with_a_callback_unwritten_until_its_notice_is_prepared() {
        let (_dir, store) = testing::store().await;
        let user = testing::user(&store, "a@x").await;
        let sent = |provider_id: &str, callback: Option<&str>| {
            let store = store.clone();
            let (provider_id, callback) = (provider_id.to_string(), callback.map(String::from));
            async move {
                sqlx::query_scalar::<_, i64>(
                    "INSERT INTO messages (user_id, direction, text, status, provider_id, adapter, \
                     callback_url, at, created_at, updated_at) \
                     VALUES ($1, 'outbound', 'hi', 'sent', $2, 'sim', $3, 0, 0, 0) RETURNING id",
                )
                .bind(user)
                .bind(provider_id)
                .bind(callback)
                .fetch_one(store.w())
                .await
                .expect("message")
            }
        };
        let status_of = |id: i64| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT status FROM messages WHERE id = $1")
                    .bind(id)
                    .fetch_one(store.r())
                    .await
                    .expect("status")
            }
        };
        let target = ReportTarget::UserAdapter(user, "sim");
        let report = |provider_id: &'static str, notified: Option<i64>| {
            let store = store.clone();
            async move {
                report(
                    &store,
                    target,
                    provider_id,
                    &["sent"],
                    "delivered",
                    notified,
                    |_| Vec::new(),
                )
                .await
                .expect("report")
            }
        };
        let asked = sent("p-1", Some("http://127.0.0.1:9/cb")).await;
        assert_eq!(report("p-1", None).await, Reported::Unprepared(asked));
        assert_eq!(status_of(asked).await, "sent", "nothing written");
        assert!(matches!(report("p-1", Some(asked)).await, Reported::Moved(m) if m.id == asked));
        assert_eq!(status_of(asked).await, "delivered");
        assert_eq!(
            report("p-1", Some(asked)).await,
            Reported::Unmatched,
            "a duplicate"
        );

        let silent = sent("p-2", Some("")).await;
        assert!(matches!(report("p-2", None).await, Reported::Moved(m) if m.id == silent));
        assert_eq!(report("p-3", None).await, Reported::Unmatched);
    }
}
