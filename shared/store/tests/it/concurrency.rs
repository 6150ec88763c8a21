//! Races: duplicate requests, competition for the last funds, credits during debits (Blnk
//! #238/#239), cancel against broadcast. Each spawns real parallel transactions.

use futures::future::join_all;
use meshpay_domain::{Amount, PaymentEvent, PaymentStatus};
use meshpay_store::{AuthorizeOutcome, Store, StoreError, Transition};
use meshpay_testkit::assets::usdc;

use crate::support::*;

const N: usize = 20;

async fn spawn_all<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    join_all(handles)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_requests_with_one_key_create_exactly_one_payment() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant_with_usdc(&s, 25, 1000).await;
    let q = quote(&s, m, 10).await;
    let outcomes = spawn_all(N, |_| {
        let (s, req) = (s.clone(), request(m, &q, "same-key"));
        async move { s.authorize_payment(&req, render).await }
    })
    .await;
    let outcomes: Vec<AuthorizeOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, AuthorizeOutcome::Created { .. }))
        .count();
    assert_eq!(created, 1);
    assert!(
        outcomes
            .iter()
            .all(|o| o.response() == outcomes[0].response())
    );
    assert_eq!(count(&s, "SELECT count(*) FROM payments").await, 1);
    assert_eq!(count(&s, "SELECT count(*) FROM holds").await, 2);
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM outbox WHERE topic = 'queue:payments-broadcast'"
        )
        .await,
        1
    );
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_authorizations_of_one_quote_under_different_keys_pay_once() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant_with_usdc(&s, 0, 1000).await;
    let q = quote(&s, m, 10).await;
    let results = spawn_all(N, |i| {
        let (s, req) = (s.clone(), request(m, &q, &format!("key-{i}")));
        async move { s.authorize_payment(&req, render).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::QuoteAlreadyUsed))
    );
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_authorizations_racing_for_the_last_funds_never_overdraw() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    // 100 USDC, twenty 10-USDC payments: exactly ten fit.
    let m = merchant_with_usdc(&s, 0, 100).await;
    let mut quotes = Vec::new();
    for _ in 0..N {
        quotes.push(quote(&s, m, 10).await);
    }
    let results = spawn_all(N, |i| {
        let (s, req) = (s.clone(), request(m, &quotes[i], &format!("k{i}")));
        async move { s.authorize_payment(&req, render).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 10);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(err, StoreError::InsufficientFunds { .. }),
            "{err:?}"
        );
    }
    let bal = s
        .balances(m)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.asset == usdc())
        .unwrap();
    assert_eq!((bal.available, bal.held), (Amount::ZERO, usdc_units(100)));
    ctx.finish().await;
}

