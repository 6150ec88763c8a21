//! API keys: creation, authentication, revocation.

use meshpay_domain::{Scope, Scopes};
use meshpay_store::{KEY_PREFIX, StoreError};

use crate::support::*;

#[tokio::test]
async fn a_created_key_authenticates_as_its_merchant_with_its_scopes() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let scopes = Scopes::parse_list("quotes:write,payments:read").unwrap();
    let created = s.create_api_key(m, scopes).await.unwrap();
    assert!(created.key.expose().starts_with(KEY_PREFIX));
    assert!(!format!("{created:?}").contains(created.key.expose()));

    let principal = s.authenticate(created.key.expose()).await.unwrap().unwrap();
    assert_eq!((principal.merchant_id, principal.key_id), (m, created.id));
    assert!(principal.has(Scope::QuotesWrite) && !principal.has(Scope::PaymentsWrite));
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT secret_sha256 FROM api_keys")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    ctx.finish().await;
}

#[tokio::test]
async fn wrong_malformed_or_revoked_keys_do_not_authenticate() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let created = s.create_api_key(m, Scopes::all()).await.unwrap();
    let key = created.key.expose().to_owned();
    let last = key.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    for bad in [
        tampered.as_str(),
        "",
        "Bearer x",
        &key[..key.len() - 1],
        &format!("{key}0"),
    ] {
        assert_eq!(s.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }
    let info = s.revoke_api_key(created.id).await.unwrap();
    assert!(info.revoked_at.is_some());
    assert_eq!(s.authenticate(&key).await.unwrap(), None);
    // Revoking again keeps the first revocation time.
    assert_eq!(
        s.revoke_api_key(created.id).await.unwrap().revoked_at,
        info.revoked_at
    );
    ctx.finish().await;
}

#[tokio::test]
async fn keys_need_a_scope_and_an_existing_merchant() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    assert!(matches!(
        s.create_api_key(m, Scopes::NONE).await,
        Err(StoreError::Invalid(_))
    ));
    let ghost = meshpay_domain::MerchantId::new();
    assert!(matches!(
        s.create_api_key(ghost, Scopes::all()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_api_key(meshpay_domain::ApiKeyId::new()).await,
        Err(StoreError::NotFound)
    ));
    ctx.finish().await;
}
