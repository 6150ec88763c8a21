//! `KeyVaultSigner` against the double: protocol, retries, and refusing bad signatures.

use crate::{connect, fast_retry, start_double};
use alloy::primitives::{B256, keccak256};
use alloy::signers::Signer;
use alloy::signers::k256::ecdsa::SigningKey;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{SignParameters, SignatureAlgorithm};
use meshpay_signer::testing::{
    BadSignature, DoubleOptions, Fault, KeyVaultDouble, RedirectToDouble,
};
use meshpay_signer::{KeyVaultSignerError, key_client_options};
use std::sync::Arc;
use std::time::Duration;

fn digest(i: u32) -> B256 {
    keccak256(i.to_be_bytes())
}

fn sign_requests(double: &KeyVaultDouble) -> Vec<meshpay_signer::testing::double::Seen> {
    double
        .seen()
        .into_iter()
        .filter(|seen| seen.path.ends_with("/sign"))
        .collect()
}

#[tokio::test]
async fn address_comes_from_the_key_vault_jwk() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let expected = alloy::signers::utils::secret_key_to_address(&double.options().signing_key);
    assert_eq!(Signer::address(&signer), expected);
}

#[tokio::test]
async fn first_request_meets_the_bearer_challenge_and_later_ones_carry_a_cached_token() {
    let double = start_double().await;
    let (signer, credential) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    for i in 0..3 {
        signer.sign_hash(&digest(i)).await.unwrap();
    }
    let seen = double.seen();
    assert_eq!(
        (seen[0].authorized, seen[0].status),
        (false, 401),
        "{seen:?}"
    );
    assert!(
        seen[1..].iter().all(|s| s.authorized && s.status == 200),
        "{seen:?}"
    );
    assert_eq!(
        seen.len(),
        1 + 1 + 3,
        "challenge, get_key, three signs: {seen:?}"
    );
    assert_eq!(credential.calls(), 1, "token cached by the client");
}

#[tokio::test]
async fn without_a_version_the_current_one_is_pinned_for_signing() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let version = double.options().key_version.clone();
    assert_eq!(signer.key_version(), version);
    assert!(signer.key_id().ends_with(&format!("/keys/hot-1/{version}")));
    signer.sign_hash(&digest(1)).await.unwrap();
    let seen = double.seen();
    assert_eq!(seen[1].path, "/keys/hot-1/", "get_key without version");
    assert_eq!(
        sign_requests(&double)[0].path,
        format!("/keys/hot-1/{version}/sign")
    );
}

#[tokio::test]
async fn an_unknown_pinned_version_fails_at_construction_without_retries() {
    let double = start_double().await;
    let (signer, _) = connect(
        &double,
        Some("0000000000000000000000000000dead"),
        fast_retry(),
    )
    .await;
    let error = signer.unwrap_err();
    assert!(
        matches!(
            error,
            KeyVaultSignerError::Request {
                operation: "get_key",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let not_found = double.seen().iter().filter(|s| s.status == 404).count();
    assert_eq!(not_found, 1);
}

#[tokio::test]
async fn high_s_answers_are_normalized_and_every_signature_recovers_to_the_wallet() {
    let double = KeyVaultDouble::start(DoubleOptions {
        high_s_every: 2,
        ..DoubleOptions::new()
    })
    .await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let half_order = alloy::primitives::U256::from_be_bytes(alloy::primitives::hex!(
        "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
    ));
    for i in 0..10 {
        let signature = signer.sign_hash(&digest(i)).await.unwrap();
        assert!(signature.s() <= half_order, "low s");
        assert_eq!(
            signature.recover_address_from_prehash(&digest(i)).unwrap(),
            Signer::address(&signer)
        );
    }
    assert_eq!(double.signature_counts(), (10, 5));
}

#[tokio::test]
async fn throttled_requests_are_retried_until_key_vault_answers() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    double.inject(
        Fault::Throttle {
            retry_after_secs: Some(0),
        },
        3,
    );
    signer.sign_hash(&digest(7)).await.unwrap();
    let statuses: Vec<u16> = sign_requests(&double).iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 429, 429, 200]);
}

