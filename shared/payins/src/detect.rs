//! Detection: finds payments to deposit addresses, follows them to finality, and moves their
//! invoices ([`meshpay_store::Store::refresh_invoice`] derives the status and posts credits).
//!
//! One run per chain, idempotent and crash-safe (every write is keyed, and the cursor only
//! moves after the range's transfers are recorded):
//! 1. **Scan**: `Transfer` logs of any token to the watched deposit addresses in blocks
//!    `[cursor, min(head, cursor + max_block_range - 1)]`. The cursor then moves only up to the
//!    last final block, so blocks that can still reorg are read again by the next run.
//! 2. **Finality and reorgs**: each recorded transfer's block is re-read by number. The same
//!    hash at or below the final head makes it final. Another hash at that height (a positive
//!    read, never a missing block or receipt alone) means its block left the chain: it is
//!    marked removed, re-recorded where its transaction now is (if mined elsewhere), and the
//!    cursor is rewound to that height so the new branch is scanned.
//! 3. **Refresh**: invoices with new facts (or open past expiry) get their status and credits.
//!
//! A token the chain's configuration does not know is recorded with no asset (never
//! credited); a recognized amount below the asset's configured minimum is recorded as dust.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::{Chain, ChainsConfig};
use meshpay_domain::{Address, Amount, AssetId, AssetKind};
use meshpay_store::invoices::detection::{ObservedTransfer, WatchedAddress};
use meshpay_store::{PaymentSeen, Store, StoreError};
use time::OffsetDateTime;

use crate::hint::DetectMessage;
use crate::rpc::{PayinRpc, ReadError, TransferLog};

/// How far back a recorded transfer's block is re-checked for a reorg.
pub const REORG_WINDOW_BLOCKS: u64 = 1024;
/// Deposit addresses per `eth_getLogs` topic list (providers cap filter sizes).
pub const ADDRESSES_PER_QUERY: usize = 100;

#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Most blocks one `eth_getLogs` range covers (providers cap ranges; 1000 is safe).
    pub max_block_range: u64,
    pub rpc_timeout: Duration,
    /// Per asset: amounts below this (base units) are dust, never credited.
    pub dust_below: BTreeMap<AssetId, Amount>,
    /// Crash tests only ([`PAYIN_FAULT_ENV`]).
    pub fault: Option<PayinFault>,
}

/// Fault injection for crash tests: `MESHPAY_PAYIN_FAULT=<point>` aborts the process at `point`
/// during a queued detection run, on the message's first delivery only (the redelivery then
/// finds what the crash left). Honoured in builds with debug assertions only.
pub const PAYIN_FAULT_ENV: &str = "MESHPAY_PAYIN_FAULT";

/// Where a detection run can be stopped; each fires only when its step did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayinFault {
    /// Transfers recorded, the log cursor not moved yet.
    AfterRecordBeforeCursor,
    /// Transfers marked final, their invoices not refreshed (not credited) yet.
    AfterFinalBeforeCredit,
    /// Credits committed, the run not recorded as complete (its hint not yet covered).
    AfterCreditBeforeComplete,
}

impl PayinFault {
    pub const fn as_str(self) -> &'static str {
        match self {
            PayinFault::AfterRecordBeforeCursor => "after_record_before_cursor",
            PayinFault::AfterFinalBeforeCredit => "after_final_before_credit",
            PayinFault::AfterCreditBeforeComplete => "after_credit_before_complete",
        }
    }

    pub fn parse(value: &str) -> Option<PayinFault> {
        [
            PayinFault::AfterRecordBeforeCursor,
            PayinFault::AfterFinalBeforeCredit,
            PayinFault::AfterCreditBeforeComplete,
        ]
        .into_iter()
        .find(|f| f.as_str() == value.trim())
    }
}

/// Minimum credited amounts: `chain:SYMBOL=base_units` items, comma-separated
/// (`anvil:USDC=10000,anvil:ETH=1000000000000`).
pub const DUST_MIN_ENV: &str = "MESHPAY_PAYIN_DUST_MIN";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{DUST_MIN_ENV}: `{0}` is not `chain:SYMBOL=base_units`")]
pub struct DetectConfigError(pub String);