/// Blnk #238/#239: credits to an account while it is being debited must not be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credits_arriving_during_parallel_holds_are_never_lost() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant_with_usdc(&s, 0, N as u64).await;
    let mut quotes = Vec::new();
    for _ in 0..N {
        quotes.push(quote(&s, m, 1).await);
    }
    let results = spawn_all(2 * N, |i| {
        let s = s.clone();
        let req = (i % 2 == 0).then(|| request(m, &quotes[i / 2], &format!("k{i}")));
        async move {
            match req {
                Some(req) => s.authorize_payment(&req, render).await.map(|_| ()),
                None => s
                    .fund(m, &usdc(), usdc_units(1), &format!("credit-{i}"))
                    .await
                    .map(|_| ()),
            }
        }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let bal = s
        .balances(m)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.asset == usdc())
        .unwrap();
    // Start 20 + 20 credits − 20 held.
    assert_eq!(
        (bal.available, bal.held),
        (usdc_units(N as u64), usdc_units(N as u64))
    );
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_funding_with_one_reference_posts_once() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant(&s, 0).await;
    let results = spawn_all(10, |_| {
        let s = s.clone();
        async move { s.fund(m, &usdc(), usdc_units(5), "one-wire").await.unwrap() }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    assert_eq!(s.balances(m).await.unwrap()[0].available, usdc_units(5));
    ctx.finish().await;
}

async fn race_cancel_and_broadcast(
    s: Store,
    m: meshpay_domain::MerchantId,
    key: String,
) -> (bool, bool) {
    let p = authorize(&s, m, &quote(&s, m, 1).await, &key).await;
    let (s1, s2) = (s.clone(), s.clone());
    let cancel = tokio::spawn(async move { s1.cancel_payment(m, p.id).await });
    let broadcast = tokio::spawn(async move {
        s2.transition_payment(&Transition::new(p.id, 1, PaymentEvent::Broadcast))
            .await
    });
    let (c, b) = (cancel.await.unwrap(), broadcast.await.unwrap());
    for err in [c.as_ref().err(), b.as_ref().err()].into_iter().flatten() {
        assert!(
            matches!(
                err,
                StoreError::Conflict { .. } | StoreError::IllegalTransition(_)
            ),
            "{err:?}"
        );
    }
    let end = s.get_payment(m, p.id).await.unwrap().unwrap();
    let expected = if c.is_ok() {
        PaymentStatus::Cancelled
    } else {
        PaymentStatus::Broadcast
    };
    assert_eq!(end.status, expected);
    (c.is_ok(), b.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_racing_broadcast_has_exactly_one_winner() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant_with_usdc(&s, 0, 100).await;
    for i in 0..10 {
        let (cancelled, broadcast) = race_cancel_and_broadcast(s.clone(), m, format!("k{i}")).await;
        assert!(
            cancelled ^ broadcast,
            "round {i}: cancel {cancelled}, broadcast {broadcast}"
        );
    }
    ctx.finish().await;
}

#[tokio::test]
async fn a_duplicate_that_waits_past_the_lock_timeout_is_told_in_flight() {
    let ctx = Ctx::new().await;
    let s = ctx.store.clone().with_config(meshpay_store::StoreConfig {
        lock_timeout: std::time::Duration::from_millis(200),
    });
    let m = merchant_with_usdc(&s, 0, 100).await;
    let q = quote(&s, m, 1).await;
    let req = request(m, &q, "slow");
    // Another request holds the key, uncommitted.
    let mut other = s.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_sha256, state)
         VALUES ($1, 'slow', $2, 'in_flight')",
    )
    .bind(m.as_uuid())
    .bind(&req.request_hash[..])
    .execute(&mut *other)
    .await
    .unwrap();
    let err = s.authorize_payment(&req, render).await.unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyInFlight), "{err:?}");
    assert!(err.is_retryable());
    // The other request died: its claim is gone and the key works.
    other.rollback().await.unwrap();
    assert!(matches!(
        s.authorize_payment(&req, render).await.unwrap(),
        AuthorizeOutcome::Created { .. }
    ));
    ctx.finish().await;
}

/// An authorization in progress holds `FOR KEY SHARE` on its merchant row (the foreign-key
/// check of its inserts); registering a webhook endpoint must not wait for it, nor make it wait.
#[tokio::test]
async fn registering_a_webhook_endpoint_does_not_wait_for_inserts_referencing_the_merchant() {
    use meshpay_store::webhooks::{CreateEndpointOutcome, NewWebhookEndpoint, WebhookEndpointId};
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    let ctx = Ctx::new().await;
    let s = ctx.store.clone();
    let m = merchant(&s, 0).await;
    let mut in_flight = s.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM merchants WHERE id = $1 FOR KEY SHARE")
        .bind(m.as_uuid())
        .execute(&mut *in_flight)
        .await
        .unwrap();
    // A lock wait would end in a lock_timeout error here instead of hanging the test.
    let options: PgConnectOptions = ctx.url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("lock_timeout", "2s")]))
        .await
        .unwrap();
    let bounded = Store::from_pool(pool);
    let sealed = vec![1u8; 60];
    let new = NewWebhookEndpoint {
        id: WebhookEndpointId::new(),
        merchant_id: m,
        url: "https://example.com/hook",
        event_types: None,
        secret_ciphertext: &sealed,
    };
    let created = bounded.create_webhook_endpoint(&new).await;
    assert!(
        matches!(created, Ok(CreateEndpointOutcome::Created(_))),
        "{created:?}"
    );
    in_flight.rollback().await.unwrap();
    ctx.finish().await;
}
