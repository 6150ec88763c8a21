-- Fee replacement and cancellation after broadcast.
--
-- A payment's transaction can be replaced on the SAME nonce (higher fees, or a 0-value
-- self-transfer that cancels it). The replaced attempt's bytes stay valid and may still be
-- mined until the nonce is used, so it keeps its row with status `replaced` and the confirm step
-- watches it next to the live one: whichever attempt of the nonce is mined decides the payment.
-- Only the newest attempt of a nonce is live (signed/sent), so the live-nonce unique index keeps
-- guarding against two payments on one nonce.
ALTER TABLE payment_transactions DROP CONSTRAINT payment_transactions_status_check;
ALTER TABLE payment_transactions ADD CONSTRAINT payment_transactions_status_check
    CHECK (status IN ('signed', 'sent', 'rejected', 'superseded', 'replaced'));

-- What an attempt does: `transfer` pays the recipient; `cancel` is a 0-value transfer from the
-- hot wallet to itself on the payment's nonce (a merchant's cancellation after broadcast).
ALTER TABLE payment_transactions
    ADD COLUMN purpose text NOT NULL DEFAULT 'transfer' CHECK (purpose IN ('transfer', 'cancel'));

-- New payment statuses: `stalled` (the fee market is above the quoted maximum: the transaction
-- cannot be re-priced within the hold; it leaves when fees allow) and `cancelling` (a
-- cancellation was sent on the payment's nonce; `cancelled` once it is mined, `confirmed` if the
-- original wins the race).
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('authorized', 'broadcast', 'stalled', 'cancelling', 'confirmed', 'settled',
                      'failed', 'expired', 'cancelled'));

-- Why the payment is in its current non-terminal status (`stalled`: "fee market above the
-- quoted maximum"); cleared by the next status change.
ALTER TABLE payments ADD COLUMN status_reason text CHECK (length(status_reason) <= 1000);

-- A confirm check that found the payment's cancellation mined (final) ends with `cancelled`.
ALTER TABLE payment_confirmations DROP CONSTRAINT payment_confirmations_last_outcome_check;
ALTER TABLE payment_confirmations ADD CONSTRAINT payment_confirmations_last_outcome_check
    CHECK (last_outcome IN ('not_mined', 'resent', 'not_final', 'confirmed', 'reverted',
                            'needs_review', 'stalled', 'rpc_error', 'reorged', 'cancelled'));

-- A gap fill re-priced on its nonce (the same bump rule as a payment's transaction) keeps
-- the hashes it replaced: any of them may be the one mined.
ALTER TABLE wallet_gap_fills ADD COLUMN replaced_hashes text[] NOT NULL DEFAULT '{}';

-- The reconcile scans and wallet health read in-flight payments through this index: it covers
-- the new in-flight statuses too.
DROP INDEX payments_in_flight;
CREATE INDEX payments_in_flight ON payments (status, updated_at)
    WHERE status IN ('authorized', 'broadcast', 'stalled', 'cancelling', 'confirmed');
