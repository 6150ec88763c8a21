//! The dispatcher against PostgreSQL and a local merchant endpoint.

use std::time::Duration;

use meshpay_domain::{Amount, FailureReason, MerchantId, PaymentEvent};
use meshpay_store::webhooks::{ClaimLimits, DeliveryPage, DeliveryStatus, ListDeliveries};

use crate::support::{Ctx, Hook};

const PIPELINE: [PaymentEvent; 3] = [
    PaymentEvent::Broadcast,
    PaymentEvent::Confirm,
    PaymentEvent::Settle {
        network_fee: Amount::ZERO,
    },
];

/// The merchant's deliveries, newest first (a test makes fewer than a page).
async fn deliveries(ctx: &Ctx, merchant: MerchantId) -> DeliveryPage {
    let all = ListDeliveries {
        limit: 100,
        ..ListDeliveries::default()
    };
    ctx.store
        .list_webhook_deliveries(merchant, &all)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_arrive_signed_in_order_with_a_stable_id_across_retries() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    // The first two attempts fail: the first event is retried, and nothing overtakes it.
    let hook = Hook::start(&[500, 503], 200).await;
    let (_, secret) = ctx.endpoint(m, &hook.url("/hook"), None).await;
    let p = ctx.payment(m).await;
    let p = ctx.advance(p, &PIPELINE).await;

    let dispatcher = ctx.dispatcher("0,1s,2s,3s,4s,5s");
    ctx.run_until(&dispatcher, async || hook.acknowledged_types().len() == 4)
        .await;

    assert_eq!(
        hook.acknowledged_types(),
        [
            "payment.authorized",
            "payment.broadcast",
            "payment.confirmed",
            "payment.settled"
        ]
    );
    let received = hook.received();
    assert_eq!(received.len(), 6, "two failures, then four deliveries");
    for r in &received {
        assert!(r.verifies_with(&secret), "bad signature: {:?}", r.headers);
        assert_eq!(r.header("content-type"), "application/json");
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(
            (now - 60..=now).contains(&ts),
            "timestamp of the attempt: {ts}"
        );
    }
    // The retries of the first event carry its id; every event has its own.
    let ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids[0].starts_with("msg_"));
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
    // A thin body with the event's own status and version, no merchant metadata.
    let settled = received[5].json();
    assert_eq!(settled["type"], "payment.settled");
    let data = &settled["data"];
    assert_eq!(data["object"], "payment");
    assert_eq!(data["id"], p.id.to_string());
    assert_eq!(data["status"], "settled");
    assert_eq!(data["version"], 4);
    assert_eq!(data["amount"]["value"], "25.00");
    assert_eq!(data["amount"]["base_units"], "25000000");
    assert_eq!(data["reference"], "order-7");
    assert!(data.get("metadata").is_none());
    assert!(received[0].body.len() < 20 * 1024);
    assert_eq!(received[0].json()["data"]["status"], "authorized");
    assert_eq!(received[0].json()["data"]["version"], 1);

    let page = deliveries(&ctx, m).await;
    assert_eq!(page.items.len(), 4);
    assert!(
        page.items
            .iter()
            .all(|d| d.status == DeliveryStatus::Succeeded)
    );
    let first = page.items.last().unwrap();
    assert_eq!(
        (
            first.event_type.as_str(),
            first.attempts,
            first.last_status_code
        ),
        ("payment.authorized", 3, Some(200))
    );
    let detail = ctx
        .store
        .get_webhook_delivery(m, first.id)
        .await
        .unwrap()
        .unwrap();
    let codes: Vec<Option<i32>> = detail.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
}

