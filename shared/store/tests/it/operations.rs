//! Key lifecycle (expiry, rotation, listing), merchant suspension, the open-payments cap, the
//! admin audit trail and pruning.

use std::time::Duration;

use meshpay_domain::Scopes;
use meshpay_store::{AuditEntry, KeyCheck, KeyOptions, StoreError};
use time::OffsetDateTime;

use crate::support::*;

#[tokio::test]
async fn an_expired_key_is_told_apart_only_after_its_secret_matched() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let options = KeyOptions {
        rate_limit_per_sec: Some(7),
        expires_at: Some(past),
    };
    let expired = s
        .create_api_key_with(m, Scopes::all(), options)
        .await
        .unwrap();
    let key = expired.key.expose().to_owned();
    assert_eq!(s.check_api_key(&key).await.unwrap(), KeyCheck::Expired);
    assert_eq!(s.authenticate(&key).await.unwrap(), None);
    let wrong_secret = format!("{}{}", &key[..key.len() - 2], "00");
    let wrong_secret = if wrong_secret == key {
        format!("{}11", &key[..key.len() - 2])
    } else {
        wrong_secret
    };
    assert_eq!(
        s.check_api_key(&wrong_secret).await.unwrap(),
        KeyCheck::Rejected
    );

    let future = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let live = s
        .create_api_key_with(
            m,
            Scopes::all(),
            KeyOptions {
                expires_at: Some(future),
                ..options
            },
        )
        .await
        .unwrap();
    let KeyCheck::Valid(principal) = s.check_api_key(live.key.expose()).await.unwrap() else {
        panic!("a key before its expiry is valid");
    };
    assert_eq!(principal.rate_limit_per_sec, Some(7));
    ctx.finish().await;
}

#[tokio::test]
async fn rotation_issues_a_key_like_the_old_and_revokes_the_old_after_the_grace() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let scopes = Scopes::parse_list("payments:read").unwrap();
    let options = KeyOptions {
        rate_limit_per_sec: Some(3),
        expires_at: None,
    };
    let old = s.create_api_key_with(m, scopes, options).await.unwrap();

    let rotated = s
        .rotate_api_key(old.id, Duration::from_secs(3600), None)
        .await
        .unwrap();
    assert_eq!(rotated.new_key.scopes, scopes);
    assert!(rotated.old_revoked_at > OffsetDateTime::now_utc() + time::Duration::minutes(59));
    // In its grace both keys work.
    assert!(s.authenticate(old.key.expose()).await.unwrap().is_some());
    let new = s
        .authenticate(rotated.new_key.key.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.rate_limit_per_sec, Some(3));

    // Rotating the new key with no grace ends it now; the old one's grace is untouched.
    let again = s
        .rotate_api_key(rotated.new_key.id, Duration::ZERO, None)
        .await
        .unwrap();
    assert_eq!(
        s.authenticate(rotated.new_key.key.expose()).await.unwrap(),
        None
    );
    assert!(
        s.authenticate(again.new_key.key.expose())
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.rotate_api_key(rotated.new_key.id, Duration::ZERO, None)
            .await,
        Err(StoreError::Invalid(_))
    ));

    let listed = s.list_api_keys(Some(m)).await.unwrap();
    assert_eq!(listed.len(), 3);
    let old_row = listed.iter().find(|k| k.id == old.id).unwrap();
    assert_eq!(old_row.replaced_by, Some(rotated.new_key.id));
    assert_eq!(old_row.prefix, old.prefix);
    assert!(old_row.last_used_at.is_none());
    s.touch_api_key(old.id).await.unwrap();
    let listed = s.list_api_keys(None).await.unwrap();
    assert!(
        listed
            .iter()
            .find(|k| k.id == old.id)
            .unwrap()
            .last_used_at
            .is_some()
    );
    ctx.finish().await;
}

#[tokio::test]
async fn a_suspended_merchant_authenticates_and_authorizes_nothing_until_resumed() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    let key = s.create_api_key(m, Scopes::all()).await.unwrap();
    let q = quote(s, m, 10).await;

    let controls = s.suspend_merchant(m, "chargeback fraud").await.unwrap();
    assert!(controls.suspended_at.is_some());
    assert!(s.merchant_suspended(m).await.unwrap());
    assert_eq!(
        s.check_api_key(key.key.expose()).await.unwrap(),
        KeyCheck::Suspended
    );
    assert!(matches!(
        s.authorize_payment(&request(m, &q, "k1"), render).await,
        Err(StoreError::MerchantSuspended)
    ));
    assert!(matches!(
        s.suspend_merchant(m, " ").await,
        Err(StoreError::Invalid(_))
    ));

    s.resume_merchant(m).await.unwrap();
    assert!(s.authenticate(key.key.expose()).await.unwrap().is_some());
    authorize(s, m, &q, "k1").await;
    ctx.finish().await;
}

#[tokio::test]
async fn the_open_payments_cap_refuses_the_payment_over_it_and_writes_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    s.set_max_open_payments(m, Some(2)).await.unwrap();
    for key in ["k1", "k2"] {
        let q = quote(s, m, 10).await;
        authorize(s, m, &q, key).await;
    }
    let q = quote(s, m, 10).await;
    assert!(matches!(
        s.authorize_payment(&request(m, &q, "k3"), render).await,
        Err(StoreError::OpenPaymentsCap { limit: 2 })
    ));
    assert_eq!(count(s, "SELECT count(*) FROM payments").await, 2);
    s.set_max_open_payments(m, Some(3)).await.unwrap();
    authorize(s, m, &q, "k3").await;
    ctx.finish().await;
}

#[tokio::test]
async fn an_audit_row_is_written_before_the_command_and_finished_after() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let args = serde_json::json!({ "payment": "pay_x" });
    let entry = AuditEntry {
        actor: "ops",
        command: "payments requeue",
        args: &args,
    };
    let id = s.start_audit(&entry).await.unwrap();
    let open = s.list_audit(10).await.unwrap();
    assert_eq!(open[0].outcome, None);
    s.finish_audit(id, Some("payment pay_x not found"))
        .await
        .unwrap();
    let rows = s.list_audit(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].actor.as_str(), rows[0].command.as_str()),
        ("ops", "payments requeue")
    );
    assert_eq!(rows[0].args, args);
    assert_eq!(rows[0].outcome.as_deref(), Some("error"));
    assert!(rows[0].finished_at.is_some());
    ctx.finish().await;
}

#[tokio::test]
async fn pruning_removes_only_unused_quotes_and_keys_past_retention() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    let used = quote(s, m, 10).await;
    authorize(s, m, &used, "k-old").await;
    let unused = quote(s, m, 10).await;
    let fresh = quote(s, m, 10).await;
    // Age everything but `fresh` two days.
    sqlx::query("UPDATE quotes SET expires_at = now() - interval '2 days' WHERE id <> $1")
        .bind(fresh.id.as_uuid())
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '2 days'")
        .execute(s.pool())
        .await
        .unwrap();
    let report = s
        .prune_expired(Duration::from_secs(86_400), 100)
        .await
        .unwrap();
    assert_eq!((report.quotes, report.idempotency_keys), (1, 1));
    assert!(s.get_quote(m, unused.id).await.unwrap().is_none());
    assert!(s.get_quote(m, used.id).await.unwrap().is_some());
    assert!(s.get_quote(m, fresh.id).await.unwrap().is_some());
    ctx.finish().await;
}
