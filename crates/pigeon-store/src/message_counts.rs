//! The kept counts of messages (`message_counts`), per account, phone (0: none), direction
//! and status: the lists' totals (Reach's `totalMessages`, Astandes' `total`) add up these few
//! rows instead of counting a large account's messages one by one. Inserts add to them in
//! their own write ([`NewCounts`]); triggers follow updates and deletions (migrations 0006,
//! 0007).

use std::collections::BTreeMap;

use rusqlite::Connection;
use sqlx::SqliteConnection;

use crate::Result;
use crate::group::execute;

/// The messages a write inserts, counted per key and added to the kept counts in that same
/// write. Not a trigger: with one, each insert into `messages` (a table with foreign keys)
/// gets a statement journal of its own, and SQLite copies every page it touches there first.
#[derive(Default)]
pub(crate) struct NewCounts<'a>(BTreeMap<(i64, i64, &'a str, &'a str), i64>);

impl<'a> NewCounts<'a> {
    pub(crate) fn add(
        &mut self,
        user_id: i64,
        phone_id: Option<i64>,
        direction: &'a str,
        status: &'a str,
    ) {
        let key = (user_id, phone_id.unwrap_or(0), direction, status);
        *self.0.entry(key).or_default() += 1;
    }

    pub(crate) fn write(&self, conn: &Connection) -> Result<()> {
        for ((user_id, phone_id, direction, status), n) in &self.0 {
            execute(
                conn,
                "INSERT INTO message_counts (user_id, phone_id, direction, status, n) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id, phone_id, direction, status) DO UPDATE SET n = n + excluded.n",
                &[user_id, phone_id, direction, status, n],
            )?;
        }
        Ok(())
    }
}

/// Which messages [`counted`] adds up: `None` (or empty) matches every value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counted<'a> {
    pub direction: Option<&'a str>,
    pub statuses: &'a [&'a str],
    /// Only the messages of the user's devices' phones.
    pub devices: bool,
}

/// How many of the user's messages match, from the kept counts: a few rows read, however
/// many messages there are.
pub(crate) async fn counted<'c, E>(executor: E, user_id: i64, c: &Counted<'_>) -> Result<i64>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let statuses = (!c.statuses.is_empty()).then(|| c.statuses.join(","));
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(SUM(n), 0) FROM message_counts WHERE user_id = $1 \
         AND ($2 IS NULL OR direction = $2) \
         AND ($3 IS NULL OR (',' || $3 || ',') LIKE ('%,' || status || ',%')) \
         AND ($4 = 0 OR phone_id IN (SELECT phone_id FROM devices WHERE user_id = $1))",
    )
    .bind(user_id)
    .bind(c.direction)
    .bind(statuses)
    .bind(c.devices)
    .fetch_one(executor)
    .await?)
}

/// How many rows a list of messages has, and how many its query walks through: all the
/// user's messages of its direction (the index it reads holds them all, and a status is
/// checked row by row). See [`crate::Store::page_counted`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub listed: i64,
    pub walked: i64,
}