#[tokio::test]
async fn a_later_event_waits_while_an_earlier_one_of_the_same_payment_is_pending() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let hook = Hook::start(&[], 200).await;
    ctx.endpoint(m, &hook.url("/hook"), None).await;
    let first = ctx.payment(m).await;
    ctx.advance(first, &[PaymentEvent::Broadcast]).await;
    ctx.payment(m).await;
    // Fan out without sending: one claim may take authorized of both payments, never
    // broadcast of the first while its authorized is pending.
    let report = ctx
        .store
        .fan_out_webhook_events(100, |e, p| {
            meshpay_webhooks::events::render(e, p, &ctx.chains)
        })
        .await
        .unwrap();
    assert_eq!((report.events, report.deliveries), (3, 3));
    let limits = ClaimLimits {
        batch: 10,
        per_endpoint: 10,
        lease: Duration::from_secs(60),
    };
    let claimed = ctx.store.claim_webhook_deliveries(limits).await.unwrap();
    let mut types: Vec<&str> = claimed.iter().map(|c| c.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["payment.authorized", "payment.authorized"]);
    // Claimed (leased) deliveries are not claimed again, and still block their successors.
    assert!(
        ctx.store
            .claim_webhook_deliveries(limits)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_claim_gives_each_endpoint_its_share_so_one_backlog_cannot_crowd_out_another() {
    let ctx = Ctx::new().await;
    let (busy, quiet) = (ctx.merchant().await, ctx.merchant().await);
    let hook = Hook::start(&[], 200).await;
    let (busy_endpoint, _) = ctx.endpoint(busy, &hook.url("/hook"), None).await;
    let (quiet_endpoint, _) = ctx.endpoint(quiet, &hook.url("/hook"), None).await;
    for _ in 0..5 {
        ctx.payment(busy).await;
    }
    ctx.payment(quiet).await;
    ctx.store
        .fan_out_webhook_events(100, |e, p| {
            meshpay_webhooks::events::render(e, p, &ctx.chains)
        })
        .await
        .unwrap();
    let limits = ClaimLimits {
        batch: 3,
        per_endpoint: 2,
        lease: Duration::from_secs(60),
    };
    let claimed = ctx.store.claim_webhook_deliveries(limits).await.unwrap();
    let to = |endpoint| claimed.iter().filter(|c| c.endpoint_id == endpoint).count();
    assert_eq!((to(busy_endpoint.id), to(quiet_endpoint.id)), (2, 1));
    // The rest of the backlog comes in later claims, oldest first, each delivery once.
    let mut seen: Vec<_> = claimed.iter().map(|c| c.id).collect();
    loop {
        let next = ctx.store.claim_webhook_deliveries(limits).await.unwrap();
        if next.is_empty() {
            break;
        }
        assert!(next.iter().all(|c| c.endpoint_id == busy_endpoint.id));
        seen.extend(next.iter().map(|c| c.id));
    }
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!((seen.len(), distinct.len()), (6, 6));
}

#[tokio::test]
async fn a_slow_endpoint_holds_a_few_slots_while_other_merchants_events_go_out() {
    let ctx = Ctx::new().await;
    let (slow, quick) = (ctx.merchant().await, ctx.merchant().await);
    let hook = Hook::start(&[], 200).await;
    ctx.endpoint(slow, &hook.url("/slow"), None).await;
    ctx.endpoint(quick, &hook.url("/hook"), None).await;
    // The slow merchant's twelve events are older: they come first in due order.
    for _ in 0..12 {
        ctx.payment(slow).await;
    }
    let quick_payment = ctx.payment(quick).await.id.to_string();

    let report = ctx.dispatcher("0,5s").run_once().await.unwrap();

    assert_eq!((report.attempted, report.succeeded), (13, 13));
    let received = hook.received();
    let is_quick = |r: &&crate::support::Received| r.json()["data"]["id"] == quick_payment;
    let quick_at = received.iter().find(is_quick).unwrap().at;
    let first_slow = received
        .iter()
        .filter(|r| !is_quick(r))
        .map(|r| r.at)
        .min()
        .unwrap();
    // Sent before any of the slow endpoint's requests was answered: it did not wait for a
    // slot the slow endpoint held.
    assert!(
        quick_at < first_slow + crate::support::SLOW,
        "the quick merchant's event waited {:?} behind the slow endpoint",
        quick_at - first_slow
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_fails_its_pending_deliveries() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let gone = Hook::start(&[], 410).await;
    let (endpoint, _) = ctx.endpoint(m, &gone.url("/hook"), None).await;
    let p = ctx.payment(m).await;
    ctx.advance(p, &[PaymentEvent::Broadcast]).await;
    let dispatcher = ctx.dispatcher("0,1s,2s");
    let store = ctx.store.clone();
    ctx.run_until(&dispatcher, async || {
        store.list_webhook_endpoints(m).await.unwrap()[0]
            .disabled_at
            .is_some()
    })
    .await;

    assert_eq!(gone.received().len(), 1, "nothing is sent after the 410");
    let endpoints = ctx.store.list_webhook_endpoints(m).await.unwrap();
    assert_eq!(endpoints[0].id, endpoint.id);
    assert!(
        endpoints[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("410")
    );
    let page = deliveries(&ctx, m).await;
    assert_eq!(page.items.len(), 2);
    assert!(
        page.items
            .iter()
            .all(|d| d.status == DeliveryStatus::Failed)
    );
    let broadcast = &page.items[0];
    assert_eq!(broadcast.event_type, "payment.broadcast");
    assert_eq!(broadcast.attempts, 0, "never attempted");
    assert!(
        broadcast
            .last_error
            .as_deref()
            .unwrap()
            .contains("disabled")
    );
    // Later events are not fanned out to a disabled endpoint.
    ctx.payment(m).await;
    dispatcher.run_once().await.unwrap();
    assert_eq!(gone.received().len(), 1);
}

#[tokio::test]
async fn a_delivery_fails_after_the_last_scheduled_attempt() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let down = Hook::start(&[], 500).await;
    ctx.endpoint(m, &down.url("/hook"), None).await;
    let p = ctx.payment(m).await;
    ctx.advance(p, &[PaymentEvent::Cancel]).await;
    let dispatcher = ctx.dispatcher("0,1s,2s");
    let store = ctx.store.clone();
    let failed = ListDeliveries {
        status: Some(DeliveryStatus::Failed),
        limit: 10,
        ..ListDeliveries::default()
    };
    ctx.run_until(&dispatcher, async || {
        store
            .list_webhook_deliveries(m, &failed)
            .await
            .unwrap()
            .items
            .len()
            == 2
    })
    .await;
    let page = ctx.store.list_webhook_deliveries(m, &failed).await.unwrap();
    let authorized = &page.items[1];
    assert_eq!(authorized.attempts, 3);
    assert_eq!(authorized.last_status_code, Some(500));
    // The cancelled event waited for authorized to finish, then had its own three attempts.
    assert_eq!(page.items[0].event_type, "payment.cancelled");
    assert_eq!(page.items[0].attempts, 3);
    assert_eq!(down.received().len(), 6);
    let types: Vec<String> = down
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&types[..3], ["payment.authorized"; 3]);
    assert_eq!(&types[3..], ["payment.cancelled"; 3]);
}

#[tokio::test]
async fn a_response_holding_nul_is_stored_sanitised_and_retried_on_schedule() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let hook = Hook::start(&[], 200).await;
    ctx.endpoint(m, &hook.url("/nul"), None).await;
    ctx.payment(m).await;
    // The second attempt is an hour away: a run right after the first sends nothing.
    let dispatcher = ctx.dispatcher("0,1h");
    let first = dispatcher.run_once().await.unwrap();
    assert_eq!(
        (first.attempted, first.retrying, first.unrecorded),
        (1, 1, 0)
    );
    let again = dispatcher.run_once().await.unwrap();
    assert_eq!(again.attempted, 0, "{again:?}");

    let page = deliveries(&ctx, m).await;
    let delivery = &page.items[0];
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(delivery.attempts, 1);
    let detail = ctx
        .store
        .get_webhook_delivery(m, delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        detail.attempts[0].response_excerpt.as_deref(),
        Some("oops\u{FFFD}here")
    );
}

