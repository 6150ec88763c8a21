//! Sweeps: a hot wallet calls the chain's `DepositFactory.sweep(salts, tokens)` for a batch of
//! invoices whose credited payments are final, deploying their forwarders and flushing them to
//! the factory's treasury ([`Sweeper::run`], the `sweep` timer).
//!
//! Each run, per chain that takes pay-ins and that the relay signs for:
//! 1. **Advance** the chain's sweep in flight: a `planned` one is signed (its stored fields, no
//!    lock held), stored (`broadcast`) and sent; a `broadcast` one has the receipts of all its
//!    attempts read: one mined in a final block (at least `confirmations` deep and still the
//!    canonical block at its height) finishes it (`confirmed`, or `failed` when reverted) with
//!    its ledger posting; none mined → the live bytes are sent again, and re-priced on the same
//!    nonce (bump rule, the chain's cap as ceiling) when a node refuses them for their price or
//!    the next base fee is above their max fee. A missing receipt is never evidence of
//!    anything: the sweep just stays in flight.
//! 2. **Plan** the next batch when none is in flight: at most [`SweepConfig::batch`] invoices,
//!    the gas limit from `eth_estimateGas` plus [`SweepConfig::gas_headroom_pct`], the nonce
//!    from the wallet's counter, all stored before anything is signed.
//!
//! Everything a run does is derived from the database, so a run that dies at any line leaves
//! a state the next run picks up (see docs/ARCHITECTURE.md "Sweeps").

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use meshpay_chain::flushed::FlushedLog;
use meshpay_chain::rpc::{AlloyRpc, LogFacts, ReceiptFacts};
use meshpay_chain::{Chain, ChainsConfig};
use meshpay_domain::InvoiceId;
use meshpay_domain::{Amount, AssetId, AssetKind};
use meshpay_relay::fee_policy::FeePair;
use meshpay_relay::transfer::{TransferCall, TxParams};
use meshpay_relay::{LazyRelay, Relay, RelayError, WalletSend};
use meshpay_store::sweeps::{
    DepositFlow, DueInvoice, NewSweep, NewSweepTx, PlanOutcome, Sweep, SweepKind, SweepReceipt,
    SweepStatus, SweepTx,
};
use meshpay_store::{Store, StoreError};
use serde::Serialize;

use crate::deposit::IDepositFactory;
use crate::rpc::ReadError;

#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Most invoices per sweep transaction (each adds a forwarder deploy and flush).
    pub batch: usize,
    /// Added to `eth_estimateGas`, percent.
    pub gas_headroom_pct: u64,
    pub rpc_timeout: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            batch: 16,
            gas_headroom_pct: 25,
            rpc_timeout: Duration::from_secs(10),
        }
    }
}

/// Most invoices per sweep transaction (1–64; default 16).
pub const SWEEP_BATCH_ENV: &str = "MESHPAY_SWEEP_BATCH";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SWEEP_BATCH_ENV}: `{0}` is not a number from 1 to 64")]
pub struct SweepConfigError(pub String);

impl SweepConfig {
    /// [`SWEEP_BATCH_ENV`] read through `get`, on top of the defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SweepConfigError> {
        let mut config = SweepConfig::default();
        if let Some(value) = get(SWEEP_BATCH_ENV) {
            config.batch = value
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or(SweepConfigError(value))?;
        }
        Ok(config)
    }
}

/// Where a test stops a run, as if the process died right after that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    Plan,
    Sign,
    Store,
    Send,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("chain RPC failed: {0}")]
    Rpc(#[from] meshpay_chain::rpc::RpcFailure),
    #[error("stopped after {0:?} (test)")]
    Stopped(StopAfter),
    #[error("chain {0}: {1}")]
    Chain(String, String),
    /// An operator's sweep that cannot be made (unknown invoice, nothing of that token
    /// recorded, a sweep already in flight on the chain, a recognized token).
    #[error("{0}")]
    Refused(String),
}

