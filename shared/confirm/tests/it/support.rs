//! Fixtures: anvil with mining on demand (automine off, blocks mined by the test), DevUSDC held
//! by the hot wallets (anvil accounts 1 and 2), a fresh migrated database with a funded
//! merchant, the real broadcast step (meshpay-relay with local signers) and a pipeline with
//! short polling so one `confirm` call is one or two looks at the chain.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use meshpay_chain::ChainsConfig;
use meshpay_confirm::{CheckOutcome, ConfirmConfig, ConfirmMessage, ConfirmOutcome, Pipeline};
use meshpay_domain::{Amount, MerchantId, PaymentId, PaymentStatus};
use meshpay_relay::{AlloyRpc, BroadcastOutcome, Delivery, DynTxSigner, Relay, RelayConfig};

use meshpay_store::{Balance, Payment, Store};
use meshpay_testkit::anvil::{Anvil, DEV_USDC_ADDRESS, HOT_WALLET_ACCOUNTS, HOT_WALLETS};
use meshpay_testkit::assets::asset;
use meshpay_testkit::chains::anvil_chain_toml;
use meshpay_testkit::hex::hex_u64;
use meshpay_testkit::merchant::funded_merchant;
use meshpay_testkit::payment::{PaymentSetup, fresh_address};
use meshpay_testkit::postgres::TestDb;
use serde_json::{Value, json};

/// USDC minted to each hot wallet (base units): 1,000,000 USDC.
pub const WALLET_USDC: u128 = 1_000_000 * 1_000_000;
/// The merchant's starting balances (base units).
pub const MERCHANT_USDC: u128 = 10u128.pow(15);
pub const MERCHANT_ETH: u128 = 10u128.pow(24);

/// The reason of an outcome that must be `Parked` with the check outcome `expected`.
pub fn parked_reason(outcome: ConfirmOutcome, expected: CheckOutcome) -> String {
    match outcome {
        ConfirmOutcome::Parked {
            outcome, reason, ..
        } => {
            assert_eq!(outcome, expected, "{reason}");
            reason
        }
        other => panic!("expected Parked, got {other:?}"),
    }
}

pub struct ConfirmStack {
    pub anvil: Anvil,
    pub store: Store,
    pub chains: Arc<ChainsConfig>,
    pub merchant: MerchantId,
    _db: TestDb,
}

impl ConfirmStack {
    /// `confirmations` blocks on top of the inclusion block make a payment final.
    pub async fn start(confirmations: u64) -> ConfirmStack {
        let (anvil, db) = tokio::join!(
            Anvil::start(),
            TestDb::create_migrated(&meshpay_store::MIGRATOR)
        );
        anvil
            .deploy_dev_usdc_to(&HOT_WALLET_ACCOUNTS, WALLET_USDC)
            .await;
        // From here on blocks are mined only when a test says so.
        anvil.rpc("evm_setAutomine", json!([false])).await;
        let hot: Vec<String> = HOT_WALLETS.iter().map(|w| (*w).to_owned()).collect();
        let chains =
            ChainsConfig::from_toml_str(&anvil_chain_toml(anvil.url(), confirmations, &hot))
                .unwrap();
        let store = Store::from_pool(db.pool().clone());
        let merchant = funded_merchant(&store, MERCHANT_USDC, MERCHANT_ETH).await;
        ConfirmStack {
            anvil,
            store,
            chains: Arc::new(chains),
            merchant,

            _db: db,
        }
    }

    pub fn config() -> ConfirmConfig {
        ConfirmConfig {
            poll_interval: Duration::from_millis(20),
            // One look per call unless a test asks for more.
            invocation_wait: Duration::ZERO,
            ..ConfirmConfig::default()
        }
    }

    pub fn pipeline(&self) -> Pipeline {
        self.pipeline_with(Self::config())
    }

    pub fn pipeline_with(&self, config: ConfirmConfig) -> Pipeline {
        Pipeline::new(self.store.clone(), self.chains.clone(), config)
    }

    pub fn relay(&self) -> Relay {
        self.relay_with(RelayConfig::default())
    }

    pub fn relay_with(&self, config: RelayConfig) -> Relay {
        let chain = self.chains.chain("anvil").unwrap().clone();
        let signers: Vec<DynTxSigner> = HOT_WALLET_ACCOUNTS
            .iter()
            .map(|&i| {
                let key = PrivateKeySigner::from_str(self.anvil.private_key(i)).unwrap();
                Arc::new(key) as DynTxSigner
            })
            .collect();
        let rpc = Arc::new(AlloyRpc::new(
            self.anvil.url().parse().unwrap(),
            Duration::from_secs(10),
        ));
        Relay::new(self.store.clone(), config)
            .with_chain(chain, rpc, signers)
            .unwrap()
    }

    /// An authorized payment of `amount` base units of `symbol` to a fresh address.
    pub async fn payment(&self, symbol: &str, amount: u128) -> Payment {
        PaymentSetup::new(asset(symbol), amount)
            .recipient(fresh_address())
            .authorize(&self.store, self.merchant)
            .await
    }

    /// An authorized payment broadcast by the real broadcast step (in the pool, not mined).
    pub async fn broadcast(&self, symbol: &str, amount: u128) -> (Payment, B256) {
        let payment = self.payment(symbol, amount).await;
        match self
            .relay()
            .broadcast(payment.id, Delivery::FIRST)
            .await
            .unwrap()
        {
            BroadcastOutcome::Sent(sent) => (self.payment_now(payment.id).await, sent.tx_hash),
            other => panic!("expected Sent, got {other:?}"),
        }
    }

