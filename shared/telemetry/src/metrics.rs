//! The metric instruments, built once from the global meter on first use (after the binary
//! has installed its provider; before that, and when export is off, they are no-ops).
//!
//! Names follow OpenTelemetry conventions (`meshpay.<area>.<what>`, seconds for durations);
//! the Bicep workbook and alerts query them by these names.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::{KeyValue, global};

pub mod name {
    pub const PAYMENT_TRANSITIONS: &str = "meshpay.payment.transitions";
    pub const AUTHORIZE_TO_SETTLED: &str = "meshpay.payment.authorize_to_settled";
    pub const KEY_VAULT_SIGN_DURATION: &str = "meshpay.keyvault.sign.duration";
    pub const KEY_VAULT_THROTTLES: &str = "meshpay.keyvault.throttles";
    pub const RPC_DURATION: &str = "meshpay.rpc.duration";
    pub const RPC_ERRORS: &str = "meshpay.rpc.errors";
    pub const WALLET_NONCE_LAG: &str = "meshpay.wallet.nonce_lag";
    pub const WALLET_HALTED: &str = "meshpay.wallet.halted";
    pub const QUEUE_DELIVERIES: &str = "meshpay.queue.deliveries";
    pub const QUEUE_POISONED: &str = "meshpay.queue.poisoned";
    pub const WEBHOOK_DELIVERIES: &str = "meshpay.webhook.deliveries";
    pub const RECONCILE_DISCREPANCIES: &str = "meshpay.reconcile.discrepancies";
}

/// Seconds from authorize to settled: a block or two on a fast L2 up to finality on L1.
const SETTLE_BOUNDARIES: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];
/// Seconds for one RPC call or one Key Vault signature.
const CALL_BOUNDARIES: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

struct Instruments {
    transitions: Counter<u64>,
    authorize_to_settled: Histogram<f64>,
    sign_duration: Histogram<f64>,
    throttles: Counter<u64>,
    rpc_duration: Histogram<f64>,
    rpc_errors: Counter<u64>,
    nonce_lag: Gauge<i64>,
    halted: Gauge<u64>,
    deliveries: Counter<u64>,
    poisoned: Counter<u64>,
    webhooks: Counter<u64>,
    discrepancies: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("meshpay");
        Instruments {
            transitions: meter
                .u64_counter(name::PAYMENT_TRANSITIONS)
                .with_description("Payment state transitions, by from and to state")
                .build(),
            authorize_to_settled: meter
                .f64_histogram(name::AUTHORIZE_TO_SETTLED)
                .with_unit("s")
                .with_description("Time from authorization to settlement")
                .with_boundaries(SETTLE_BOUNDARIES.to_vec())
                .build(),
            sign_duration: meter
                .f64_histogram(name::KEY_VAULT_SIGN_DURATION)
                .with_unit("s")
                .with_description("Key Vault sign latency, by outcome")
                .with_boundaries(CALL_BOUNDARIES.to_vec())
                .build(),
            throttles: meter
                .u64_counter(name::KEY_VAULT_THROTTLES)
                .with_description("Key Vault answers 429 (throttled)")
                .build(),
            rpc_duration: meter
                .f64_histogram(name::RPC_DURATION)
                .with_unit("s")
                .with_description("JSON-RPC call latency, by chain, method and outcome")
                .with_boundaries(CALL_BOUNDARIES.to_vec())
                .build(),
            rpc_errors: meter
                .u64_counter(name::RPC_ERRORS)
                .with_description("JSON-RPC call failures, by chain, method and kind")
                .build(),
            nonce_lag: meter
                .i64_gauge(name::WALLET_NONCE_LAG)
                .with_description("Wallet nonce counter minus the chain's pending nonce")
                .build(),
            halted: meter
                .u64_gauge(name::WALLET_HALTED)
                .with_description("1 while a wallet is halted (hands out no nonce)")
                .build(),
            deliveries: meter
                .u64_counter(name::QUEUE_DELIVERIES)
                .with_description("Queue messages delivered, by function and redelivery")
                .build(),
            poisoned: meter
                .u64_counter(name::QUEUE_POISONED)
                .with_description("Queue messages whose last delivery failed (moved to -poison)")
                .build(),
            webhooks: meter
                .u64_counter(name::WEBHOOK_DELIVERIES)
                .with_description("Merchant webhook delivery attempts, by outcome")
                .build(),
            discrepancies: meter
                .u64_counter(name::RECONCILE_DISCREPANCIES)
                .with_description("Discrepancies between the books and the chain, by kind")
                .build(),
        }
    })
}

