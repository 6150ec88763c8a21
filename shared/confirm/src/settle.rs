//! [`Pipeline::settle`]: one delivery of a `payments-settle` message.
//!
//! The settlement itself is the store's `Settle` transition: in one database transaction the
//! payment's holds are captured (the merchant's held funds leave: the amount to the asset's
//! outflow account, the service fee to its account, and the network fee the chain actually
//! charged, receipt `gasUsed × effectiveGasPrice`, to the network-fee account; the unused rest of
//! the held maximum goes back to the merchant's available balance) and the payment becomes
//! settled. A charged fee above the hold is never posted: the payment is flagged for review.
//! The settlement posting is unique per payment in the database, and the transition is guarded
//! by the payment's version, so a duplicate delivery changes nothing.
//!
//! Before posting, the confirming block is checked to still be canonical (the receipt is read
//! again and must name the recorded block hash): this is the "later check" that catches a reorg
//! after confirmation. The payment goes back to broadcast (`Reorg`) only on positive evidence:
//! the canonical block at the recorded height has another hash. A missing receipt alone (a
//! lagging backend) is retried later. After a reorg a confirm message restarts polling, which
//! re-sends the stored bytes if they were dropped.

use meshpay_domain::{PaymentEvent, PaymentId, PaymentStatus, ResolveError};
use meshpay_store::{StoreError, Transition};
use serde_json::json;

use crate::{ConfirmError, ConfirmMessage, Pipeline};

/// Re-reads after losing a race with another delivery.
const MAX_RACES: usize = 3;

/// What a delivery achieved; each completes the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    Settled {
        payment_id: PaymentId,
    },
    /// An earlier delivery settled it: no change.
    AlreadySettled {
        payment_id: PaymentId,
    },
    /// The confirming block left the chain: back to broadcast; write `next` to
    /// `payments-confirm`.
    Reorged {
        payment_id: PaymentId,
        next: ConfirmMessage,
        detail: String,
    },
    /// The chain charged more network fee than was held (the transaction was priced above the
    /// quote): nothing posted, the payment stays confirmed and is flagged for an operator.
    NeedsReview {
        payment_id: PaymentId,
        detail: String,
    },
    /// Not confirmed (never was, or failed/cancelled): nothing to settle.
    Ignored {
        payment_id: PaymentId,
        status: Option<PaymentStatus>,
    },
}

impl Pipeline {
    /// Handles one delivery of a settle message for `payment_id`.
    pub async fn settle(&self, payment_id: PaymentId) -> Result<SettleOutcome, ConfirmError> {
        for _ in 0..MAX_RACES {
            let Some(payment) = self.store.get_payment_unscoped(payment_id).await? else {
                return Ok(SettleOutcome::Ignored {
                    payment_id,
                    status: None,
                });
            };
            match payment.status {
                PaymentStatus::Confirmed => {}
                PaymentStatus::Settled => return Ok(SettleOutcome::AlreadySettled { payment_id }),
                status => {
                    return Ok(SettleOutcome::Ignored {
                        payment_id,
                        status: Some(status),
                    });
                }
            }
            let (Some(tx_hash), Some(block_hash), Some(block_number)) =
                (payment.tx_hash, payment.block_hash, payment.block_number)
            else {
                return Err(ConfirmError::ConfirmationMissing(payment_id));
            };
            let (_, rpc) = self.chain(payment.chain())?;
            let receipt = rpc.receipt(tx_hash).await?;
            let canonical = receipt.as_ref().is_some_and(|r| r.block_hash == block_hash);
            if !canonical {
                // One node's missing (or moved) receipt is not a reorg: only another block at
                // the recorded height proves the confirming block left the chain.
                match rpc.block_hash(block_number).await? {
                    Some(now) if now != block_hash => {}
                    seen => {
                        let why = match seen {
                            Some(_) => "is still canonical",
                            None => "is not known to the node",
                        };
                        let detail = format!(
                            "receipt of {tx_hash} not in block {block_number} ({block_hash}), \
                             but that block {why}: settle again later"
                        );
                        tracing::warn!(payment = %payment_id, %detail, "no reorg evidence");
                        return Err(ConfirmError::Inconclusive(detail));
                    }
                }
            }
            let old = json!({
                "tx_hash": tx_hash, "block_number": block_number, "block_hash": block_hash,
            });
            let (event, data) = if let Some(r) = receipt.as_ref().filter(|_| canonical) {
                // Gas plus, on OP-stack chains, the receipt's L1 data fee.
                let network_fee = meshpay_domain::Amount::from_base_units(r.network_fee_wei());
                if let Err(ResolveError::NetworkFeeExceedsHold { charged, held }) =
                    payment.charges.settle(network_fee)
                {
                    let detail = format!(
                        "transaction {tx_hash} was charged a network fee of {charged}, more than \
                         the {held} held for it: not settled"
                    );
                    tracing::error!(payment = %payment_id, %detail, "network fee above the hold: flagged for review");
                    self.store.flag_for_review(payment_id, &detail).await?;
                    return Ok(SettleOutcome::NeedsReview { payment_id, detail });
                }
                let mut data = old.clone();
                data["gas_used"] = json!(r.gas_used);
                data["effective_gas_price"] = json!(r.effective_gas_price_wei.to_string());
                data["l1_fee"] = json!(r.l1_fee_wei.to_string());
                data["network_fee"] = json!(network_fee);
                (PaymentEvent::Settle { network_fee }, data)
            } else {
                let now = receipt
                    .as_ref()
                    .map(|r| json!({"block_number": r.block_number, "block_hash": r.block_hash}));
                (
                    PaymentEvent::Reorg,
                    json!({ "confirmed_in": old, "now": now }),
                )
            };
            let mut t = Transition::new(payment_id, payment.version, event);
            t.data = data;
            match self.store.transition_payment(&t).await {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
            if canonical {
                tracing::info!(payment = %payment_id, %tx_hash, block = block_number, "payment settled");
                return Ok(SettleOutcome::Settled { payment_id });
            }
            let detail = match &receipt {
                Some(r) => format!(
                    "confirming block {block_number} ({block_hash}) left the chain; transaction now in block {}",
                    r.block_number
                ),
                None => format!(
                    "confirming block {block_number} ({block_hash}) left the chain; transaction not mined"
                ),
            };
            tracing::warn!(payment = %payment_id, %tx_hash, %detail, "reorg after confirmation: back to broadcast");
            self.store.record_reorg(payment_id, &detail).await?;
            return Ok(SettleOutcome::Reorged {
                payment_id,
                next: ConfirmMessage::new(payment_id),
                detail,
            });
        }
        Err(ConfirmError::Contended)
    }
}
