//! Quotes and authorized payments written through the store, as `POST /quotes` and
//! `POST /payments` would write them, for tests that start a payment past the API.

use meshpay_domain::{Address, Amount, AssetId, Charges, IdempotencyKey, MerchantId, PaymentEvent};
use meshpay_store::{
    AuthorizeOutcome, AuthorizeRequest, NewQuote, Payment, Quote, Store, StoredResponse,
    Transition, request_fingerprint,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::assets::eth;

/// A recipient that is not on the deny list (anvil account 6).
pub const RECIPIENT: &str = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";

/// A fresh random address (no balance, no history), so each payment's arrival is measured on
/// its own.
pub fn fresh_address() -> Address {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut raw = [0u8; 20];
    raw[..16].copy_from_slice(a.as_bytes());
    raw[16..].copy_from_slice(&b.as_bytes()[..4]);
    Address::from(raw)
}

/// [`fresh_address`] in checksum form.
pub fn fresh_recipient() -> String {
    fresh_address().to_checksum(None)
}

/// A quote's gas terms (the network-fee hold is `gas_limit × max_fee_per_gas`).
#[derive(Debug, Clone, Copy)]
pub struct QuotedGas {
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl Default for QuotedGas {
    fn default() -> Self {
        QuotedGas {
            gas_limit: 65_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        }
    }
}

impl QuotedGas {
    /// The network fee held for these terms.
    pub fn network_fee(&self) -> Amount {
        Charges::network_fee_for(self.gas_limit, self.max_fee_per_gas)
    }
}

/// One payment: `amount` base units of `asset` to [`RECIPIENT`] at the merchant's fee rate,
/// with [`QuotedGas::default`], a quote valid for five minutes and no reference or metadata
/// unless told otherwise.
#[derive(Debug, Clone)]
pub struct PaymentSetup {
    asset: AssetId,
    amount: Amount,
    recipient: Address,
    gas: QuotedGas,
    ttl: time::Duration,
    reference: Option<String>,
    metadata: Option<Value>,
    hot_wallet: Option<Address>,
}

impl PaymentSetup {
    pub fn new(asset: AssetId, base_units: u128) -> PaymentSetup {
        PaymentSetup {
            asset,
            amount: Amount::from_u128(base_units),
            recipient: RECIPIENT.parse().unwrap(),
            gas: QuotedGas::default(),
            ttl: time::Duration::minutes(5),
            reference: None,
            metadata: None,
            hot_wallet: None,
        }
    }

    pub fn recipient(mut self, recipient: Address) -> Self {
        self.recipient = recipient;
        self
    }

    pub fn gas(mut self, gas: QuotedGas) -> Self {
        self.gas = gas;
        self
    }

    /// How long the quote stays valid.
    pub fn ttl(mut self, ttl: time::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn reference(mut self, reference: &str) -> Self {
        self.reference = Some(reference.to_owned());
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Pins the hot wallet that must send the payment.
    pub fn hot_wallet(mut self, wallet: Option<Address>) -> Self {
        self.hot_wallet = wallet;
        self
    }

    /// Stores the quote (network fee in the native asset, service fee at the merchant's rate).
    pub async fn quote(&self, store: &Store, merchant: MerchantId) -> Quote {
        let fee_bps = store
            .get_merchant(merchant)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no merchant {merchant}"))
            .service_fee_bps;
        let charges = Charges::compute(
            self.asset.clone(),
            self.amount,
            fee_bps,
            eth(),
            self.gas.network_fee(),
        )
        .unwrap();
        store
            .insert_quote(&NewQuote {
                merchant_id: merchant,
                charges,
                recipient: self.recipient,
                gas_limit: self.gas.gas_limit,
                max_fee_per_gas: self.gas.max_fee_per_gas,
                max_priority_fee_per_gas: self.gas.max_priority_fee_per_gas,
                expires_at: OffsetDateTime::now_utc() + self.ttl,
            })
            .await
            .unwrap()
    }

    /// Quotes and authorizes: the payment holds its debits and is `authorized` (no queue
    /// message is written).
    pub async fn authorize(&self, store: &Store, merchant: MerchantId) -> Payment {
        let quote = self.quote(store, merchant).await;
        let body = json!({ "quote_id": quote.id });
        let request = AuthorizeRequest {
            merchant_id: merchant,
            idempotency_key: IdempotencyKey::new(&format!("k-{}", quote.id)).unwrap(),
            request_hash: request_fingerprint(&body),
            quote_id: quote.id,
            reference: self.reference.clone(),
            metadata: self.metadata.clone(),
            hot_wallet: self.hot_wallet,
        };
        let render = |p: &Payment| StoredResponse {
            status: 201,
            body: json!({ "id": p.id }),
        };
        match store.authorize_payment(&request, render).await.unwrap() {
            AuthorizeOutcome::Created { payment, .. } => *payment,
            other => panic!("expected a new payment, got {other:?}"),
        }
    }
}

/// Moves `payment` through `events` (the pipeline's transitions); returns it as it ends up.
pub async fn advance(store: &Store, mut payment: Payment, events: &[PaymentEvent]) -> Payment {
    for event in events {
        payment = store
            .transition_payment(&Transition::new(payment.id, payment.version, event.clone()))
            .await
            .unwrap();
    }
    payment
}
