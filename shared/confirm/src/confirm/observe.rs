//! One look at the chain: the receipt and the head, or (not mined) whether the node knows the
//! transaction, and the re-send of its stored bytes when it does not.

use meshpay_chain::rpc::{SendClass, classify_send};
use meshpay_store::confirmations::{CheckOutcome, CheckRecord, Inclusion};

use super::{Observation, Target, pending};
use crate::receipt::verify_receipt;
use crate::{ConfirmError, Pipeline};

impl Pipeline {
    /// One look at the chain.
    pub(super) async fn observe(
        &self,
        target: &Target<'_>,
        last_seen: Option<Inclusion>,
        resent: &mut bool,
    ) -> Result<Observation, ConfirmError> {
        for earlier in &target.earlier {
            match target.rpc.receipt(earlier.tx_hash).await {
                Ok(None) => {}
                Ok(Some(mined)) => {
                    return Ok(Observation::Review(format!(
                        "an earlier transaction of this payment (attempt {}, nonce {}, {}) is \
                         mined in block {} while attempt {} (nonce {}, {}) is the live one; \
                         nothing is re-sent until an operator decides",
                        earlier.attempt,
                        earlier.nonce,
                        earlier.tx_hash,
                        mined.block_number,
                        target.attempt.attempt,
                        target.attempt.nonce,
                        target.attempt.tx_hash
                    )));
                }
                Err(failure) => {
                    return Ok(pending(
                        CheckOutcome::RpcError,
                        failure.to_string(),
                        last_seen,
                    ));
                }
            }
        }
        // The live attempt first, then the ones it replaced on the same nonce.
        let mut found = None;
        for candidate in std::iter::once(&target.attempt).chain(&target.rivals) {
            match target.rpc.receipt(candidate.tx_hash).await {
                Ok(None) => {}
                Ok(Some(receipt)) => {
                    found = Some((candidate, receipt));
                    break;
                }
                Err(failure) => {
                    return Ok(pending(
                        CheckOutcome::RpcError,
                        failure.to_string(),
                        last_seen,
                    ));
                }
            }
        }
        let Some((mined, receipt)) = found else {
            return self.not_mined(target, last_seen.is_some(), resent).await;
        };
        let hash = mined.tx_hash;
        let seen = Inclusion {
            tx_hash: hash,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
        };
        let moved = last_seen.is_some_and(|s| s.block_hash != receipt.block_hash);
        if moved {
            tracing::warn!(
                payment = %target.attempt.payment_id, tx_hash = %hash,
                block = receipt.block_number, "transaction is now in another block (reorg)"
            );
        }
        let head = match target.rpc.head(target.policy.use_finalized).await {
            Ok(head) => head,
            Err(failure) => {
                let mut observation =
                    pending(CheckOutcome::RpcError, failure.to_string(), Some(seen));
                if let Observation::Pending { record, .. } = &mut observation {
                    record.reorg_seen = moved;
                }
                return Ok(observation);
            }
        };
        let depth = target.policy.depth(receipt.block_number, head);
        if !depth.is_final() {
            let detail = format!("mined in block {}: {depth}", receipt.block_number);
            let mut observation = pending(CheckOutcome::NotFinal, detail, Some(seen));
            if let Observation::Pending { record, .. } = &mut observation {
                record.reorg_seen = moved;
            }
            return Ok(observation);
        }
        // A cancellation's receipt is judged by the decision (it only spends gas).
        let verdict = verify_receipt(&target.expected, &receipt);
        Ok(Observation::Final {
            mined: Box::new(mined.clone()),
            receipt,
            verdict,
        })
    }

    /// No receipt: pending in the pool, or dropped (never arrived, evicted, or its block left
    /// the chain), in which case the stored bytes are sent again, once per invocation.
    async fn not_mined(
        &self,
        target: &Target<'_>,
        was_mined: bool,
        resent: &mut bool,
    ) -> Result<Observation, ConfirmError> {
        let attempt = &target.attempt;
        if was_mined {
            tracing::warn!(
                payment = %attempt.payment_id, tx_hash = %attempt.tx_hash,
                "transaction left the chain (reorg)"
            );
        }
        let with_reorg = |mut observation: Observation| {
            if let Observation::Pending { record, .. } = &mut observation {
                record.reorg_seen = was_mined;
            }
            observation
        };
        let known = match target.rpc.transaction_known(attempt.tx_hash).await {
            Ok(known) => known,
            Err(failure) => {
                return Ok(with_reorg(pending(
                    CheckOutcome::RpcError,
                    failure.to_string(),
                    None,
                )));
            }
        };
        if known || *resent {
            let detail = if known {
                "pending in the node's pool"
            } else {
                "re-sent; not seen yet"
            };
            return Ok(with_reorg(pending(
                CheckOutcome::NotMined,
                detail.into(),
                None,
            )));
        }
        *resent = true;
        Ok(with_reorg(self.resend(target).await?))
    }

    async fn resend(&self, target: &Target<'_>) -> Result<Observation, ConfirmError> {
        let attempt = &target.attempt;
        if !self.store.begin_send(attempt).await? {
            // Replaced or decided meanwhile: whoever changed it carries on (the next check or
            // the status change sees it).
            return Ok(pending(
                CheckOutcome::NotMined,
                "no longer the payment's live transaction".into(),
                None,
            ));
        }
        let failure = match target.rpc.send_raw(&attempt.raw).await {
            Ok(_) => None,
            Err(failure) if classify_send(&failure) == SendClass::AlreadyKnown => None,
            Err(failure) => Some(failure),
        };
        let Some(failure) = failure else {
            self.store.record_send(attempt.id, Ok(())).await?;
            tracing::warn!(
                payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, nonce = attempt.nonce,
                "dropped transaction re-sent from its stored bytes"
            );
            return Ok(pending(
                CheckOutcome::Resent,
                "re-sent the stored transaction".into(),
                None,
            ));
        };
        let error = failure.to_string();
        self.store.record_send(attempt.id, Err(&error)).await?;
        let class = classify_send(&failure);
        // Refused for a reason the broadcast step decides on (nonce taken by another
        // transaction, invalid, underpriced): hand the payment over to it.
        let rebroadcast = class != SendClass::Unknown;
        tracing::warn!(payment = %attempt.payment_id, %class, %error, rebroadcast, "re-send failed");
        Ok(Observation::Pending {
            record: CheckRecord {
                detail: Some(format!("re-send failed ({class}): {error}")),
                ..CheckRecord::new(CheckOutcome::RpcError)
            },
            rebroadcast,
        })
    }
}