/// What one run did on one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub chain: String,
    /// Sweeps that reached `confirmed` or `failed` in this run.
    pub finished: Vec<(uuid::Uuid, SweepStatus)>,
    /// A sweep planned in this run, with its invoice count.
    pub planned: Option<(uuid::Uuid, usize)>,
    /// Transactions sent (or sent again) in this run.
    pub sent: Vec<B256>,
    /// Why the sweep in flight is still waiting, if it is.
    pub waiting: Option<String>,
}

pub struct Sweeper {
    store: Store,
    chains: Arc<ChainsConfig>,
    relay: LazyRelay,
    config: SweepConfig,
    stop_after: Option<StopAfter>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The nodes one chain's sweep reads.
struct Nodes {
    confirm: AlloyRpc,
}

impl Sweeper {
    pub fn new(
        store: Store,
        chains: Arc<ChainsConfig>,
        relay: LazyRelay,
        config: SweepConfig,
    ) -> Self {
        Sweeper {
            store,
            chains,
            relay,
            config,
            stop_after: None,
        }
    }

    /// Tests: stop each run after `step` with [`SweepError::Stopped`], as a crash would.
    pub fn stopping_after(mut self, step: Option<StopAfter>) -> Self {
        self.stop_after = step;
        self
    }

    fn stop(&self, step: StopAfter) -> Result<(), SweepError> {
        if self.stop_after == Some(step) {
            return Err(SweepError::Stopped(step));
        }
        Ok(())
    }

    /// One run over every chain with a deposit factory the relay signs for.
    pub async fn run(&self) -> Vec<Result<SweepReport, SweepError>> {
        let relay = match self.relay.get().await {
            Ok(relay) => relay.clone(),
            Err(error) => return vec![Err(error.into())],
        };
        let mut reports = Vec::new();
        for chain in self.chains.chains() {
            if chain.deposit_factory.is_none() || relay.chain(&chain.name).is_none() {
                continue;
            }
            reports.push(self.run_chain(&relay, chain).await);
        }
        reports
    }

    /// One run on one chain: advance the sweep in flight, else plan and send the next one.
    pub async fn run_chain(&self, relay: &Relay, chain: &Chain) -> Result<SweepReport, SweepError> {
        let nodes = Nodes {
            confirm: AlloyRpc::new(chain.rpc_url.clone(), self.config.rpc_timeout)
                .for_chain(&chain.name),
        };
        let mut report = SweepReport {
            chain: chain.name.clone(),
            ..SweepReport::default()
        };
        for sweep in self.store.open_sweeps(&chain.name).await? {
            self.advance(relay, &nodes, chain, sweep, &mut report)
                .await?;
        }
        if !self.store.open_sweeps(&chain.name).await?.is_empty() {
            return Ok(report);
        }
        let due = self
            .store
            .due_sweeps(&chain.name, self.config.batch.max(1))
            .await?;
        if due.is_empty() {
            return Ok(report);
        }
        let call = sweep_call(factory_of(chain)?, chain, &due);
        let Some(sweep) = self
            .plan(relay, chain, SweepKind::Invoices, call, &due)
            .await?
        else {
            return Ok(report);
        };
        report.planned = Some((sweep.id, due.len()));
        self.stop(StopAfter::Plan)?;
        self.advance(relay, &nodes, chain, sweep, &mut report)
            .await?;
        Ok(report)
    }

