-- The network fee a payment's transaction actually cost: receipt gasUsed × effectiveGasPrice,
-- native-asset base units. Held at its maximum (`network_fee`, gas_limit × max_fee_per_gas) at
-- authorization; recorded when the payment settles, or fails after its transaction was mined
-- (reverted: the gas was spent). Only this much is posted to the network-fee account; the rest
-- of the hold is released to the merchant.
--
-- NULL: nothing was mined (cancelled, failed before broadcast / refused by the node), the
-- payment is still in flight, or it settled before this column existed (then the full quoted
-- `network_fee` was captured, as its ledger entries show).
ALTER TABLE payments ADD COLUMN network_fee_actual numeric(78,0);
-- Never more than what was held: a dearer chain fee is flagged for review, never taken.
ALTER TABLE payments ADD CONSTRAINT payments_network_fee_actual_within_hold
    CHECK (network_fee_actual >= 0 AND network_fee_actual <= network_fee);

-- `network_fee`: a failed payment's mined transaction paid from its hold (held → network-fee
-- account); the rest of that hold is a `release`. A settlement is `settle` plus, when the chain
-- charged less than the held maximum, a `release` of the unused fee. The unique index on
-- (kind, payment_id) still allows each kind at most once per payment.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ('fund', 'hold', 'release', 'settle', 'network_fee'));
