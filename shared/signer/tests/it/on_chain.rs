//! Signed transactions accepted by a real anvil: the proof that normalization and parity are
//! right is that the node recovers our address as the sender.

use crate::{connect, fast_retry, start_double};
use alloy::consensus::{SignableTransaction, TxEip1559, TxType};
use alloy::network::{EthereumWallet, TransactionBuilder, TxSigner};
use alloy::primitives::{Address, TxKind, U256, address};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::Signer;
use meshpay_signer::{LocalConfig, LocalKeySource, WalletSigner};
use meshpay_testkit::anvil::Anvil;
use serde_json::json;

const RECIPIENT: Address = address!("00000000000000000000000000000000000beef1");
const TRANSFERS: u64 = 24;
/// secp256k1 n / 2: EIP-2's ceiling for s in transactions.
const HALF_ORDER: U256 = U256::from_be_bytes(alloy::primitives::hex!(
    "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
));

/// Sends `count` native transfers to [`RECIPIENT`] one after another and checks each receipt
/// names `from` as sender; returns the total sent.
async fn send_transfers(provider: &impl Provider, from: Address, count: u64) -> U256 {
    let mut total = U256::ZERO;
    for i in 0..count {
        let value = U256::from(1_000_000 + i);
        let tx = TransactionRequest::default()
            .with_to(RECIPIENT)
            .with_value(value);
        let receipt = provider
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "transfer {i} reverted");
        assert_eq!(
            receipt.from, from,
            "transfer {i}: sender recovered by anvil"
        );
        assert_eq!(receipt.transaction_type(), TxType::Eip1559);
        // anvil (1.7) accepts high-s transactions, so acceptance alone does not prove EIP-2
        // compliance (geth and reth reject them): read the signature back.
        let mined: serde_json::Value = provider
            .raw_request(
                "eth_getTransactionByHash".into(),
                (receipt.transaction_hash,),
            )
            .await
            .unwrap();
        let s: U256 = mined["s"].as_str().unwrap().parse().unwrap();
        assert!(s <= HALF_ORDER, "transfer {i} went out with high s {s:#x}");
        total += value;
    }
    total
}

#[tokio::test]
async fn key_vault_signed_transfers_are_accepted_by_anvil_in_both_s_forms() {
    let anvil = Anvil::start().await;
    let double = start_double().await; // every other signature high-s
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap();
    let from = Signer::address(&signer);
    // 100 ETH for the double's key, which no genesis account holds.
    anvil
        .rpc(
            "anvil_setBalance",
            json!([from.to_string(), "0x56bc75e2d63100000"]),
        )
        .await;

    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.url().parse().unwrap());
    let total = send_transfers(&provider, from, TRANSFERS).await;

    assert_eq!(provider.get_balance(RECIPIENT).await.unwrap(), total);
    assert_eq!(
        provider.get_transaction_count(from).await.unwrap(),
        TRANSFERS
    );
    let (signatures, high_s) = double.signature_counts();
    assert_eq!(signatures, TRANSFERS);
    assert_eq!(
        high_s,
        TRANSFERS / 2,
        "half the answers were high-s and still accepted"
    );
}

#[tokio::test]
async fn wallet_signer_works_for_both_kinds_on_anvil() {
    let anvil = Anvil::start().await;
    let local = LocalConfig {
        key: LocalKeySource::AnvilMnemonic { index: 1 },
        chain_id: None,
    };
    let local = WalletSigner::from(local.build_with_env(|_| None).unwrap());
    assert_eq!(Signer::address(&local).to_string(), anvil.address(1));

    let double = start_double().await;
    let (key_vault, _) = connect(&double, None, fast_retry()).await;
    let key_vault = WalletSigner::from(key_vault.unwrap());
    assert!(!key_vault.is_dev_only());
    let from = Signer::address(&key_vault);
    anvil
        .rpc(
            "anvil_setBalance",
            json!([from.to_string(), "0x56bc75e2d63100000"]),
        )
        .await;

    for signer in [local, key_vault] {
        let from = Signer::address(&signer);
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_http(anvil.url().parse().unwrap());
        send_transfers(&provider, from, 2).await;
    }
}

#[tokio::test]
async fn a_signer_bound_to_one_chain_refuses_a_transaction_for_another() {
    let double = start_double().await;
    let (signer, _) = connect(&double, None, fast_retry()).await;
    let signer = signer.unwrap().with_chain_id(Some(1));
    let mut tx = TxEip1559 {
        chain_id: 31337,
        to: TxKind::Call(RECIPIENT),
        ..Default::default()
    };
    let error = signer.sign_transaction(&mut tx).await.unwrap_err();
    assert!(matches!(
        error,
        alloy::signers::Error::TransactionChainIdMismatch {
            signer: 1,
            tx: 31337
        }
    ));
    assert_eq!(double.signature_counts().0, 0, "nothing was signed");

    let mut unbound = TxEip1559 {
        chain_id: 1,
        to: TxKind::Call(RECIPIENT),
        ..Default::default()
    };
    let signature = signer.sign_transaction(&mut unbound).await.unwrap();
    let sender = signature
        .recover_address_from_prehash(&unbound.signature_hash())
        .unwrap();
    assert_eq!(sender, Signer::address(&signer));
}