#[tokio::test]
async fn subscriptions_filter_event_types_and_merchants_only_get_their_own_events() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let other = ctx.merchant().await;
    let hook = Hook::start(&[], 200).await;
    let failed_only = vec!["payment.failed".to_owned()];
    ctx.endpoint(m, &hook.url("/hook"), Some(&failed_only))
        .await;
    let p = ctx.payment(m).await;
    ctx.advance(
        p,
        &[
            PaymentEvent::Broadcast,
            PaymentEvent::Fail {
                reason: FailureReason::new("transfer reverted"),
                network_fee: None,
            },
        ],
    )
    .await;
    let q = ctx.payment(other).await;
    ctx.advance(q, &[PaymentEvent::Cancel]).await;
    let dispatcher = ctx.dispatcher("0,1s");
    ctx.run_until(&dispatcher, async || !hook.received().is_empty())
        .await;
    dispatcher.run_once().await.unwrap();
    assert_eq!(hook.acknowledged_types(), ["payment.failed"]);
    let body = hook.received()[0].json();
    assert_eq!(body["data"]["status"], "failed");
    assert!(body["data"]["failure_reason"].is_string(), "{body}");
    assert_eq!(
        ctx.count("SELECT count(*) FROM outbox WHERE topic = 'webhook' AND dispatched_at IS NULL")
            .await,
        0,
        "every event is consumed, subscribed or not"
    );
    assert_eq!(
        ctx.count("SELECT count(*) FROM webhook_deliveries").await,
        1
    );
}