impl DetectConfig {
    /// [`DUST_MIN_ENV`] read through `get`, on top of the defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DetectConfigError> {
        let mut config = DetectConfig::default();
        for item in get(DUST_MIN_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let bad = || DetectConfigError(item.to_owned());
            let (asset, amount) = item.split_once('=').ok_or_else(bad)?;
            let asset: AssetId = asset.trim().parse().map_err(|_| bad())?;
            let amount = Amount::parse_base_units(amount.trim()).map_err(|_| bad())?;
            config.dust_below.insert(asset, amount);
        }
        if let Some(value) = get(PAYIN_FAULT_ENV).filter(|v| !v.trim().is_empty()) {
            if cfg!(debug_assertions) {
                config.fault = PayinFault::parse(&value);
                tracing::warn!(value, armed = config.fault.is_some(), "{PAYIN_FAULT_ENV}");
            } else {
                tracing::warn!("{PAYIN_FAULT_ENV} is ignored in release builds");
            }
        }
        Ok(config)
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            max_block_range: 1000,
            rpc_timeout: Duration::from_secs(10),
            dust_below: BTreeMap::new(),
            fault: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dust_minimums_parse_per_asset_and_bad_items_are_refused() {
        let get = |v: &'static str| move |_: &str| Some(v.to_owned());
        let config = DetectConfig::from_lookup(get("anvil:USDC=10000, anvil:ETH=5")).unwrap();
        assert_eq!(
            config.dust_below.get(&"anvil:USDC".parse().unwrap()),
            Some(&Amount::from_u128(10_000))
        );
        assert_eq!(config.dust_below.len(), 2);
        assert!(config.fault.is_none());
        assert!(DetectConfig::from_lookup(get("anvil:USDC")).is_err());
        assert!(DetectConfig::from_lookup(get("USDC=1")).is_err());
        assert!(DetectConfig::from_lookup(get("anvil:USDC=1.5")).is_err());
        assert!(
            DetectConfig::from_lookup(|_: &str| None)
                .unwrap()
                .dust_below
                .is_empty()
        );
    }

    #[test]
    fn fault_points_parse_by_name_only() {
        for fault in [
            PayinFault::AfterRecordBeforeCursor,
            PayinFault::AfterFinalBeforeCredit,
            PayinFault::AfterCreditBeforeComplete,
        ] {
            assert_eq!(PayinFault::parse(fault.as_str()), Some(fault));
        }
        assert_eq!(PayinFault::parse("after_send_before_record"), None);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("chain read failed: {0}")]
    Read(#[from] ReadError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the node has no block {0} yet")]
    NoHead(&'static str),
}

/// What one run did on one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    /// Blocks scanned, inclusive.
    pub scanned: Option<(u64, u64)>,
    pub recorded: usize,
    pub finalized: usize,
    pub removed: usize,
    pub refreshed: usize,
    pub credits: usize,
    pub reversals: usize,
    /// Reversals parked for review (the merchant had spent the credit).
    pub parked: usize,
    /// Invoices whose refresh failed this run (retried by the next).
    pub failed: usize,
}

/// What a queued run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintedRun {
    /// The message names no chain that takes pay-ins (acknowledged, nothing done).
    NotAPayinChain,
    /// A run that started after the request completed already.
    Covered,
    Ran {
        report: ChainReport,
        /// Hints arrived during the run: enqueue this.
        follow_up: Option<DetectMessage>,
    },
}

/// Runs detection over every chain that takes pay-ins.
#[derive(Debug, Clone)]
pub struct Detector {
    store: Store,
    chains: Arc<ChainsConfig>,
    rpcs: HashMap<String, PayinRpc>,
    config: DetectConfig,
}

impl Detector {
    pub fn new(store: Store, chains: Arc<ChainsConfig>, config: DetectConfig) -> Self {
        let rpcs = chains
            .chains()
            .iter()
            .filter(|c| c.deposit_factory.is_some())
            .map(|c| {
                (
                    c.name.clone(),
                    PayinRpc::new(c.rpc_url.clone(), config.rpc_timeout),
                )
            })
            .collect();
        Detector {
            store,
            chains,
            rpcs,
            config,
        }
    }

    /// One run over every pay-in chain; a chain that fails is reported and the others go on.
    /// Each completed chain run covers the hints received before it started.
    pub async fn run(&self, now: OffsetDateTime) -> Vec<Result<ChainReport, DetectError>> {
        let mut reports = Vec::new();
        for chain in self.chains.chains() {
            if let Some(rpc) = self.rpcs.get(&chain.name) {
                reports.push(self.run_recorded(chain, rpc, now).await);
            }
        }
        reports
    }

    async fn run_recorded(
        &self,
        chain: &Chain,
        rpc: &PayinRpc,
        now: OffsetDateTime,
    ) -> Result<ChainReport, DetectError> {
        let started = self.store.db_now().await?;
        let report = self.run_chain(chain, rpc, now, false).await?;
        self.store
            .complete_payin_detection(&chain.name, started, false)
            .await?;
        Ok(report)
    }

