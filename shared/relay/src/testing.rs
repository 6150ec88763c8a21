//! Test fixtures (feature `test-util`, for this crate's tests and benches): a real anvil (DevUSDC deployed, hot wallets = anvil accounts 1 and 2 holding
//! tokens), a fresh migrated database with a funded merchant, and relays over them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixtures fail loudly

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{AlloyRpc, BroadcastOutcome, ChainRpc, Delivery, DynTxSigner, Relay, RelayConfig};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::k256::ecdsa::SigningKey;
use alloy::signers::local::PrivateKeySigner;
use meshpay_chain::ChainsConfig;
use meshpay_domain::{MerchantId, PaymentId};
use meshpay_signer::testing::{DoubleOptions, FakeCredential, KeyVaultDouble, RedirectToDouble};
use meshpay_signer::{CredentialConfig, KeyVaultConfig, KeyVaultSigner, RetryConfig};
use meshpay_store::transactions::WalletNonce;
use meshpay_store::{Payment, Store};
use meshpay_testkit::anvil::{Anvil, HOT_WALLET_ACCOUNTS};
use meshpay_testkit::assets::asset;
use meshpay_testkit::chains::anvil_chain_toml;
use meshpay_testkit::hex::hex_u64;
use meshpay_testkit::merchant::funded_merchant;
use meshpay_testkit::payment::{PaymentSetup, QuotedGas, fresh_address};
use meshpay_testkit::postgres::TestDb;
use serde_json::{Value, json};

/// USDC minted to each hot wallet (base units): 1,000,000 USDC.
pub const WALLET_USDC: u128 = 1_000_000 * 1_000_000;

/// The delivery after which the default configuration (`max_deliveries` 5) gives up.
pub const LAST: Delivery = Delivery { dequeue_count: 5 };

