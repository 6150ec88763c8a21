//! Signing rates, printed (no assertions). Run: `cargo bench -p meshpay-signer --bench sign_rate`
//!
//! 1. raw k256 `sign_prehash` (RFC 6979), the floor for any local signer;
//! 2. alloy `PrivateKeySigner::sign_hash` (k256 + recovery id): the dev-stack signer;
//! 3. `ecdsa::ethereum_signature` alone: Key Vault answer → Ethereum signature (low-s + trial
//!    recovery), half the inputs high-s;
//! 4. `KeyVaultSigner::sign_hash` against the in-process Key Vault double over loopback HTTP,
//!    sequential and with 16 in flight. The double signs with k256 on the same 2 cores, so this
//!    is the client's overhead plus a local signature, not Key Vault's latency (~90 ms per call
//!    on a warm connection per Azure/azure-sdk-for-net#2911).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloy::primitives::{B256, keccak256};
use alloy::signers::k256::ecdsa::{Signature as K256Signature, signature::hazmat::PrehashSigner};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::{Signer, SignerSync};
use futures::{StreamExt, stream};
use meshpay_signer::testing::double::{self, DoubleOptions, KeyVaultDouble};
use meshpay_signer::testing::{FakeCredential, RedirectToDouble};
use meshpay_signer::{CredentialConfig, KeyVaultConfig, KeyVaultSigner, RetryConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_secs(3);

fn digest(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

/// Calls `op` with 0, 1, 2, … for [`RUN_FOR`] and prints operations per second.
fn rate(label: &str, mut op: impl FnMut(u64)) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN_FOR {
        op(n);
        n += 1;
    }
    report(label, n, start.elapsed());
}

fn report(label: &str, n: u64, elapsed: Duration) {
    let per_second = n as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / n as f64;
    println!("{label:<58} {per_second:>10.0} /s  {micros:>9.1} us/op  (n={n})");
}

fn main() {
    let options = DoubleOptions::new();
    let key = options.signing_key.clone();

    rate("raw k256 sign_prehash", |i| {
        let _: K256Signature = key.sign_prehash(digest(i).as_slice()).unwrap();
    });

    let local = PrivateKeySigner::from_signing_key(key.clone());
    rate("alloy PrivateKeySigner::sign_hash_sync", |i| {
        local.sign_hash_sync(&digest(i)).unwrap();
    });

    let public_key = *key.verifying_key();
    let answers: Vec<(B256, Vec<u8>)> = (0..1024)
        .map(|i| {
            let low: K256Signature = key.sign_prehash(digest(i).as_slice()).unwrap();
            let raw = if i % 2 == 0 {
                double::to_high_s(&low)
            } else {
                low
            };
            (digest(i), raw.to_bytes().to_vec())
        })
        .collect();
    rate(
        "ecdsa::ethereum_signature (normalize + trial recovery)",
        |i| {
            let (digest, raw) = &answers[(i % 1024) as usize];
            meshpay_signer::ecdsa::ethereum_signature(raw, digest, &public_key).unwrap();
        },
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(key_vault_rates(options));
}

async fn key_vault_rates(options: DoubleOptions) {
    let double = KeyVaultDouble::start(options).await;
    let config = KeyVaultConfig {
        vault_url: double.options().vault_url.clone(),
        key_name: double.options().key_name.clone(),
        key_version: None,
        credential: CredentialConfig::ManagedIdentity { client_id: None },
        chain_id: None,
        retry: RetryConfig::default(),
    };
    let signer = KeyVaultSigner::from_config_with(
        &config,
        Arc::new(FakeCredential::default()),
        Some(RedirectToDouble::transport(double.addr())),
    )
    .await
    .unwrap();

    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN_FOR {
        signer.sign_hash(&digest(n)).await.unwrap();
        n += 1;
    }
    report(
        "KeyVaultSigner vs local double, sequential",
        n,
        start.elapsed(),
    );

    for in_flight in [4, 16] {
        let start = Instant::now();
        let mut done = 0;
        while start.elapsed() < RUN_FOR {
            let batch = stream::iter(0..256u64)
                .map(|i| {
                    let signer = &signer;
                    async move { signer.sign_hash(&digest(done + i)).await.unwrap() }
                })
                .buffer_unordered(in_flight);
            done += batch.count().await as u64;
        }
        report(
            &format!("KeyVaultSigner vs local double, {in_flight} in flight"),
            done,
            start.elapsed(),
        );
    }
    let (signatures, high_s) = double.signature_counts();
    println!("double: {signatures} signatures, {high_s} answered high-s (all normalized)");
}
