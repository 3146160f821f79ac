//! Maintenance steps: quota renewal and the phone reliability check.

use std::time::Duration;

use pigeon::services::{ServiceError, quotas, reliability};
use pigeon_core::time::Ts;
use pigeon_store::messages::{self, NewMessage};
use pigeon_store::quotas::Quota;

use crate::helpers::{TestApp, spawn};

async fn sent(t: &TestApp, phone: i64, status: &str, minutes_ago: i64) {
    let m = NewMessage {
        user_id: t.user_id,
        phone_id: Some(phone),
        direction: "outbound",
        destination: Some("+33612345678".into()),
        text: "x".into(),
        status: status.into(),
        at: Ts::now().minus_millis(minutes_ago * 60_000),
        ..Default::default()
    };
    messages::insert(&t.app.store, &m).await.expect("message");
}

async fn setting(t: &TestApp, name: &str, value: &str) {
    t.set_setting(name, value).await;
}

#[tokio::test]
async fn an_unreliable_phone_raises_one_alert_and_may_be_disabled() {
    let t = spawn().await;
    let bad = t
        .create("/api/phone/", &[("name", "bad"), ("adapter", "test")])
        .await;
    let good = t
        .create("/api/phone/", &[("name", "good"), ("adapter", "test")])
        .await;
    for i in 0..30 {
        sent(&t, bad, if i < 5 { "failed" } else { "delivered" }, 10).await;
        sent(&t, good, "delivered", 10).await;
    }
    // 5 failures out of 30 is 17 %, above the default 10 % rate with the default volume of 25.
    let alerts = reliability::check(&t.app).await.expect("check");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(
        (alert.phone_id, alert.kind, alert.total, alert.unreliable),
        (bad, "failed", 30, 5)
    );
    assert_eq!(alert.period, 120);
    assert!(!alert.disabled);
    // Only messages after the last alert count: no second alert for the same failures.
    assert!(reliability::check(&t.app).await.expect("check").is_empty());

    // Messages inside the grace period (the last minute) do not count yet.
    for _ in 0..30 {
        sent(&t, bad, "failed", 0).await;
    }
    assert!(reliability::check(&t.app).await.expect("check").is_empty());

    setting(&t, "phone_reliability_failed_grace_period", "0").await;
    setting(&t, "phone_reliability_failed_auto_disable", "1").await;
    let alerts = reliability::check(&t.app).await.expect("check");
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].disabled);
    let phones = t.get("/api/list/phone/").await.ok().clone();
    let status = |id: i64| {
        phones
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == id)
            .map(|p| p["status"].clone())
    };
    assert_eq!(status(bad), Some("disabled".into()));
    assert_eq!(status(good), Some("available".into()));
}

#[tokio::test]
async fn no_news_alerts_only_when_that_check_is_on() {
    let t = spawn().await;
    let phone = t
        .create("/api/phone/", &[("name", "p"), ("adapter", "test")])
        .await;
    for _ in 0..30 {
        sent(&t, phone, "sent", 10).await;
    }
    assert!(reliability::check(&t.app).await.expect("check").is_empty());
    setting(&t, "phone_reliability_unknown", "1").await;
    let alerts = reliability::check(&t.app).await.expect("check");
    assert_eq!(
        alerts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        ["unknown"]
    );
    assert_eq!(alerts[0].rate, 1.0);
}

