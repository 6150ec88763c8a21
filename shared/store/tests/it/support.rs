//! Fixtures: a store on a fresh database, merchants, funded balances, quotes.

use meshpay_domain::{
    Address, Amount, AssetId, B256, Charges, IdempotencyKey, InvoiceId, MerchantId,
};
use meshpay_store::{
    AuthorizeOutcome, AuthorizeRequest, CreateInvoiceOutcome, NewInvoice, NewQuote, Payment, Quote,
    Store, StoredResponse, request_fingerprint,
};
use meshpay_testkit::assets::{eth, usdc};
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::postgres::TestDb;
use time::OffsetDateTime;

pub struct Ctx {
    pub store: Store,
    _db: TestDb,
}

impl Ctx {
    /// Fresh migrated database; a pool big enough for the concurrency tests.
    pub async fn new() -> Ctx {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        Ctx {
            store: Store::from_pool(db.pool_of(24).await),
            _db: db,
        }
    }

    /// The test database's URL (for a second pool with other session settings).
    pub fn url(&self) -> &str {
        self._db.url()
    }

    /// Every test ends here: the ledger must balance.
    pub async fn finish(self) {
        self.store.check_ledger_invariants().await.unwrap();
    }
}

/// `n` whole USDC in base units (6 decimals).
pub fn usdc_units(n: u64) -> Amount {
    Amount::from(n * 1_000_000)
}

pub fn recipient() -> Address {
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        .parse()
        .unwrap()
}

pub async fn merchant(store: &Store, fee_bps: u32) -> MerchantId {
    MerchantSetup::default()
        .fee_bps(fee_bps)
        .create(store)
        .await
}

/// A merchant at `fee_bps` funded with `usdc` whole USDC (none when zero) and 1 ETH.
pub async fn merchant_with_usdc(store: &Store, fee_bps: u32, usdc: u64) -> MerchantId {
    MerchantSetup::default()
        .fee_bps(fee_bps)
        .fund(self::usdc(), u128::from(usdc) * 1_000_000)
        .fund(eth(), 10u128.pow(18))
        .create(store)
        .await
}

/// Gas used by quotes: 65 000 × 2 gwei = 0.00013 ETH network fee.
pub const GAS_LIMIT: u64 = 65_000;
pub const MAX_FEE_PER_GAS: u128 = 2_000_000_000;

pub fn network_fee() -> Amount {
    Charges::network_fee_for(GAS_LIMIT, MAX_FEE_PER_GAS)
}

pub async fn quote_with(
    store: &Store,
    m: MerchantId,
    asset: AssetId,
    amount: Amount,
    ttl: time::Duration,
) -> Quote {
    let merchant = store.get_merchant(m).await.unwrap().unwrap();
    let charges = Charges::compute(
        asset,
        amount,
        merchant.service_fee_bps,
        eth(),
        network_fee(),
    )
    .unwrap();
    store
        .insert_quote(&NewQuote {
            merchant_id: m,
            charges,
            recipient: recipient(),
            gas_limit: GAS_LIMIT,
            max_fee_per_gas: MAX_FEE_PER_GAS,
            max_priority_fee_per_gas: 1_000_000_000,
            expires_at: OffsetDateTime::now_utc() + ttl,
        })
        .await
        .unwrap()
}

/// A 60-second USDC quote for `usdc` whole USDC.
pub async fn quote(store: &Store, m: MerchantId, usdc: u64) -> Quote {
    quote_with(
        store,
        m,
        self::usdc(),
        usdc_units(usdc),
        time::Duration::seconds(60),
    )
    .await
}

pub fn request(m: MerchantId, quote: &Quote, key: &str) -> AuthorizeRequest {
    let body = serde_json::json!({ "quote_id": quote.id });
    AuthorizeRequest {
        merchant_id: m,
        idempotency_key: IdempotencyKey::new(key).unwrap(),
        request_hash: request_fingerprint(&body),
        quote_id: quote.id,
        reference: Some("order-1".into()),
        metadata: Some(serde_json::json!({ "order": 1 })),
        hot_wallet: None,
    }
}

/// What the API would answer: 201 with id and status.
pub fn render(p: &Payment) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: serde_json::json!({ "id": p.id, "status": p.status, "total_debit": p.charges.total_debit }),
    }
}

/// Authorizes and expects a new payment.
pub async fn authorize(store: &Store, m: MerchantId, quote: &Quote, key: &str) -> Payment {
    match store
        .authorize_payment(&request(m, quote, key), render)
        .await
        .unwrap()
    {
        AuthorizeOutcome::Created { payment, .. } => *payment,
        other => panic!("expected a new payment, got {other:?}"),
    }
}

pub async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(store.pool()).await.unwrap();
    n
}

/// An open invoice of 25 USDC paid to `deposit`, created as the API would.
pub async fn usdc_invoice(store: &Store, merchant: MerchantId, deposit: Address) -> InvoiceId {
    let id = InvoiceId::unguessable();
    let new = NewInvoice {
        merchant_id: merchant,
        idempotency_key: IdempotencyKey::new("inv-1").unwrap(),
        request_hash: [0; 32],
        asset: usdc(),
        amount: usdc_units(25),
        factory: Address::repeat_byte(0xfa),
        id,
        salt: B256::ZERO,
        deposit_address: deposit,
        reference: None,
        metadata: None,
        expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    let CreateInvoiceOutcome::Created(_) = store.create_invoice(&new).await.unwrap() else {
        panic!("replayed");
    };
    id
}
