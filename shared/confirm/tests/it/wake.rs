//! A running polling chain brought forward: by a confirm hint sent the way the chain webhook
//! sends it (`NOTIFY`, so from any instance), or by its final block appearing. The cadence is
//! set to a minute here, so a chain that finishes within the test was woken; and a hint never
//! decides anything: a hint for a transaction that is not mined costs one check and changes
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::primitives::B256;
use meshpay_confirm::finality::ChainHead;
use meshpay_confirm::receipt::ReceiptFacts;
use meshpay_confirm::{ConfirmConfig, ConfirmMessage, ConfirmOutcome, ConfirmRpc, Pipeline};
use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_relay::{AlloyRpc, RpcFailure};

use crate::support::ConfirmStack;

/// Longer than any test here runs: only a wake-up makes a chain check again.
const CADENCE: Duration = Duration::from_secs(60);
/// How long a test waits for something that happens at once when it works.
const PATIENCE: Duration = Duration::from_secs(15);

/// anvil, counting the receipt reads (one per check of a payment with one transaction).
struct CountingNode {
    inner: AlloyRpc,
    receipts: AtomicUsize,
}

impl CountingNode {
    fn new(stack: &ConfirmStack) -> Arc<CountingNode> {
        Arc::new(CountingNode {
            inner: AlloyRpc::new(stack.anvil.url().parse().unwrap(), Duration::from_secs(10)),
            receipts: AtomicUsize::new(0),
        })
    }

    fn checks(&self) -> usize {
        self.receipts.load(Ordering::SeqCst)
    }

    async fn wait_for_checks(&self, at_least: usize) {
        tokio::time::timeout(PATIENCE, async {
            while self.checks() < at_least {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} checks, expected {at_least}", self.checks()));
    }
}

#[async_trait::async_trait]
impl ConfirmRpc for CountingNode {
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        self.receipts.fetch_add(1, Ordering::SeqCst);
        self.inner.receipt(hash).await
    }
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        self.inner.head(finalized).await
    }
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure> {
        self.inner.block_hash(number).await
    }
    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        self.inner.transaction_known(hash).await
    }
    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        self.inner.send_raw(raw).await
    }
}

fn slow_cadence(head_poll: Option<Duration>) -> ConfirmConfig {
    ConfirmConfig {
        poll_interval: CADENCE,
        poll_interval_min: CADENCE,
        head_poll,
        invocation_wait: Duration::from_secs(120),
        ..ConfirmConfig::default()
    }
}

/// Waits until this database has a session listening for confirm hints (a hint sent before
/// would find nobody to wake).
async fn wait_for_listener(stack: &ConfirmStack) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_one(stack.store.pool())
            .await
            .unwrap();
            if listening > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no hint listener");
}

/// A pipeline with the slow cadence, reading the chain through a counting node, whose hint
/// listener is already listening.
async fn listening_pipeline(
    stack: &ConfirmStack,
) -> (
    Arc<Pipeline>,
    Arc<CountingNode>,
    tokio::task::JoinHandle<()>,
) {
    let node = CountingNode::new(stack);
    let pipeline = Arc::new(
        stack
            .pipeline_with(slow_cadence(None))
            .with_rpc("anvil", node.clone()),
    );
    let listener = pipeline.listen_for_hints();
    wait_for_listener(stack).await;
    (pipeline, node, listener)
}

fn run_chain(
    pipeline: &Arc<Pipeline>,
    payment: PaymentId,
) -> tokio::task::JoinHandle<ConfirmOutcome> {
    let pipeline = pipeline.clone();
    tokio::spawn(async move {
        pipeline
            .confirm(ConfirmMessage::new(payment))
            .await
            .unwrap()
    })
}

#[tokio::test]
async fn an_early_hint_costs_one_check_and_a_hint_once_final_confirms_at_once() {
    let stack = ConfirmStack::start(1).await;
    let (pipeline, node, listener) = listening_pipeline(&stack).await;
    let (payment, _) = stack.broadcast("USDC", 1_000_000).await;
    let chain = run_chain(&pipeline, payment.id);
    node.wait_for_checks(1).await;

    // A hint for a transaction that is not mined (what a forged or early hint says): one
    // check, which finds it pending; nothing changes.
    stack.store.hint_confirmations(&[payment.id]).await.unwrap();
    node.wait_for_checks(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.checks(), 2, "a hint cost more than one check");
    assert!(!chain.is_finished());
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);

    // Mined and final: the next hint makes the chain check and confirm at once.
    stack.mine(2).await;
    stack.store.hint_confirmations(&[payment.id]).await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, chain)
        .await
        .expect("the hinted chain did not check")
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { payment_id, .. } if payment_id == payment.id),
        "{outcome:?}"
    );
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Confirmed);
    listener.abort();
    stack.finish().await;
}

#[tokio::test]
async fn a_hint_for_another_payment_wakes_nothing() {
    let stack = ConfirmStack::start(1).await;
    let (pipeline, node, listener) = listening_pipeline(&stack).await;
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let chain = run_chain(&pipeline, payment.id);
    node.wait_for_checks(1).await;
    stack.mine(2).await;

    stack
        .store
        .hint_confirmations(&[PaymentId::new()])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.checks(), 1);
    assert!(!chain.is_finished());

    // In-process, without the database: the same wake-up.
    assert!(pipeline.wake(payment.id));
    let outcome = tokio::time::timeout(PATIENCE, chain)
        .await
        .expect("the woken chain did not check")
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    listener.abort();
    stack.finish().await;
}

#[tokio::test]
async fn a_chain_checks_when_its_final_block_appears_without_any_hint() {
    let stack = ConfirmStack::start(2).await;
    let node = CountingNode::new(&stack);
    let pipeline = Arc::new(
        stack
            .pipeline_with(slow_cadence(Some(Duration::from_millis(20))))
            .with_rpc("anvil", node.clone()),
    );
    let (payment, _) = stack.broadcast("USDC", 1_000_000).await;
    stack.mine(1).await;
    let chain = run_chain(&pipeline, payment.id);
    node.wait_for_checks(1).await;

    // One block on top of two: the head rose, but not to the final block.
    stack.mine(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.checks(), 1, "checked before its final block");
    assert!(!chain.is_finished());

    stack.mine(1).await;
    let outcome = tokio::time::timeout(PATIENCE, chain)
        .await
        .expect("the chain did not check when its final block appeared")
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    assert_eq!(node.checks(), 2);
    stack.finish().await;
}