#[tokio::test]
async fn persistent_throttling_ends_in_a_transient_error_after_the_attempt_limit() {
    let double = start_double().await;
    let retry = meshpay_signer::RetryConfig {
        max_attempts: 3,
        ..fast_retry()
    };
    let (signer, _) = connect(&double, None, retry).await;
    let signer = signer.unwrap();
    double.inject(
        Fault::Throttle {
            retry_after_secs: None,
        },
        10,
    );
    let error = signer.sign_hash(&digest(7)).await.unwrap_err();
    let error = KeyVaultSignerError::from_alloy(&error).expect("a Key Vault error");
    assert!(
        matches!(
            error,
            KeyVaultSignerError::RetriesExhausted {
                operation: "sign",
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(sign_requests(&double).len(), 3);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_returns_at_once_as_transient() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    double.inject(
        Fault::Throttle {
            retry_after_secs: Some(3_600),
        },
        1,
    );
    let error = signer.sign_digest(&digest(7)).await.unwrap_err();
    assert!(
        matches!(
            error,
            KeyVaultSignerError::RetryAfterTooLong {
                retry_after_ms: 3_600_000,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(sign_requests(&double).len(), 1);
}

#[tokio::test]
async fn server_errors_and_slow_answers_are_retried() {
    let double = start_double().await;
    let retry = meshpay_signer::RetryConfig {
        attempt_timeout_ms: 300,
        ..fast_retry()
    };
    let (signer, _) = connect(&double, None, retry).await;
    let signer = signer.unwrap();
    double.inject(Fault::Status(503), 1);
    double.inject(Fault::Delay(Duration::from_secs(3)), 1);
    signer.sign_hash(&digest(7)).await.unwrap();
    let statuses: Vec<u16> = sign_requests(&double).iter().map(|s| s.status).collect();
    // The timed-out attempt is logged by the double only once it answers, if at all.
    assert_eq!(statuses.first(), Some(&503));
    assert_eq!(statuses.last(), Some(&200));
}

#[tokio::test]
async fn a_signature_from_another_key_is_an_error_not_a_signature() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let other = SigningKey::from_slice(keccak256("another key").as_slice()).unwrap();
    double.corrupt_next_signature(BadSignature::OtherKey(other));
    let error = signer.sign_digest(&digest(1)).await.unwrap_err();
    assert!(
        matches!(error, KeyVaultSignerError::DoesNotRecover { address } if address == Signer::address(&signer)),
        "{error:?}"
    );
    assert!(!error.is_transient());
    signer
        .sign_digest(&digest(1))
        .await
        .expect("next signature is fine again");
}

#[tokio::test]
async fn a_der_or_wrong_length_signature_is_rejected() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let der_like = [&[0x30u8, 0x44, 0x02, 0x20][..], &[7u8; 66][..]].concat();
    double.corrupt_next_signature(BadSignature::Bytes(der_like));
    double.corrupt_next_signature(BadSignature::Bytes(vec![7u8; 65]));
    let error = signer.sign_digest(&digest(1)).await.unwrap_err();
    assert!(
        matches!(error, KeyVaultSignerError::SignatureLength { len: 70 }),
        "{error:?}"
    );
    let error = signer.sign_digest(&digest(1)).await.unwrap_err();
    assert!(
        matches!(error, KeyVaultSignerError::SignatureLength { len: 65 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn debug_output_names_key_and_address_but_no_token() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let shown = format!("{signer:?}");
    assert!(
        shown.contains("meshpay-test.vault.azure.net/keys/hot-1/"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{:?}", Signer::address(&signer))),
        "{shown}"
    );
    assert!(
        !shown.contains(meshpay_signer::testing::double::TOKEN),
        "{shown}"
    );
}

/// The SDK's unversioned paths (`/keys/<name>/`, `/keys/<name>//sign`) work against the
/// double, so it matches what a client without a pinned version sends.
#[tokio::test]
async fn the_double_serves_the_sdks_unversioned_sign_path() {
    let double = start_double().await;
    let credential = Arc::new(meshpay_signer::testing::FakeCredential::default());
    let options = key_client_options(Some(RedirectToDouble::transport(double.addr())));
    let client = KeyClient::new(&double.options().vault_url, credential, Some(options)).unwrap();
    let parameters = SignParameters {
        algorithm: Some(SignatureAlgorithm::Es256K),
        value: Some(digest(3).to_vec()),
    };
    let result = client
        .sign("hot-1", parameters.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(result.result.map(|raw| raw.len()), Some(64));
    assert_eq!(
        sign_requests(&double).last().map(|s| s.path.clone()),
        Some("/keys/hot-1//sign".to_owned())
    );
}

#[tokio::test]
async fn a_throttle_burst_is_waited_out_for_its_retry_after_before_the_sign_is_retried() {
    use meshpay_signer::testing::{SignStats, ThrottleBursts};
    let options = DoubleOptions {
        throttle: Some(ThrottleBursts {
            every: 1_000,
            burst: 1,
            retry_after_secs: 1,
        }),
        ..DoubleOptions::new()
    };
    let double = KeyVaultDouble::start(options).await;
    // The signer's own backoff (5 ms) is far shorter than the service's Retry-After.
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let started = std::time::Instant::now();
    signer.sign_hash(&digest(7)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}, before the 1 s Retry-After",
        started.elapsed()
    );
    assert_eq!(
        double.sign_stats(),
        SignStats {
            requests: 2,
            throttled: 1
        }
    );
}
