//! Quotas: credits per account for a period, consumed per segment sent, renewed when due.

use crate::group::{execute, row};
use crate::outbox::{self, NewDelivery};
use crate::{Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Quota {
    pub id: i64,
    pub user_id: i64,
    pub credit: i64,
    pub additional: i64,
    pub consumed: i64,
    pub report_unused: bool,
    pub report_unused_additional: bool,
    pub auto_renew: bool,
    /// ISO 8601 duration (`P1M`).
    pub renew_interval: String,
    pub start_date: i64,
    pub expiration_date: i64,
    pub alerted_level: bool,
    pub alerted_reached: bool,
}

impl Quota {
    /// Credits left while the quota is in force; `None` when it is not (no quota, or expired
    /// and not renewed, means no limit, as in RaspiSMS).
    pub fn remaining(&self, now: Ts) -> Option<i64> {
        (self.start_date <= now.0 && now.0 < self.expiration_date)
            .then(|| self.credit + self.additional - self.consumed)
    }
}

impl Quota {
    /// A row of [`SELECT`], in its columns' order.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Quota> {
        Ok(Quota {
            id: r.get(0)?,
            user_id: r.get(1)?,
            credit: r.get(2)?,
            additional: r.get(3)?,
            consumed: r.get(4)?,
            report_unused: r.get(5)?,
            report_unused_additional: r.get(6)?,
            auto_renew: r.get(7)?,
            renew_interval: r.get(8)?,
            start_date: r.get(9)?,
            expiration_date: r.get(10)?,
            alerted_level: r.get(11)?,
            alerted_reached: r.get(12)?,
        })
    }
}

const SELECT: &str = "SELECT id, user_id, credit, additional, consumed, report_unused, report_unused_additional, \
     auto_renew, renew_interval, start_date, expiration_date, alerted_level, alerted_reached FROM quotas";

pub async fn get(store: &Store, user_id: i64) -> Result<Option<Quota>> {
    let sql = format!("{SELECT} WHERE user_id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// Sets (creates or replaces) a user's quota, with nothing consumed.
pub async fn set(store: &Store, q: &Quota) -> Result<()> {
    let now = Ts::now().0;
    sqlx::query(
        "INSERT INTO quotas (user_id, credit, additional, consumed, report_unused, report_unused_additional, \
         auto_renew, renew_interval, start_date, expiration_date, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (user_id) DO UPDATE SET credit = excluded.credit, additional = excluded.additional, \
         consumed = 0, report_unused = excluded.report_unused, \
         report_unused_additional = excluded.report_unused_additional, auto_renew = excluded.auto_renew, \
         renew_interval = excluded.renew_interval, start_date = excluded.start_date, \
         expiration_date = excluded.expiration_date, alerted_level = 0, alerted_reached = 0, \
         updated_at = excluded.updated_at",
    )
    .bind(q.user_id)
    .bind(q.credit)
    .bind(q.additional)
    .bind(q.report_unused)
    .bind(q.report_unused_additional)
    .bind(q.auto_renew)
    .bind(&q.renew_interval)
    .bind(q.start_date)
    .bind(q.expiration_date)
    .bind(now)
    .execute(store.w())
    .await?;
    Ok(())
}

/// What [`reserve`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The credits were taken.
    pub reserved: bool,
    /// The user's quota as it is afterwards, if they have one.
    pub quota: Option<Quota>,
}

/// Takes `credits` from the user's quota if it is in force and has them, in one statement so
/// that concurrent sends cannot overspend. Nothing is taken when there is no quota in force or
/// not enough credits: [`Quota::remaining`] of the quota that comes back tells which.
pub async fn reserve(store: &Store, user_id: i64, credits: i64, now: Ts) -> Result<Reservation> {
    store
        .grouped(move |conn| {
            let done = execute(
                conn,
                "UPDATE quotas SET consumed = consumed + $1, updated_at = $2 WHERE user_id = $3 \
                 AND start_date <= $2 AND $2 < expiration_date AND credit + additional - consumed >= $1",
                &[&credits, &now.0, &user_id],
            )?;
            let sql = format!("{SELECT} WHERE user_id = $1");
            let quota = row(conn, &sql, &[&user_id], Quota::read)?;
            Ok(Reservation {
                reserved: done > 0,
                quota,
            })
        })
        .await
}

/// Gives back credits reserved for a send that did not happen.
pub async fn refund(store: &Store, user_id: i64, credits: i64) -> Result<()> {
    sqlx::query(
        "UPDATE quotas SET consumed = CASE WHEN consumed > $1 THEN consumed - $1 ELSE 0 END, updated_at = $2 WHERE user_id = $3",
    )
    .bind(credits)
    .bind(Ts::now().0)
    .bind(user_id)
    .execute(store.w())
    .await?;
    Ok(())
}

/// Quotas that expired and renew themselves.
pub async fn due_renewals(store: &Store, now: Ts) -> Result<Vec<Quota>> {
    let sql = format!("{SELECT} WHERE auto_renew = 1 AND expiration_date <= $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .fetch_all(store.r())
        .await?)
}

/// Starts a quota's next period; `false` if it was renewed meanwhile.
pub async fn renew(
    store: &Store,
    q: &Quota,
    start: Ts,
    expiration: Ts,
    additional: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE quotas SET start_date = $1, expiration_date = $2, additional = $3, consumed = 0, \
         alerted_level = 0, alerted_reached = 0, updated_at = $4 \
         WHERE id = $5 AND expiration_date = $6",
    )
    .bind(start.0)
    .bind(expiration.0)
    .bind(additional)
    .bind(Ts::now().0)
    .bind(q.id)
    .bind(q.expiration_date)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Which quota alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// Consumption passed the account's warning level.
    Level,
    /// Every credit is used.
    Reached,
}

/// Marks an alert of the current period as sent, with its webhook deliveries; `false` (and
/// nothing written) when it was sent already.
pub async fn alert(
    store: &Store,
    user_id: i64,
    which: Alert,
    deliveries: &[NewDelivery],
) -> Result<bool> {
    let sql = match which {
        Alert::Level => {
            "UPDATE quotas SET alerted_level = 1 WHERE user_id = $1 AND alerted_level = 0"
        }
        Alert::Reached => {
            "UPDATE quotas SET alerted_reached = 1 WHERE user_id = $1 AND alerted_reached = 0"
        }
    };
    let deliveries = deliveries.to_vec();
    store
        .grouped(move |conn| {
            if execute(conn, sql, &[&user_id])? == 0 {
                return Ok(false);
            }
            outbox::insert(conn, &deliveries, Ts::now().0)?;
            Ok(true)
        })
        .await
}