    async fn plan(
        &self,
        relay: &Relay,
        chain: &Chain,
        kind: SweepKind,
        call: TransferCall,
        due: &[DueInvoice],
    ) -> Result<Option<Sweep>, SweepError> {
        let factory = factory_of(chain)?;
        let Some(wallet) = relay.wallet_for_upkeep(&chain.name).await? else {
            return Err(SweepError::Chain(
                chain.name.clone(),
                "every hot wallet is halted".into(),
            ));
        };
        let estimate = relay.estimate_call(&chain.name, wallet, &call).await?;
        let gas_limit =
            estimate.saturating_add(estimate.saturating_mul(self.config.gas_headroom_pct) / 100);
        let fees = relay.current_fees(&chain.name).await?;
        let floor = relay.pending_nonce(&chain.name, wallet).await?;
        let treasury = self.treasury(chain, factory).await?;
        let new = NewSweep {
            chain: chain.name.clone(),
            kind,
            wallet,
            chain_floor: floor,
            factory,
            treasury,
            input: call.input.to_vec(),
            tokens: flushed_tokens(&call.input),
            gas_limit,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
            payments: due.iter().flat_map(|d| d.payments.clone()).collect(),
        };
        Ok(
            match self
                .store
                .plan_sweep(&new, relay.config().db_timeouts)
                .await?
            {
                PlanOutcome::Planned(sweep, allocation) => {
                    tracing::info!(chain = %chain.name, sweep = %sweep.id, %wallet,
                    nonce = allocation.nonce, invoices = due.len(), gas_limit, "sweep planned");
                    Some(*sweep)
                }
                PlanOutcome::InFlight => None,
            },
        )
    }

