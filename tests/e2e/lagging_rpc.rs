//! The pipeline against a lagging RPC node: devhost + `meshpay` reach anvil through the
//! testkit's fault proxy, which answers "unknown" (`null`) to reads of a hash anvil has mined,
//! as a node behind a load balancer does. The rule under test: one "unknown" read never
//! re-signs a payment. Each test ends with the chain itself (anvil, not the proxy) showing
//! exactly one Transfer to the recipient, and the payment settled or parked with a reason.

use std::time::{Duration, Instant};

use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_testkit::payment::fresh_recipient;
use meshpay_testkit::rpc_proxy::{Faults, kind};
use meshpay_testkit::stack::HandlerSettings;

use crate::support::{
    LOG_LINES, PipelineStack, RECONCILE_IDLE, WAIT, funded_merchant, on_demand_chain,
};

struct LaggingRpc;
type Ctx = PipelineStack<LaggingRpc>;

impl PipelineStack<LaggingRpc> {
    /// anvil mining on demand behind the proxy; confirm polls every 100 ms and gives up
    /// (parks) after `max_wait_secs`.
    async fn start(max_wait_secs: u64) -> Ctx {
        let settings = HandlerSettings::default()
            .dev_signers()
            .fast_retries()
            .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
            .env("MESHPAY_CONFIRM_INVOCATION_WAIT_MS", "1500")
            .env("MESHPAY_CONFIRM_MAX_WAIT_SECS", max_wait_secs.to_string())
            .env("RECONCILE_SCHEDULE", RECONCILE_IDLE);
        let builder = on_demand_chain().rpc_proxy(13).devhost(settings);
        Ctx::start_with(builder, funded_merchant()).await
    }

    /// Transactions signed for the payment (attempts).
    async fn attempts(&self, id: PaymentId) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM payment_transactions WHERE payment_id = '{}'",
            id.as_uuid()
        ))
        .await
    }

    /// The payment's confirm chain's last outcome and its reason.
    async fn confirm_outcome(&self, id: PaymentId) -> (Option<String>, Option<String>) {
        sqlx::query_as(
            "SELECT last_outcome, last_detail FROM payment_confirmations WHERE payment_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(self.store.pool())
        .await
        .unwrap()
        .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_mined_transfer_read_as_unknown_settles_with_one_transfer_and_no_second_signature() {
    let stack = Ctx::start(600).await;
    // A lagging node: the first three receipt or transaction reads of every mined hash
    // answer null.
    stack.rpc_proxy().set_faults(Faults {
        hide_first_reads: 3,
        ..Faults::none()
    });
    let to = fresh_recipient();
    let (id, amount) = stack.pay("USDC", "42.00", &to).await;

    stack
        .wait_until(id, true, |p| p.status == PaymentStatus::Settled)
        .await;

    assert!(
        stack.rpc_proxy().injected().get(kind::HIDDEN_HASH) >= Some(&1),
        "the proxy must have answered a mined hash as unknown: {:?}",
        stack.rpc_proxy().injected()
    );
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    assert_eq!(stack.attempts(id).await, 1, "the payment was signed again");
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn a_mined_transfer_a_lagging_node_never_finds_is_parked_with_a_reason_not_resent() {
    let stack = Ctx::start(5).await;
    let to = fresh_recipient();
    let (id, amount) = stack.pay("USDC", "7.25", &to).await;
    // Broadcast (anvil holds the transaction in its pool, nothing mined yet), then the node
    // the handler reads never finds the hash again, while anvil mines it.
    stack
        .wait_until(id, false, |p| p.status == PaymentStatus::Broadcast)
        .await;
    let hash = stack.payment(id).await.tx_hash.unwrap().to_string();
    stack.rpc_proxy().hide_hash(&hash);
    stack.anvil().mine(3).await;
    let deadline = Instant::now() + WAIT;
    let (outcome, reason) = loop {
        let (outcome, reason) = stack.confirm_outcome(id).await;
        if matches!(outcome.as_deref(), Some("stalled" | "needs_review")) {
            break (outcome, reason);
        }
        assert!(
            Instant::now() < deadline,
            "{id} never parked: {outcome:?} {reason:?}\n{}",
            stack.log_tail(LOG_LINES)
        );
        stack.anvil().mine(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let payment = stack.payment(id).await;
    assert_eq!(payment.status, PaymentStatus::Broadcast, "{outcome:?}");
    assert!(
        reason.as_deref().is_some_and(|r| !r.is_empty()),
        "parked without a reason"
    );
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    assert_eq!(stack.attempts(id).await, 1, "the payment was signed again");
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn behind_a_load_balancer_with_a_lagging_node_payments_settle_once_each() {
    let stack = Ctx::start(600).await;
    stack.rpc_proxy().set_faults(Faults {
        load_balancer: Some(2),
        ..Faults::none()
    });
    let recipients: Vec<String> = (0..3).map(|_| fresh_recipient()).collect();
    let mut paid = Vec::new();
    for to in &recipients {
        paid.push((stack.pay("USDC", "3.00", to).await, to));
    }
    for ((id, _), _) in &paid {
        stack
            .wait_until(*id, true, |p| p.status == PaymentStatus::Settled)
            .await;
    }

    assert!(stack.rpc_proxy().injected().get(kind::LAGGING_VIEW) >= Some(&1));
    for ((id, amount), to) in paid {
        assert_eq!(stack.anvil().usdc_transfers_to(to).await, [amount]);
        assert_eq!(stack.attempts(id).await, 1, "{id} was signed again");
    }
    stack.assert_ledger_invariants().await;
}
