//! What the pay-in suites share: a real anvil with DevUSDC and the deposit factory, a fresh
//! migrated database, one merchant (1% service fee), the chain's configuration, and invoices
//! created as the API would.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::ChainsConfig;
use meshpay_domain::{Address, Amount, AssetId, IdempotencyKey, InvoiceId, MerchantId};
use meshpay_payins::deposit::{DepositFactory, invoice_salt};
use meshpay_store::{CreateInvoiceOutcome, Invoice, NewInvoice, Store};
use meshpay_testkit::anvil::{Anvil, DEV_DEPOSIT_FACTORY_ADDRESS, HOT_WALLETS};
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::postgres::TestDb;
use time::OffsetDateTime;

/// The anvil account that pays invoices.
pub const PAYER: usize = 5;
/// One USDC in base units.
pub const USDC: u128 = 1_000_000;

pub fn usdc_asset() -> AssetId {
    AssetId::new("anvil", "USDC").unwrap()
}

pub fn eth_asset() -> AssetId {
    AssetId::new("anvil", "ETH").unwrap()
}

pub struct PayinStack {
    pub anvil: Anvil,
    _db: TestDb,
    pub store: Store,
    pub merchant: MerchantId,
    pub chains: Arc<ChainsConfig>,
}

impl PayinStack {
    /// Anvil (the payer holding `payer_usdc` base units of DevUSDC, the factory deployed) whose
    /// chain is final after `finality` blocks, and a fresh database with one merchant.
    pub async fn start(finality: u64, payer_usdc: u128) -> PayinStack {
        let (anvil, db) = tokio::join!(
            Anvil::start(),
            TestDb::create_migrated(&meshpay_store::MIGRATOR)
        );
        anvil.deploy_dev_usdc_to(&[PAYER], payer_usdc).await;
        anvil.deploy_deposit_factory().await;
        let hot: Vec<String> = HOT_WALLETS.iter().map(|s| (*s).to_owned()).collect();
        let chains = Arc::new(
            ChainsConfig::from_toml_str(&meshpay_testkit::chains::anvil_chain_toml(
                anvil.url(),
                finality,
                &hot,
            ))
            .unwrap(),
        );
        let store = Store::from_pool(db.pool().clone());
        let merchant = MerchantSetup::default().fee_bps(100).create(&store).await;
        PayinStack {
            anvil,
            _db: db,
            store,
            merchant,
            chains,
        }
    }

    /// An unpaid invoice of `amount` base units of `asset`, expiring in `expires_in`.
    pub async fn invoice_in(&self, asset: AssetId, amount: u128, expires_in: Duration) -> Invoice {
        let id = InvoiceId::unguessable();
        let salt = invoice_salt(id);
        let factory = Address::from_str(DEV_DEPOSIT_FACTORY_ADDRESS).unwrap();
        let new = NewInvoice {
            merchant_id: self.merchant,
            idempotency_key: IdempotencyKey::new(&id.to_string()).unwrap(),
            request_hash: [0; 32],
            asset,
            amount: Amount::from_u128(amount),
            factory,
            id,
            salt,
            deposit_address: DepositFactory::at(factory).deposit_address(salt),
            reference: None,
            metadata: None,
            expires_at: OffsetDateTime::now_utc() + expires_in,
        };
        match self.store.create_invoice(&new).await.unwrap() {
            CreateInvoiceOutcome::Created(invoice) => invoice,
            CreateInvoiceOutcome::Replayed(_) => panic!("replayed"),
        }
    }

    /// The invoice as stored now.
    pub async fn invoice_now(&self, invoice: &Invoice) -> Invoice {
        self.store
            .get_invoice(self.merchant, invoice.id)
            .await
            .unwrap()
            .unwrap()
    }
}