    /// A queued run asked for by a hint ([`crate::hint`]): skipped when a run that started
    /// after the request has completed; otherwise one run of that chain, then a follow-up
    /// request when hints arrived while it went. `first_delivery` arms [`PAYIN_FAULT_ENV`].
    pub async fn run_hinted(
        &self,
        message: &DetectMessage,
        now: OffsetDateTime,
        first_delivery: bool,
    ) -> Result<HintedRun, DetectError> {
        let (Some(chain), Some(rpc)) = (
            self.chains.chain(&message.chain),
            self.rpcs.get(&message.chain),
        ) else {
            return Ok(HintedRun::NotAPayinChain);
        };
        if self
            .store
            .payin_detection_covered(&chain.name, message.requested_at)
            .await?
        {
            return Ok(HintedRun::Covered);
        }
        let started = self.store.db_now().await?;
        let report = self.run_chain(chain, rpc, now, first_delivery).await?;
        if report.credits > 0 {
            self.fault(first_delivery, PayinFault::AfterCreditBeforeComplete);
        }
        let follow_up = self
            .store
            .complete_payin_detection(&chain.name, started, true)
            .await?
            .map(|at| DetectMessage::new(chain.name.clone(), at));
        Ok(HintedRun::Ran { report, follow_up })
    }

    /// Stops here if this fault is armed (a crash test's first delivery).
    fn fault(&self, armed: bool, point: PayinFault) {
        if armed && self.config.fault == Some(point) {
            tracing::warn!("injected fault: aborting at {}", point.as_str());
            std::process::abort();
        }
    }