    pub async fn payment_now(&self, id: PaymentId) -> Payment {
        self.store.get_payment_unscoped(id).await.unwrap().unwrap()
    }

    pub async fn status(&self, id: PaymentId) -> PaymentStatus {
        self.payment_now(id).await.status
    }

    pub async fn mine(&self, blocks: u64) {
        self.anvil.mine(blocks).await;
    }

    pub async fn block_number(&self) -> u64 {
        hex_u64(&self.anvil.rpc("eth_blockNumber", json!([])).await)
    }

    pub async fn receipt(&self, hash: B256) -> Value {
        self.anvil
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .await
    }

    /// What the chain charged for a mined transaction, read from its receipt:
    /// `gasUsed × effectiveGasPrice`.
    pub async fn charged_fee(&self, hash: B256) -> Amount {
        let receipt = self.receipt(hash).await;
        let gas_used = hex_u64(&receipt["gasUsed"]);
        let price = u128::from(hex_u64(&receipt["effectiveGasPrice"]));
        Amount::from_u128(u128::from(gas_used) * price)
    }

    /// Replaces the last `depth` blocks with empty ones: their transactions are gone (anvil
    /// does not put them back into its pool).
    pub async fn reorg(&self, depth: u64) {
        self.anvil.rpc("anvil_reorg", json!([depth, []])).await;
    }

    /// Sets `wallet`'s DevUSDC balance (storage slot of `balanceOf[wallet]`, mapping at slot 1).
    pub async fn set_usdc_balance(&self, wallet: Address, amount: u128) {
        let mut key = [0u8; 64];
        key[12..32].copy_from_slice(wallet.as_slice());
        key[63] = 1;
        let slot = keccak256(key);
        let value = B256::from(U256::from(amount));
        self.anvil
            .rpc("anvil_setStorageAt", json!([DEV_USDC_ADDRESS, slot, value]))
            .await;
    }

    pub async fn balances(&self) -> Vec<Balance> {
        self.store.balances(self.merchant).await.unwrap()
    }

    pub async fn balance(&self, symbol: &str) -> Balance {
        let asset = asset(symbol);
        self.balances()
            .await
            .into_iter()
            .find(|b| b.asset == asset)
            .unwrap()
    }

    /// Delivers a payment's confirm messages until `done` (each call is one look at the
    /// chain), mining `blocks_between` blocks after each undecided one; the message a
    /// `Waiting` outcome asks for is the next one delivered, as the queue would.
    pub async fn confirm_until(
        &self,
        pipeline: &Pipeline,
        mut message: ConfirmMessage,
        blocks_between: u64,
        done: impl Fn(&ConfirmOutcome) -> bool,
    ) -> (ConfirmOutcome, Vec<ConfirmOutcome>) {
        let mut seen = Vec::new();
        for _ in 0..20 {
            let outcome = pipeline.confirm(message).await.unwrap();
            if done(&outcome) {
                return (outcome, seen);
            }
            match &outcome {
                ConfirmOutcome::Waiting { next, .. } => message = *next,
                other => panic!("confirm stopped with {other:?}; before: {seen:?}"),
            }
            seen.push(outcome);
            self.mine(blocks_between).await;
        }
        panic!("not done after 20 checks: {seen:?}");
    }

    /// Ledger invariants: every test ends here.
    pub async fn finish(self) {
        self.store.check_ledger_invariants().await.unwrap();
    }
}

/// A load-balanced node with one lagging backend: in front of the real anvil, it answers "no
/// receipt" / "unknown" for the hashes it was told to forget, and everything else truthfully.
pub struct LaggingNode {
    inner: meshpay_relay::AlloyRpc,
    forgotten: std::sync::Mutex<Vec<B256>>,
}

impl LaggingNode {
    pub fn new(stack: &ConfirmStack) -> Arc<LaggingNode> {
        Arc::new(LaggingNode {
            inner: meshpay_relay::AlloyRpc::new(
                stack.anvil.url().parse().unwrap(),
                Duration::from_secs(10),
            ),
            forgotten: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn forget(&self, hash: B256) {
        self.forgotten.lock().unwrap().push(hash);
    }

    fn forgets(&self, hash: B256) -> bool {
        self.forgotten.lock().unwrap().contains(&hash)
    }
}

#[async_trait::async_trait]
impl meshpay_confirm::ConfirmRpc for LaggingNode {
    async fn receipt(
        &self,
        hash: B256,
    ) -> Result<Option<meshpay_confirm::receipt::ReceiptFacts>, meshpay_relay::RpcFailure> {
        if self.forgets(hash) {
            return Ok(None);
        }
        self.inner.receipt(hash).await
    }
    async fn head(
        &self,
        finalized: bool,
    ) -> Result<meshpay_confirm::finality::ChainHead, meshpay_relay::RpcFailure> {
        self.inner.head(finalized).await
    }
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, meshpay_relay::RpcFailure> {
        self.inner.block_hash(number).await
    }
    async fn transaction_known(&self, hash: B256) -> Result<bool, meshpay_relay::RpcFailure> {
        if self.forgets(hash) {
            return Ok(false);
        }
        self.inner.transaction_known(hash).await
    }
    async fn send_raw(&self, raw: &[u8]) -> Result<B256, meshpay_relay::RpcFailure> {
        self.inner.send_raw(raw).await
    }
}