#[tokio::test]
async fn expired_quotas_renew_with_carried_over_credits() {
    let t = spawn().await;
    let input = quotas::QuotaInput {
        credit: 100,
        additional: 10,
        interval: "P1D".into(),
        auto_renew: true,
        report_unused: true,
        report_unused_additional: false,
    };
    quotas::set(&t.app, "alice@example.com", &input)
        .await
        .expect("quota");
    let q = pigeon_store::quotas::get(&t.app.store, t.user_id)
        .await
        .expect("get")
        .expect("quota");
    assert_eq!(q.remaining(Ts::now()), Some(110));
    // Three days later, 30 credits used in the first period.
    let day = 24 * 3600 * 1000;
    let aged = Quota {
        start_date: q.start_date - 3 * day,
        expiration_date: q.expiration_date - 3 * day,
        ..q.clone()
    };
    pigeon_store::quotas::set(&t.app.store, &aged)
        .await
        .expect("age");
    let in_that_period = Ts(aged.start_date + 1);
    let reserved = pigeon_store::quotas::reserve(&t.app.store, t.user_id, 30, in_that_period).await;
    let reserved = reserved.expect("reserve");
    assert!(reserved.reserved);
    assert_eq!(reserved.quota.map(|q| q.consumed), Some(aged.consumed + 30));
    assert_eq!(quotas::renew_due(&t.app).await.expect("renew"), 1);
    let renewed = pigeon_store::quotas::get(&t.app.store, t.user_id)
        .await
        .expect("get")
        .expect("quota");
    let now = Ts::now();
    assert!(
        renewed.start_date <= now.0 && now.0 < renewed.expiration_date,
        "{renewed:?}"
    );
    assert_eq!(renewed.expiration_date - renewed.start_date, day);
    // 70 unused credits carried over; the unused additional credits are not.
    assert_eq!((renewed.consumed, renewed.additional), (0, 70));
    assert_eq!(renewed.remaining(now), Some(170));
    assert_eq!(quotas::renew_due(&t.app).await.expect("renew"), 0);

    // Without auto-renewal an expired quota means no limit, as in RaspiSMS.
    let input = quotas::QuotaInput {
        auto_renew: false,
        ..input
    };
    quotas::set(&t.app, "alice@example.com", &input)
        .await
        .expect("quota");
    let q = pigeon_store::quotas::get(&t.app.store, t.user_id)
        .await
        .expect("get")
        .expect("quota");
    let expired = Quota {
        start_date: q.start_date - 3 * day,
        expiration_date: q.expiration_date - 3 * day,
        ..q
    };
    pigeon_store::quotas::set(&t.app.store, &expired)
        .await
        .expect("age");
    assert_eq!(quotas::renew_due(&t.app).await.expect("renew"), 0);
    let q = pigeon_store::quotas::get(&t.app.store, t.user_id)
        .await
        .expect("get")
        .expect("quota");
    assert_eq!(q.remaining(Ts::now()), None);
}

/// A period of no time, or of negative time, is refused (renewing it would never end), and
/// one stored anyway is left alone by the renewals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_period_must_be_positive() {
    let t = spawn().await;
    for interval in ["P0D", "PT0S", "-P1D", "one month"] {
        let input = quotas::QuotaInput {
            credit: 100,
            additional: 0,
            interval: interval.into(),
            auto_renew: true,
            report_unused: false,
            report_unused_additional: false,
        };
        let refused = quotas::set(&t.app, "alice@example.com", &input).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("positive")),
            "{interval}: {refused:?}"
        );
    }
    let now = Ts::now().0;
    let stored = Quota {
        id: 0,
        user_id: t.user_id,
        credit: 10,
        additional: 0,
        consumed: 0,
        report_unused: false,
        report_unused_additional: false,
        auto_renew: true,
        renew_interval: "P0D".into(),
        start_date: now - 2000,
        expiration_date: now - 1000,
        alerted_level: false,
        alerted_reached: false,
    };
    pigeon_store::quotas::set(&t.app.store, &stored)
        .await
        .expect("stored");
    // On a task of its own: a renewal that never ends must fail the test, not hang it.
    let app = t.app.clone();
    let renewing = tokio::spawn(async move { quotas::renew_due(&app).await });
    let renewed = tokio::time::timeout(Duration::from_secs(5), renewing)
        .await
        .expect("renewals end");
    assert_eq!(renewed.expect("task").expect("renew"), 0);
}
