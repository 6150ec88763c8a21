//! The stack the pipeline modules pay from: the whole stack and a funded merchant with a key of
//! every scope. `M` marks the module whose helpers the stack carries, so each module adds its
//! own inherent methods (`impl PipelineStack<Broadcast> { ... }`) without clashing.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use meshpay_domain::PaymentId;
use meshpay_store::Payment;
use meshpay_testkit::merchant::{Merchant, MerchantSetup};
use meshpay_testkit::stack::{ChainSetup, Stack, StackBuilder};
use serde_json::Value;

/// How long a payment may take to reach the state a test waits for.
pub const WAIT: Duration = Duration::from_secs(90);
/// Lines of devhost's log shown with a failure.
pub const LOG_LINES: usize = 80;

/// What the merchant of a pipeline module is funded with (base units): 10^9 USDC, 10^5 ETH.
pub const MERCHANT_USDC: u128 = 10u128.pow(15);
pub const MERCHANT_ETH: u128 = 10u128.pow(23);
/// A reconcile timer schedule that never fires within a test run.
pub const RECONCILE_IDLE: &str = "0 0 0 1 1 *";

/// A merchant funded with [`MERCHANT_USDC`] and [`MERCHANT_ETH`].
pub fn funded_merchant() -> MerchantSetup {
    MerchantSetup::funded(MERCHANT_USDC, MERCHANT_ETH)
}

/// anvil mining only when the test mines (every "not final yet" and every reorg happens at a
/// chosen moment), each hot wallet holding 10^6 DevUSDC.
pub fn on_demand_chain() -> StackBuilder {
    Stack::builder().chain(ChainSetup {
        hot_wallet_usdc: 10u128.pow(12),
        automine: false,
    })
}

pub struct PipelineStack<M> {
    pub stack: Stack,
    pub merchant: Merchant,
    module: PhantomData<M>,
}

impl<M> PipelineStack<M> {
    /// Starts `builder`'s stack and creates the merchant `setup` describes, with a key.
    pub async fn start_with(builder: StackBuilder, setup: MerchantSetup) -> Self {
        let stack = builder.start().await;
        let merchant = setup.create_with_key(&stack.store).await;
        PipelineStack {
            stack,
            merchant,
            module: PhantomData,
        }
    }

    /// Quotes and authorizes `amount` of `asset` to `recipient` over HTTP; returns (payment id,
    /// quoted amount in base units).
    pub async fn pay(&self, asset: &str, amount: &str, recipient: &str) -> (PaymentId, u128) {
        self.api()
            .pay(&self.merchant.key, asset, amount, recipient)
            .await
    }

    /// `GET /api/payments/{id}` as the merchant sees it.
    pub async fn payment_view(&self, id: PaymentId) -> Value {
        self.api().payment(&self.merchant.key, id).await
    }

    /// The stored payment, as the pipeline reads it.
    pub async fn payment(&self, id: PaymentId) -> Payment {
        self.store.get_payment_unscoped(id).await.unwrap().unwrap()
    }

    /// Waits until `done(payment)`, mining one block per round when `mine`; after [`WAIT`],
    /// fails with where the payment stands and devhost's log.
    pub async fn wait_until(
        &self,
        id: PaymentId,
        mine: bool,
        done: impl Fn(&Payment) -> bool,
    ) -> Payment {
        let deadline = Instant::now() + WAIT;
        loop {
            let payment = self.payment(id).await;
            if done(&payment) {
                return payment;
            }
            if Instant::now() >= deadline {
                let attempts = self.store.payment_transactions(id).await.unwrap();
                panic!(
                    "{id} still {} (reason {:?}) with {} attempts\n{}",
                    payment.status,
                    payment.failure_reason,
                    attempts.len(),
                    self.log_tail(LOG_LINES)
                );
            }
            if mine {
                self.anvil().mine(1).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl<M> Deref for PipelineStack<M> {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl<M> DerefMut for PipelineStack<M> {
    fn deref_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }
}

/// `meshpay admin <args>` against the stack's database; each caller adds what its command
/// reads (chains, queues, the actor).
pub fn admin_command(stack: &Stack, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meshpay"));
    command
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", stack.db.url());
    command
}

/// Runs `command`, which must succeed, and parses its JSON answer.
pub fn json_answer(command: &mut std::process::Command) -> Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