/// The [`Sizes`] of the list `c` (a direction, and statuses or all of them).
pub(crate) async fn sizes(
    conn: &mut SqliteConnection,
    user_id: i64,
    c: &Counted<'_>,
) -> Result<Sizes> {
    let all = Counted {
        statuses: &[],
        ..c.clone()
    };
    let walked = counted(&mut *conn, user_id, &all).await?;
    let listed = if c.statuses.is_empty() {
        walked
    } else {
        counted(&mut *conn, user_id, c).await?
    };
    Ok(Sizes { listed, walked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{NewMessage, delete_final, insert};
    use crate::{Store, Ts, testing};

    /// The kept counts (inserts add to them, triggers follow updates and deletions), row by
    /// row against the messages grouped, and for each way the lists add them up.
    async fn assert_counts_match(store: &Store, users: &[i64]) {
        let kept: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, phone_id, direction, status, n FROM message_counts WHERE n != 0 \
             ORDER BY 1, 2, 3, 4",
        )
        .fetch_all(store.r())
        .await
        .expect("kept");
        let grouped: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, COALESCE(phone_id, 0), direction, status, COUNT(*) FROM messages \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        )
        .fetch_all(store.r())
        .await
        .expect("grouped");
        assert_eq!(kept, grouped);
        let rows: Vec<(i64, Option<i64>, String, String)> =
            sqlx::query_as("SELECT user_id, phone_id, direction, status FROM messages")
                .fetch_all(store.r())
                .await
                .expect("messages");
        let device_phones: Vec<i64> = sqlx::query_scalar("SELECT phone_id FROM devices")
            .fetch_all(store.r())
            .await
            .expect("devices");
        let ways = [
            Counted::default(),
            Counted {
                direction: Some("outbound"),
                ..Counted::default()
            },
            Counted {
                statuses: &["sent", "delivered"],
                ..Counted::default()
            },
            Counted {
                direction: Some("inbound"),
                statuses: &["received"],
                ..Counted::default()
            },
            Counted {
                devices: true,
                ..Counted::default()
            },
        ];
        for &user in users {
            for c in &ways {
                let expected = rows
                    .iter()
                    .filter(|(u, phone, direction, status)| {
                        *u == user
                            && c.direction.is_none_or(|d| d == direction)
                            && (c.statuses.is_empty() || c.statuses.contains(&status.as_str()))
                            && (!c.devices || phone.is_some_and(|p| device_phones.contains(&p)))
                    })
                    .count() as i64;
                let got = counted(store.r(), user, c).await.expect("counted");
                assert_eq!(got, expected, "user {user}, {c:?}");
            }
        }
    }

    #[tokio::test]
    async fn the_kept_counts_follow_every_insert_change_and_deletion() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let fields = crate::phones::PhoneFields {
            name: Some("sim".into()),
            adapter: Some("simulator".into()),
            ..Default::default()
        };
        let sim = crate::phones::create(&store, a, &fields)
            .await
            .expect("phone");
        let device = crate::devices::create(&store, a, &Default::default(), "", "")
            .await
            .expect("device");
        let agent = crate::devices::get(&store, a, device)
            .await
            .expect("get")
            .expect("device")
            .phone_id;
        let out = |user, phone, status: &str| NewMessage {
            user_id: user,
            phone_id: phone,
            direction: "outbound",
            text: "hi".into(),
            status: status.into(),
            ..Default::default()
        };
        let mut ids = Vec::new();
        for m in [
            out(a, None, "queued"),
            out(a, None, "queued"),
            out(a, Some(sim), "sent"),
            out(a, Some(agent), "queued"),
            out(b, None, "sent"),
            NewMessage {
                direction: "inbound",
                status: "received".into(),
                ..out(a, Some(agent), "")
            },
        ] {
            ids.push(insert(&store, &m).await.expect("insert"));
        }
        assert_counts_match(&store, &[a, b]).await;

        // Every other way messages are inserted counts them too: campaigns' dispatches (several
        // in one write, as a scheduler pass writes them)...
        let campaign = crate::campaigns::NewCampaign {
            text: "hi".into(),
            numbers: vec![("+33612345678".into(), "[]".into())],
            ..Default::default()
        };
        let mut dispatches = Vec::new();
        for user_id in [a, a, b] {
            let campaign_id = crate::campaigns::create(&store, user_id, &campaign)
                .await
                .expect("campaign");
            dispatches.push(crate::queue::Dispatch {
                campaign_id,
                user_id,
                max_tries: 1,
                ..Default::default()
            });
        }
        let outbound = |phone_id| crate::queue::NewOutbound {
            destination: "+33612345678".into(),
            text: "hi".into(),
            encoding: "gsm7",
            segments: 1,
            phone_id,
            media: Vec::new(),
        };
        let dispatched = vec![
            (
                dispatches[0].clone(),
                vec![outbound(Some(sim)), outbound(Some(sim)), outbound(None)],
            ),
            (dispatches[1].clone(), vec![outbound(Some(sim))]),
            (dispatches[2].clone(), vec![outbound(None)]),
        ];
        let taken = crate::queue::dispatch_all(&store, dispatched.into())
            .await
            .expect("dispatched");
        assert_eq!(taken, [true, true, true]);
        // ...and the sends of the APIs, queued, scheduled or failed at once.
        let single = |phone_id, scheduled, error| crate::queue::Single {
            user_id: a,
            api: "reach",
            phone_id,
            phone_fixed: false,
            flash: false,
            origin: None,
            destination: "+33612345678".into(),
            text: "hi".into(),
            encoding: "gsm7",
            segments: 1,
            max_tries: 1,
            valid_until: Ts(i64::MAX),
            client_ref: None,
            callback_url: None,
            tag: None,
            scheduled,
            error,
        };
        let singles = [
            single(Some(agent), None, None),
            single(Some(agent), None, None),
            single(None, Some(Ts(1)), None),
            single(None, None, Some(("30".into(), "no route".into()))),
        ];
        crate::queue::enqueue_all(&store, &singles, |_, _, _| Vec::new())
            .await
            .expect("enqueued");
        assert_counts_match(&store, &[a, b]).await;

        let exec = |sql: &'static str, binds: Vec<i64>| {
            let store = store.clone();
            async move {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.execute(store.w()).await.expect("update");
            }
        };
        exec(
            "UPDATE messages SET status = 'delivered' WHERE id = $1",
            vec![ids[2]],
        )
        .await;
        let assign = "UPDATE messages SET phone_id = $1, status = 'sending' WHERE id = $2";
        exec(assign, vec![agent, ids[0]]).await;
        exec(
            "UPDATE messages SET text = 'other' WHERE id = $1",
            vec![ids[3]],
        )
        .await;
        assert_counts_match(&store, &[a, b]).await;

        assert!(
            delete_final(&store, a, ids[2], &["delivered"])
                .await
                .expect("delete")
        );
        crate::phones::delete(&store, a, agent)
            .await
            .expect("phone deleted");
        assert_counts_match(&store, &[a, b]).await;

        exec("DELETE FROM users WHERE id = $1", vec![b]).await;
        assert_counts_match(&store, &[a, b]).await;
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM message_counts WHERE user_id = $1")
                .bind(b)
                .fetch_one(store.r())
                .await
                .expect("count");
        assert_eq!(left, 0, "a deleted account's counts go with it");
    }
}