    /// The factory's treasury (an immutable of its code, read once per plan).
    async fn treasury(&self, chain: &Chain, factory: Address) -> Result<Address, SweepError> {
        use alloy::providers::{Provider, ProviderBuilder};
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(chain.rpc_url.clone());
        let request = alloy::rpc::types::TransactionRequest::default()
            .to(factory)
            .input(IDepositFactory::treasuryCall {}.abi_encode().into());
        let read = tokio::time::timeout(self.config.rpc_timeout, provider.call(request));
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(error)) => {
                return Err(SweepError::Chain(
                    chain.name.clone(),
                    format!("treasury(): {error}"),
                ));
            }
            Err(_) => {
                return Err(SweepError::Chain(
                    chain.name.clone(),
                    "treasury() timed out".into(),
                ));
            }
        };
        IDepositFactory::treasuryCall::abi_decode_returns(&bytes)
            .map_err(|e| SweepError::Chain(chain.name.clone(), format!("treasury(): {e}")))
    }

    async fn advance(
        &self,
        relay: &Relay,
        nodes: &Nodes,
        chain: &Chain,
        sweep: Sweep,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        match sweep.status {
            SweepStatus::Planned => {
                let call = TransferCall {
                    to: sweep.factory,
                    value_wei: U256::ZERO,
                    input: Bytes::from(sweep.input.clone()),
                };
                let fees = FeePair {
                    max_fee_per_gas_wei: sweep.max_fee_per_gas_wei,
                    max_priority_fee_per_gas_wei: sweep.max_priority_fee_per_gas_wei,
                };
                let signed = self.sign(relay, chain, &sweep, &call, fees).await?;
                self.stop(StopAfter::Sign)?;
                let Some(attempt) = self
                    .store
                    .store_sweep_attempt(sweep.id, &signed, relay.config().db_timeouts)
                    .await?
                else {
                    return Ok(());
                };
                self.stop(StopAfter::Store)?;
                self.send(relay, chain, &sweep, &attempt, report).await
            }
            SweepStatus::Broadcast => self.watch(relay, nodes, chain, &sweep, report).await,
            SweepStatus::Confirmed | SweepStatus::Failed => Ok(()),
        }
    }

    async fn sign(
        &self,
        relay: &Relay,
        chain: &Chain,
        sweep: &Sweep,
        call: &TransferCall,
        fees: FeePair,
    ) -> Result<NewSweepTx, SweepError> {
        let params = TxParams {
            chain_id: chain.chain_id,
            nonce: sweep.nonce,
            gas_limit: sweep.gas_limit,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
        };
        let signed = relay
            .sign_wallet_tx(&chain.name, sweep.wallet, call, params)
            .await?;
        Ok(NewSweepTx {
            tx_hash: signed.hash,
            raw: signed.raw,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
        })
    }

    /// Sends the stored bytes, the send's start recorded first; refused for its price → one
    /// re-priced replacement on the nonce, sent the same way.
    async fn send(
        &self,
        relay: &Relay,
        chain: &Chain,
        sweep: &Sweep,
        attempt: &SweepTx,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        self.store.begin_sweep_send(attempt.id).await?;
        let answer = relay.send_wallet_tx(&chain.name, &attempt.raw).await?;
        self.stop(StopAfter::Send)?;
        match answer {
            WalletSend::Accepted => {
                self.store
                    .record_sweep_send(attempt.id, Ok(()), true)
                    .await?;
                report.sent.push(attempt.tx_hash);
            }
            WalletSend::Refused {
                message,
                price,
                exposed,
            } => {
                self.store
                    .record_sweep_send(attempt.id, Err(&message), exposed)
                    .await?;
                tracing::warn!(chain = %chain.name, sweep = %sweep.id, tx_hash = %attempt.tx_hash,
                    error = %message, "sweep transaction not acknowledged");
                if price {
                    self.replace(relay, chain, sweep, attempt, report).await?;
                } else {
                    report.waiting = Some(message);
                }
            }
        }
        Ok(())
    }

    /// Signs and stores a re-priced transaction on the sweep's nonce, then sends it.
    async fn replace(
        &self,
        relay: &Relay,
        chain: &Chain,
        sweep: &Sweep,
        previous: &SweepTx,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let priced = FeePair {
            max_fee_per_gas_wei: previous.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: previous.max_priority_fee_per_gas_wei,
        };
        let Some(fees) = relay.replacement_fees(&chain.name, priced).await? else {
            report.waiting = Some("fee market above the chain's cap".into());
            return Ok(());
        };
        let call = TransferCall {
            to: sweep.factory,
            value_wei: U256::ZERO,
            input: Bytes::from(sweep.input.clone()),
        };
        let signed = self.sign(relay, chain, sweep, &call, fees).await?;
        let Some(replacement) = self
            .store
            .replace_sweep_attempt(previous, &signed, relay.config().db_timeouts)
            .await?
        else {
            return Ok(());
        };
        tracing::warn!(chain = %chain.name, sweep = %sweep.id, replaced = %previous.tx_hash,
            tx_hash = %replacement.tx_hash, max_fee = fees.max_fee_per_gas_wei,
            "sweep re-priced on its nonce");
        self.store.begin_sweep_send(replacement.id).await?;
        match relay.send_wallet_tx(&chain.name, &replacement.raw).await? {
            WalletSend::Accepted => {
                self.store
                    .record_sweep_send(replacement.id, Ok(()), true)
                    .await?;
                report.sent.push(replacement.tx_hash);
            }
            WalletSend::Refused {
                message, exposed, ..
            } => {
                self.store
                    .record_sweep_send(replacement.id, Err(&message), exposed)
                    .await?;
                report.waiting = Some(message);
            }
        }
        Ok(())
    }

    /// A broadcast sweep: finished once one of its attempts is mined in a final block; else
    /// the live bytes go out again (re-priced when the base fee passed them).
    async fn watch(
        &self,
        relay: &Relay,
        nodes: &Nodes,
        chain: &Chain,
        sweep: &Sweep,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let attempts = self.store.sweep_attempts(sweep.id).await?;
        let mut mined: Option<ReceiptFacts> = None;
        for attempt in &attempts {
            if let Some(receipt) = nodes.confirm.receipt(attempt.tx_hash).await? {
                mined = Some(receipt);
                break;
            }
        }
        if let Some(receipt) = mined {
            return self.finish(nodes, chain, sweep, receipt, report).await;
        }
        let Some(live) = attempts.iter().rev().find(|a| a.live) else {
            return Ok(());
        };
        let below_base = matches!(
            relay.next_base_fee(&chain.name).await?,
            Some(base) if live.max_fee_per_gas_wei < base
        );
        if below_base {
            return self.replace(relay, chain, sweep, live, report).await;
        }
        self.send(relay, chain, sweep, live, report).await
    }

    async fn finish(
        &self,
        nodes: &Nodes,
        chain: &Chain,
        sweep: &Sweep,
        receipt: ReceiptFacts,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let head = nodes.confirm.head(chain.use_finalized).await?;
        let deep_enough = if chain.use_finalized {
            head.finalized.is_some_and(|f| f >= receipt.block_number)
        } else {
            head.latest >= receipt.block_number.saturating_add(chain.confirmations)
        };
        if !deep_enough {
            report.waiting = Some(format!(
                "mined in block {}, not final yet",
                receipt.block_number
            ));
            return Ok(());
        }
        // Positive evidence only: the canonical block at that height must be the receipt's.
        match nodes.confirm.block_hash(receipt.block_number).await? {
            Some(hash) if hash == receipt.block_hash => {}
            _ => {
                report.waiting = Some(format!(
                    "block {} not confirmed canonical yet",
                    receipt.block_number
                ));
                return Ok(());
            }
        }
        let flows = if receipt.success {
            self.flows(chain, sweep, &receipt).await?
        } else {
            Flows::default()
        };
        let finished = SweepReceipt {
            tx_hash: receipt.tx_hash,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
            success: receipt.success,
            gas_used: receipt.gas_used,
            fee: receipt.network_fee_wei(),
            native: chain.native.id().clone(),
            flows: flows.assets,
            unrecognized: flows.unrecognized,
            deposits: flows.deposits,
        };
        if self.store.finish_sweep(sweep.id, &finished).await? {
            let status = if receipt.success {
                SweepStatus::Confirmed
            } else {
                SweepStatus::Failed
            };
            tracing::info!(chain = %chain.name, sweep = %sweep.id, tx_hash = %receipt.tx_hash,
                block = receipt.block_number, gas_used = receipt.gas_used, ?status, "sweep finished");
            report.finished.push((sweep.id, status));
        }
        Ok(())
    }

    /// What reached the treasury, from the receipt alone: each `Flushed(token, amount)` a
    /// deposit address of this sweep emitted (token zero: the native coin, so coin paid in the
    /// same block before the sweep is counted exactly). Logs of any other address are ignored
    /// (a token's contract could emit a look-alike event).
    async fn flows(
        &self,
        chain: &Chain,
        sweep: &Sweep,
        receipt: &ReceiptFacts,
    ) -> Result<Flows, SweepError> {
        let deposits = self.store.sweep_deposits(sweep.id).await?;
        let mut flows = Flows::default();
        for flushed in receipt.logs.iter().filter_map(LogFacts::flushed) {
            let FlushedLog {
                deposit,
                token,
                amount,
            } = flushed;
            if !deposits.contains(&deposit) || amount.is_zero() {
                continue;
            }
            let asset = if token.is_zero() {
                Some(chain.native.id())
            } else {
                token_asset(chain, token)
            };
            match asset {
                Some(asset) => add(&mut flows.assets, asset, amount),
                None if sweep.kind == SweepKind::Operator => {
                    add(
                        &mut flows.unrecognized,
                        &unrecognized_asset(chain, token)?,
                        amount,
                    );
                }
                // The timer's sweeps list configured tokens only: nothing else is flushed.
                None => {}
            }
            flows.deposits.push(DepositFlow {
                deposit,
                token,
                amount: Amount::from_base_units(amount),
            });
        }
        Ok(flows)
    }

    /// An operator's sweep of `token`, a token the chain's configuration does not know, paid
    /// to the invoice's deposit address: planned, signed, stored and sent now; the `sweep`
    /// timer confirms it and posts the amount to the `unrecognized` account, never to a
    /// merchant.
    pub async fn operator_sweep(
        &self,
        invoice: InvoiceId,
        token: Address,
    ) -> Result<SweepReport, SweepError> {
        let relay = self.relay.get().await?.clone();
        let Some((chain_name, due)) = self.store.unrecognized_due(invoice, token).await? else {
            return Err(SweepError::Refused(format!("invoice {invoice} not found")));
        };
        let chain = self
            .chains
            .chain(&chain_name)
            .ok_or_else(|| SweepError::Refused(format!("chain {chain_name} is not configured")))?;
        if token_asset(chain, token).is_some() {
            return Err(SweepError::Refused(format!(
                "{token} is a configured token of {chain_name}: the sweep timer sweeps it"
            )));
        }
        if due.payments.is_empty() {
            return Err(SweepError::Refused(format!(
                "invoice {invoice} has no unswept payment in {token}"
            )));
        }
        let factory = factory_of(chain)?;
        let call = TransferCall {
            to: factory,
            value_wei: U256::ZERO,
            input: IDepositFactory::sweepCall {
                salts: vec![due.salt],
                tokens: vec![token],
            }
            .abi_encode()
            .into(),
        };
        let due = [due];
        let Some(sweep) = self
            .plan(&relay, chain, SweepKind::Operator, call, &due)
            .await?
        else {
            return Err(SweepError::Refused(format!(
                "a sweep is in flight on {chain_name}: try again once it is confirmed"
            )));
        };
        let nodes = Nodes {
            confirm: AlloyRpc::new(chain.rpc_url.clone(), self.config.rpc_timeout)
                .for_chain(&chain.name),
        };
        let mut report = SweepReport {
            chain: chain.name.clone(),
            planned: Some((sweep.id, 1)),
            ..SweepReport::default()
        };
        self.advance(&relay, &nodes, chain, sweep, &mut report)
            .await?;
        Ok(report)
    }
}