/// A payment moved from `from` to `to` (state names as stored).
pub fn payment_transition(from: &str, to: &str) {
    instruments().transitions.add(
        1,
        &[
            KeyValue::new("from", from.to_owned()),
            KeyValue::new("to", to.to_owned()),
        ],
    );
}

/// A payment settled `elapsed` after it was authorized.
pub fn authorize_to_settled(chain: &str, elapsed: Duration) {
    instruments().authorize_to_settled.record(
        elapsed.as_secs_f64(),
        &[KeyValue::new("chain", chain.to_owned())],
    );
}

/// How a Key Vault sign call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutcome {
    Signed,
    Throttled,
    Failed,
}

/// One Key Vault sign call (every try, retries included).
pub fn key_vault_sign(elapsed: Duration, outcome: SignOutcome) {
    let label = match outcome {
        SignOutcome::Signed => "signed",
        SignOutcome::Throttled => "throttled",
        SignOutcome::Failed => "failed",
    };
    let i = instruments();
    i.sign_duration
        .record(elapsed.as_secs_f64(), &[KeyValue::new("outcome", label)]);
    if outcome == SignOutcome::Throttled {
        i.throttles.add(1, &[]);
    }
}

/// One JSON-RPC call on the chain named `chain`; `error` names the failure kind (`timeout`,
/// `transport`, `throttled`, `http`, `rpc`, `decode`).
pub fn rpc_call(chain: &str, method: &'static str, elapsed: Duration, error: Option<&'static str>) {
    let i = instruments();
    let chain = KeyValue::new("chain", chain.to_owned());
    let method = KeyValue::new("method", method);
    let outcome = KeyValue::new("outcome", if error.is_some() { "error" } else { "ok" });
    i.rpc_duration.record(
        elapsed.as_secs_f64(),
        &[chain.clone(), method.clone(), outcome],
    );
    if let Some(kind) = error {
        i.rpc_errors
            .add(1, &[chain, method, KeyValue::new("kind", kind)]);
    }
}

/// A wallet's nonce counter minus the chain's pending nonce (negative: the chain is ahead, an
/// incident; positive: nonces handed out but not yet seen pending), and whether it is halted.
pub fn wallet_health(chain: &str, wallet: &str, nonce_lag: i64, halted: bool) {
    let attrs = [
        KeyValue::new("chain", chain.to_owned()),
        KeyValue::new("wallet", wallet.to_owned()),
    ];
    let i = instruments();
    i.nonce_lag.record(nonce_lag, &attrs);
    i.halted.record(u64::from(halted), &attrs);
}

/// One queue message delivered to `function` (`dequeue_count` 1 is the first delivery).
pub fn queue_delivery(function: &str, dequeue_count: Option<u64>) {
    let redelivered = dequeue_count.is_some_and(|n| n > 1);
    instruments().deliveries.add(
        1,
        &[
            KeyValue::new("function", function.to_owned()),
            KeyValue::new("redelivered", redelivered),
        ],
    );
}

/// A message's last allowed delivery to `function` failed: the host moves it to `-poison`.
pub fn queue_poisoned(function: &str) {
    instruments()
        .poisoned
        .add(1, &[KeyValue::new("function", function.to_owned())]);
}

/// One merchant webhook delivery attempt (`delivered`, `retry`, `failed`, `rejected`, ...).
pub fn webhook_delivery(outcome: &'static str) {
    instruments()
        .webhooks
        .add(1, &[KeyValue::new("outcome", outcome)]);
}

/// Reconciliation found `count` new discrepancies of `kind` (the alert fires on any).
pub fn reconcile_discrepancies(kind: &str, count: u64) {
    if count > 0 {
        instruments()
            .discrepancies
            .add(count, &[KeyValue::new("kind", kind.to_owned())]);
    }
}