/// The reason of an outcome that must be `Failed`.
pub fn failure_reason(outcome: BroadcastOutcome) -> String {
    match outcome {
        BroadcastOutcome::Failed { reason, .. } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

pub struct RelayStack {
    pub anvil: Anvil,
    pub store: Store,
    pub chains: ChainsConfig,
    pub merchant: MerchantId,
    pub wallets: Vec<Address>,
    _db: TestDb,
}

impl RelayStack {
    pub async fn start() -> RelayStack {
        RelayStack::start_with_wallets(&HOT_WALLET_ACCOUNTS).await
    }

    pub async fn start_with_wallets(accounts: &[usize]) -> RelayStack {
        let (anvil, db) = tokio::join!(
            Anvil::start(),
            TestDb::create_migrated(&meshpay_store::MIGRATOR)
        );
        anvil.deploy_dev_usdc_to(accounts, WALLET_USDC).await;
        let wallets: Vec<Address> = accounts
            .iter()
            .map(|&i| Address::from_str(anvil.address(i)).unwrap())
            .collect();
        let hot: Vec<String> = wallets.iter().map(|w| w.to_checksum(None)).collect();
        let chains = ChainsConfig::from_toml_str(&anvil_chain_toml(anvil.url(), 1, &hot)).unwrap();
        let store = Store::from_pool(db.pool_of(20).await);
        let merchant = funded_merchant(&store, 10u128.pow(15), 10u128.pow(24)).await;
        RelayStack {
            anvil,
            store,
            chains,
            merchant,
            wallets,
            _db: db,
        }
    }

    pub fn signers(&self) -> Vec<DynTxSigner> {
        self.wallets
            .iter()
            .map(|w| {
                let i = (0..10)
                    .find(|&i| Address::from_str(self.anvil.address(i)).unwrap() == *w)
                    .unwrap();
                let key = PrivateKeySigner::from_str(self.anvil.private_key(i)).unwrap();
                Arc::new(key) as DynTxSigner
            })
            .collect()
    }

    /// Signers for the stack's wallets that reach their keys through the real
    /// `KeyVaultSigner`, each key held by a Key Vault double of its own made from `options`
    /// (latency, throttling); the doubles run until dropped.
    pub async fn key_vault_signers(
        &self,
        options: impl Fn() -> DoubleOptions,
        retry: RetryConfig,
    ) -> (Vec<KeyVaultDouble>, Vec<DynTxSigner>) {
        let mut doubles = Vec::new();
        let mut signers = Vec::new();
        for (i, &wallet) in self.wallets.iter().enumerate() {
            let account = (0..10)
                .find(|&a| Address::from_str(self.anvil.address(a)).unwrap() == wallet)
                .unwrap();
            let key = alloy::primitives::hex::decode(self.anvil.private_key(account)).unwrap();
            let double = KeyVaultDouble::start(DoubleOptions {
                key_name: format!("hot-{i}"),
                ..options().with_key(SigningKey::from_slice(&key).unwrap())
            })
            .await;
            let config = KeyVaultConfig {
                vault_url: double.options().vault_url.clone(),
                key_name: double.options().key_name.clone(),
                key_version: None,
                credential: CredentialConfig::ManagedIdentity { client_id: None },
                chain_id: None,
                retry: retry.clone(),
            };
            let signer = KeyVaultSigner::from_config_with(
                &config,
                Arc::new(FakeCredential::default()),
                Some(RedirectToDouble::transport(double.addr())),
            )
            .await
            .unwrap();
            assert_eq!(alloy::signers::Signer::address(&signer), wallet);
            doubles.push(double);
            signers.push(Arc::new(signer) as DynTxSigner);
        }
        (doubles, signers)
    }

    /// A relay over the stack's chain signing with `signers`.
    pub fn relay_signing_with(&self, signers: Vec<DynTxSigner>, config: RelayConfig) -> Relay {
        let chain = self.chains.chain("anvil").unwrap().clone();
        Relay::new(self.store.clone(), config)
            .with_chain(chain, self.rpc(), signers)
            .unwrap()
    }

    pub fn rpc(&self) -> Arc<AlloyRpc> {
        Arc::new(AlloyRpc::new(
            self.anvil.url().parse().unwrap(),
            Duration::from_secs(10),
        ))
    }

    pub fn relay(&self) -> Relay {
        self.relay_with(self.rpc(), RelayConfig::default())
    }

    pub fn relay_with(&self, rpc: Arc<dyn ChainRpc>, config: RelayConfig) -> Relay {
        let chain = self.chains.chain("anvil").unwrap().clone();
        Relay::new(self.store.clone(), config)
            .with_chain(chain, rpc, self.signers())
            .unwrap()
    }

    /// An authorized payment of `amount` base units of `symbol` to a fresh address.
    pub async fn payment(&self, symbol: &str, amount: u128) -> Payment {
        self.payment_to(symbol, amount, fresh_address(), None).await
    }

    pub async fn payment_to(
        &self,
        symbol: &str,
        amount: u128,
        recipient: Address,
        hot_wallet: Option<Address>,
    ) -> Payment {
        self.payment_quoted(symbol, amount, recipient, hot_wallet, QuotedGas::default())
            .await
    }

    /// An authorized payment whose quote has the gas terms `quoted`.
    pub async fn payment_quoted(
        &self,
        symbol: &str,
        amount: u128,
        recipient: Address,
        hot_wallet: Option<Address>,
        quoted: QuotedGas,
    ) -> Payment {
        PaymentSetup::new(asset(symbol), amount)
            .recipient(recipient)
            .hot_wallet(hot_wallet)
            .gas(quoted)
            .authorize(&self.store, self.merchant)
            .await
    }

    /// The payment as stored now.
    pub async fn stored(&self, id: PaymentId) -> Payment {
        self.store.get_payment_unscoped(id).await.unwrap().unwrap()
    }

    /// The wallet's nonce counter and gaps on the anvil chain (it must have one).
    pub async fn nonce_state(&self, wallet: Address) -> WalletNonce {
        self.store
            .wallet_nonce("anvil", wallet)
            .await
            .unwrap()
            .unwrap()
    }

    /// Nothing was signed and no nonce taken: the payment was refused before signing.
    pub async fn assert_nothing_signed(&self) {
        let signed = self
            .count("SELECT count(*) FROM payment_transactions")
            .await;
        let nonces = self.count("SELECT count(*) FROM wallet_nonces").await;
        assert_eq!((signed, nonces), (0, 0), "(transactions, nonce counters)");
    }

    pub async fn rpc_call(&self, method: &str, params: Value) -> Value {
        self.anvil.rpc(method, params).await
    }

    /// Mines until nothing is pending (anvil's automine can strand a transaction that arrived
    /// before its predecessor: foundry #10122), then returns the receipt.
    pub async fn receipt(&self, hash: B256) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let receipt = self
                .rpc_call("eth_getTransactionReceipt", json!([hash]))
                .await;
            if !receipt.is_null() {
                return receipt;
            }
            assert!(Instant::now() < deadline, "{hash} not mined within 60 s");
            self.rpc_call("evm_mine", json!([])).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The wallet's nonce in the latest block.
    pub async fn mined_nonce(&self, wallet: Address) -> u64 {
        hex_u64(
            &self
                .rpc_call("eth_getTransactionCount", json!([wallet, "latest"]))
                .await,
        )
    }

    pub async fn pending_nonce(&self, wallet: Address) -> u64 {
        hex_u64(
            &self
                .rpc_call("eth_getTransactionCount", json!([wallet, "pending"]))
                .await,
        )
    }

    /// Mines until every pending transaction of the wallets is in a block.
    pub async fn mine_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut pending = false;
            for &w in &self.wallets {
                pending |= self.pending_nonce(w).await != self.mined_nonce(w).await;
            }
            if !pending {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "transactions still pending after 60 s"
            );
            self.rpc_call("evm_mine", json!([])).await;
        }
    }

    pub async fn set_eth_balance(&self, address: Address, wei: U256) {
        self.rpc_call("anvil_setBalance", json!([address, wei]))
            .await;
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap();
        n
    }

    /// Ledger invariants: every test ends here.
    pub async fn finish(self) {
        self.store.check_ledger_invariants().await.unwrap();
    }
}