/// The tokens a `sweep(salts, tokens)` call flushes.
fn flushed_tokens(input: &[u8]) -> Vec<Address> {
    IDepositFactory::sweepCall::abi_decode(input)
        .map(|call| call.tokens)
        .unwrap_or_default()
}

/// What reached the treasury: configured assets, unrecognized tokens, and per deposit address.
#[derive(Debug, Default)]
struct Flows {
    assets: Vec<(AssetId, Amount)>,
    unrecognized: Vec<(AssetId, Amount)>,
    deposits: Vec<DepositFlow>,
}

fn add(flows: &mut Vec<(AssetId, Amount)>, asset: &AssetId, amount: U256) {
    if amount.is_zero() {
        return;
    }
    match flows.iter_mut().find(|(a, _)| a == asset) {
        Some((_, total)) => {
            *total = Amount::from_base_units(total.base_units().saturating_add(amount));
        }
        None => flows.push((asset.clone(), Amount::from_base_units(amount))),
    }
}

fn factory_of(chain: &Chain) -> Result<Address, SweepError> {
    chain
        .deposit_factory
        .ok_or_else(|| SweepError::Chain(chain.name.clone(), "no deposit factory".into()))
}

/// The ledger asset of a token the configuration does not know: `<chain>:T` and the first 15
/// hex digits of its contract (an asset symbol holds 16 characters; the full contract is in
/// the posting's details).
pub fn unrecognized_asset(chain: &Chain, token: Address) -> Result<AssetId, SweepError> {
    let hex = alloy::hex::encode_upper(token.as_slice());
    AssetId::new(&chain.name, &format!("T{}", &hex[..15]))
        .map_err(|e| SweepError::Chain(chain.name.clone(), e.to_string()))
}

/// The configured asset of a token contract.
fn token_asset(chain: &Chain, contract: Address) -> Option<&AssetId> {
    chain
        .tokens
        .iter()
        .find(|t| matches!(t.kind(), AssetKind::Erc20 { contract: c } if c == contract))
        .map(|t| t.id())
}

/// `sweep(salts, tokens)` of the batch: every configured token the batch's payments were made
/// in (the native coin is always flushed).
pub fn sweep_call(factory: Address, chain: &Chain, due: &[DueInvoice]) -> TransferCall {
    let salts: Vec<B256> = due.iter().map(|d| d.salt).collect();
    let mut tokens: Vec<Address> = due
        .iter()
        .flat_map(|d| d.payments.iter().map(|p| p.token))
        .filter(|t| !t.is_zero() && token_asset(chain, *t).is_some())
        .collect();
    tokens.sort();
    tokens.dedup();
    TransferCall {
        to: factory,
        value_wei: U256::ZERO,
        input: IDepositFactory::sweepCall { salts, tokens }
            .abi_encode()
            .into(),
    }
}
