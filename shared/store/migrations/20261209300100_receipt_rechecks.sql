-- The books re-check every payment that ended on a receipt (settled, cancelled by its mined
-- replacement, failed with a fee charged), not only settled ones: a reorg can move any of
-- their transactions to another block.
CREATE INDEX payments_ended_on_receipt ON payments (chain, block_number)
    WHERE block_hash IS NOT NULL AND status IN ('settled', 'cancelled', 'failed');

-- Append-only history of recorded inclusions that followed the chain: a payment's transaction
-- found again, after a reorg, in another canonical final block. The payment's status does not
-- change (so no `payment_events` row, which is one per status change); this is its event.
CREATE TABLE payment_inclusion_moves (
    payment_id       uuid NOT NULL REFERENCES payments (id),
    status           text NOT NULL,
    tx_hash          text NOT NULL,
    from_block       bigint NOT NULL,
    from_block_hash  text NOT NULL,
    to_block         bigint NOT NULL,
    to_block_hash    text NOT NULL,
    -- Base units of the fee asset: what the books held for the payment, what the new block
    -- charged (the difference is the `fee_adjustment` posting, if any).
    fee_posted       numeric(78,0) NOT NULL,
    fee_charged      numeric(78,0) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, to_block_hash)
);
CREATE TRIGGER payment_inclusion_moves_append_only BEFORE UPDATE OR DELETE ON payment_inclusion_moves
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();

-- A cancelled or failed payment's mined transaction whose block left the chain.
INSERT INTO reconcile_discrepancy_kinds (kind) VALUES ('receipt_reorged');