    async fn run_chain(
        &self,
        chain: &Chain,
        rpc: &PayinRpc,
        now: OffsetDateTime,
        armed: bool,
    ) -> Result<ChainReport, DetectError> {
        let mut report = ChainReport {
            chain: chain.name.clone(),
            ..ChainReport::default()
        };
        let head = rpc
            .head(false)
            .await?
            .ok_or(DetectError::NoHead("latest"))?;
        let final_head = if chain.use_finalized {
            rpc.head(true).await?.unwrap_or(0)
        } else {
            head.saturating_sub(chain.confirmations)
        };
        let watched = self.store.watched_deposit_addresses(&chain.name).await?;
        self.scan(chain, rpc, (head, final_head), &watched, &mut report, armed)
            .await?;
        self.native_balances(chain, rpc, final_head, &watched, &mut report)
            .await?;
        self.follow(chain, rpc, head, final_head, &watched, &mut report)
            .await?;
        if report.finalized > 0 {
            self.fault(armed, PayinFault::AfterFinalBeforeCredit);
        }
        for id in self.store.invoices_to_refresh(&chain.name, now).await? {
            match self.store.refresh_invoice(id, now).await {
                Ok(done) => {
                    report.refreshed += 1;
                    report.credits += done.credits_posted;
                    report.reversals += done.reversals_posted;
                    report.parked += done.reversals_parked;
                }
                Err(error) => {
                    // Stays selected: the next run retries; the invoice shows where it stands.
                    tracing::warn!(invoice = %id, %error, "invoice refresh failed");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// `(head, final_head)`: the latest block and the last final one.
    async fn scan(
        &self,
        chain: &Chain,
        rpc: &PayinRpc,
        (head, final_head): (u64, u64),
        watched: &[WatchedAddress],
        report: &mut ChainReport,
        armed: bool,
    ) -> Result<(), DetectError> {
        let range = self.config.max_block_range.max(1);
        let cursor = self.store.payin_cursor(&chain.name).await?;
        let from = cursor.unwrap_or_else(|| head.saturating_sub(range - 1));
        if from > head {
            return Ok(());
        }
        let to = head.min(from.saturating_add(range - 1));
        if !watched.is_empty() {
            let by_address: HashMap<Address, &WatchedAddress> =
                watched.iter().map(|w| (w.deposit_address, w)).collect();
            let addresses: Vec<Address> = by_address.keys().copied().collect();
            for chunk in addresses.chunks(ADDRESSES_PER_QUERY) {
                for log in rpc.transfers_to(chunk, from, to).await? {
                    if let Some(watch) = by_address.get(&log.to) {
                        let observed = self.observed(chain, watch, &log);
                        report.recorded +=
                            usize::from(self.store.record_invoice_transfer(&observed).await?);
                    }
                }
            }
        }
        if report.recorded > 0 {
            self.fault(armed, PayinFault::AfterRecordBeforeCursor);
        }
        report.scanned = Some((from, to));
        // Only final blocks are left behind: the others are read again next run.
        let next = to.min(final_head).saturating_add(1).max(from);
        if next != from || cursor.is_none() {
            self.store
                .advance_payin_cursor(&chain.name, cursor, next)
                .await?;
        }
        Ok(())
    }

    /// Native coin payments leave no log: the deposit address's balance at the final head is
    /// compared with what the books say it holds there (recorded, less what confirmed sweeps
    /// mined at or below that block took out), and an increase is recorded as one transfer
    /// keyed by that block (tx hash zero, log index = block number), final at once and
    /// followed for reorgs like any other. Pending native payments are therefore not shown
    /// before finality. While a sweep of the invoice is sent but not finished the address is
    /// skipped: it may have moved coin by an amount the books learn only from its receipt.
    async fn native_balances(
        &self,
        chain: &Chain,
        rpc: &PayinRpc,
        final_head: u64,
        watched: &[WatchedAddress],
        report: &mut ChainReport,
    ) -> Result<(), DetectError> {
        let native = chain.native.id();
        let mut block_hash = None;
        for watch in watched.iter().filter(|w| &w.asset == native) {
            // Read after the head (see `Store::native_book`), before the balance.
            let book = self.store.native_book(watch.invoice, final_head).await?;
            if book.sweep_in_flight {
                continue;
            }
            let balance =
                Amount::from_base_units(rpc.balance_at(watch.deposit_address, final_head).await?);
            // Coin a sweep took that was never recorded (paid after the last read, before the
            // sweep) is a payment too: it shows here as swept beyond what was recorded.
            let Some(increase) = balance
                .checked_add(book.swept)
                .and_then(|held| held.checked_sub(book.recorded))
                .filter(|a| !a.is_zero())
            else {
                continue;
            };
            let hash = match block_hash {
                Some(hash) => hash,
                None => match rpc.block_hash(final_head).await? {
                    Some(hash) => *block_hash.insert(hash),
                    // A lagging node: the next run checks again.
                    None => return Ok(()),
                },
            };
            let dust = self
                .config
                .dust_below
                .get(native)
                .is_some_and(|min| increase < *min);
            let observed = ObservedTransfer {
                invoice: watch.invoice,
                tx_hash: meshpay_domain::B256::ZERO,
                log_index: final_head,
                token: Address::ZERO,
                asset: Some(native.clone()),
                amount: increase,
                block_number: final_head,
                block_hash: hash,
                dust,
            };
            report.recorded += usize::from(self.store.record_invoice_transfer(&observed).await?);
        }
        Ok(())
    }

    async fn follow(
        &self,
        chain: &Chain,
        rpc: &PayinRpc,
        head: u64,
        final_head: u64,
        watched: &[WatchedAddress],
        report: &mut ChainReport,
    ) -> Result<(), DetectError> {
        let live = self.store.live_invoice_transfers(&chain.name).await?;
        let mut hashes = BTreeMap::new();
        for transfer in live
            .iter()
            .filter(|t| t.block_number.saturating_add(REORG_WINDOW_BLOCKS) >= head)
        {
            let canonical = match hashes.get(&transfer.block_number) {
                Some(hash) => *hash,
                None => {
                    let hash = rpc.block_hash(transfer.block_number).await?;
                    hashes.insert(transfer.block_number, hash);
                    hash
                }
            };
            // A node without the block (lagging) proves nothing: wait for the next run.
            let Some(canonical) = canonical else { continue };
            if canonical == transfer.block_hash {
                if transfer.status == PaymentSeen::Seen && transfer.block_number <= final_head {
                    self.store
                        .mark_invoice_transfer(
                            transfer.invoice,
                            transfer.tx_hash,
                            transfer.log_index,
                            PaymentSeen::Final,
                        )
                        .await?;
                    report.finalized += 1;
                }
                continue;
            }
            self.store
                .mark_invoice_transfer(
                    transfer.invoice,
                    transfer.tx_hash,
                    transfer.log_index,
                    PaymentSeen::Removed,
                )
                .await?;
            report.removed += 1;
            self.store
                .rewind_payin_cursor(&chain.name, transfer.block_number)
                .await?;
            // Mined again elsewhere: recorded at its new place (and final in its own time).
            if let Some(logs) = rpc.receipt_transfers(transfer.tx_hash).await? {
                let watch = watched.iter().find(|w| w.invoice == transfer.invoice);
                for log in logs.iter() {
                    if let Some(watch) = watch.filter(|w| w.deposit_address == log.to) {
                        let observed = self.observed(chain, watch, log);
                        report.recorded +=
                            usize::from(self.store.record_invoice_transfer(&observed).await?);
                    }
                }
            }
        }
        Ok(())
    }

    fn observed(
        &self,
        chain: &Chain,
        watch: &WatchedAddress,
        log: &TransferLog,
    ) -> ObservedTransfer {
        let asset = chain
            .tokens
            .iter()
            .find(|t| {
                t.kind()
                    == AssetKind::Erc20 {
                        contract: log.token,
                    }
            })
            .map(|t| t.id().clone());
        let amount = Amount::from_base_units(log.amount);
        let dust = asset
            .as_ref()
            .and_then(|a| self.config.dust_below.get(a))
            .is_some_and(|min| amount < *min);
        ObservedTransfer {
            invoice: watch.invoice,
            tx_hash: log.tx_hash,
            log_index: log.log_index,
            token: log.token,
            asset,
            amount,
            block_number: log.block_number,
            block_hash: log.block_hash,
            dust,
        }
    }
}
