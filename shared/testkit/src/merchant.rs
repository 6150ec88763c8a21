//! Test merchants, created through the store's public API (what `meshpay admin` uses): a fee
//! rate, limits, funding and, when the test talks to the API, a key.

use meshpay_domain::{Amount, AssetId, FeeBps, MerchantId, Scopes};
use meshpay_store::{AssetLimit, NewMerchant, Store};

use crate::assets::{eth, usdc};

/// Service fee every test merchant pays unless told otherwise.
pub const FEE_BPS: u32 = 25;

/// A merchant and its API key.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub key: String,
}

/// What a test merchant starts with: by default [`FEE_BPS`], no limits, no funds, every scope.
#[derive(Debug, Clone)]
pub struct MerchantSetup {
    fee_bps: u32,
    limits: Vec<AssetLimit>,
    funding: Vec<(AssetId, Amount)>,
    scopes: Scopes,
}

impl Default for MerchantSetup {
    fn default() -> Self {
        MerchantSetup {
            fee_bps: FEE_BPS,
            limits: Vec::new(),
            funding: Vec::new(),
            scopes: Scopes::all(),
        }
    }
}

impl MerchantSetup {
    /// Funded with `usdc` and `eth` base units.
    pub fn funded(usdc_units: u128, eth_units: u128) -> MerchantSetup {
        MerchantSetup::default()
            .fund(usdc(), usdc_units)
            .fund(eth(), eth_units)
    }

    pub fn fee_bps(mut self, bps: u32) -> Self {
        self.fee_bps = bps;
        self
    }

    pub fn limits(mut self, limits: Vec<AssetLimit>) -> Self {
        self.limits = limits;
        self
    }

    /// Adds `base_units` of `asset` to the starting balance (nothing when zero).
    pub fn fund(mut self, asset: AssetId, base_units: u128) -> Self {
        if base_units > 0 {
            self.funding.push((asset, Amount::from_u128(base_units)));
        }
        self
    }

    /// The scopes of the key [`MerchantSetup::create_with_key`] issues.
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Creates and funds the merchant.
    pub async fn create(&self, store: &Store) -> MerchantId {
        let id = store
            .create_merchant(&NewMerchant {
                name: "test merchant".into(),
                service_fee_bps: FeeBps::new(self.fee_bps).unwrap(),
                limits: self.limits.clone(),
            })
            .await
            .unwrap()
            .id;
        for (asset, amount) in &self.funding {
            store
                .fund(id, asset, *amount, &format!("seed-{asset}-{id}"))
                .await
                .unwrap();
        }
        id
    }

    /// Creates and funds the merchant and issues it a key.
    pub async fn create_with_key(&self, store: &Store) -> Merchant {
        let id = self.create(store).await;
        let key = api_key(store, id, self.scopes).await;
        Merchant { id, key }
    }
}

/// A merchant at [`FEE_BPS`] funded with `usdc` and `eth` base units.
pub async fn funded_merchant(store: &Store, usdc_units: u128, eth_units: u128) -> MerchantId {
    MerchantSetup::funded(usdc_units, eth_units)
        .create(store)
        .await
}

/// A new API key for `merchant` with `scopes`, as the bearer token the API takes.
pub async fn api_key(store: &Store, merchant: MerchantId, scopes: Scopes) -> String {
    let key = store.create_api_key(merchant, scopes).await.unwrap();
    key.key.expose().to_owned()
}