#[tokio::test]
async fn a_late_result_of_an_expired_lease_does_not_overwrite_the_newer_attempt() {
    use meshpay_store::webhooks::{AttemptRecord, AttemptVerdict};
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    ctx.endpoint(m, "http://127.0.0.1:9/hook", None).await;
    ctx.payment(m).await;
    ctx.store
        .fan_out_webhook_events(10, |e, p| {
            meshpay_webhooks::events::render(e, p, &ctx.chains)
        })
        .await
        .unwrap();
    let lease = ClaimLimits {
        batch: 10,
        per_endpoint: 10,
        lease: Duration::ZERO,
    };
    let first = ctx.store.claim_webhook_deliveries(lease).await.unwrap();
    let second = ctx.store.claim_webhook_deliveries(lease).await.unwrap();
    assert_eq!((first[0].attempt, second[0].attempt), (1, 2));
    let record = |attempt| AttemptRecord {
        delivery_id: first[0].id,
        attempt,
        started_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
        status_code: Some(200),
        error: None,
        response_excerpt: None,
    };
    let stale = ctx
        .store
        .record_webhook_attempt(&record(1), &AttemptVerdict::Succeeded)
        .await
        .unwrap();
    assert!(!stale, "attempt 1 finished after attempt 2 was claimed");
    let applied = ctx
        .store
        .record_webhook_attempt(&record(2), &AttemptVerdict::GiveUp)
        .await
        .unwrap();
    assert!(applied);
    let d = deliveries(&ctx, m).await;
    assert_eq!(d.items[0].status, DeliveryStatus::Failed);
    assert_eq!(ctx.count("SELECT count(*) FROM webhook_attempts").await, 2);
}

#[tokio::test]
async fn deleting_an_endpoint_fails_its_pending_deliveries_and_is_tenant_scoped() {
    let ctx = Ctx::new().await;
    let m = ctx.merchant().await;
    let other = ctx.merchant().await;
    let (endpoint, _) = ctx.endpoint(m, "http://127.0.0.1:9/hook", None).await;
    ctx.payment(m).await;
    ctx.store
        .fan_out_webhook_events(10, |e, p| {
            meshpay_webhooks::events::render(e, p, &ctx.chains)
        })
        .await
        .unwrap();
    assert!(
        !ctx.store
            .delete_webhook_endpoint(other, endpoint.id)
            .await
            .unwrap()
    );
    assert!(
        ctx.store
            .delete_webhook_endpoint(m, endpoint.id)
            .await
            .unwrap()
    );
    assert!(
        !ctx.store
            .delete_webhook_endpoint(m, endpoint.id)
            .await
            .unwrap()
    );
    assert!(
        ctx.store
            .list_webhook_endpoints(m)
            .await
            .unwrap()
            .is_empty()
    );
    let d = deliveries(&ctx, m).await;
    assert_eq!(d.items[0].status, DeliveryStatus::Failed);
    assert_eq!(d.items[0].last_error.as_deref(), Some("endpoint deleted"));
    assert!(deliveries(&ctx, other).await.items.is_empty());
}
