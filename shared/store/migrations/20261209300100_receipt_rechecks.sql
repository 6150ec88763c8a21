-- The books re-check every payment that ended on a receipt (settled, cancelled by its mined
-- replacement, failed with a fee charged) and every finished sweep, not only settled payments:
-- a reorg can move any of their transactions to another block.
CREATE INDEX payments_ended_on_receipt ON payments (chain, block_number)
    WHERE block_hash IS NOT NULL AND status IN ('settled', 'cancelled', 'failed');
CREATE INDEX sweeps_finished_block ON sweeps (chain, block_number)
    WHERE block_hash IS NOT NULL AND status IN ('confirmed', 'failed');

-- Sweeps re-checked against the chain, as `settled_rechecks` for payments.
CREATE TABLE sweep_rechecks (
    sweep_id     uuid PRIMARY KEY REFERENCES sweeps (id),
    checked_at   timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('canonical', 'reorged', 'inconclusive'))
);

-- Append-only history of recorded inclusions that followed the chain: a payment's or a sweep's
-- transaction found again, after a reorg, in another canonical final block. The status does
-- not change (so no `payment_events`/`sweep_events` row, which are one per status change);
-- this row is the event.
CREATE TABLE inclusion_moves (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id       uuid REFERENCES payments (id),
    sweep_id         uuid REFERENCES sweeps (id),
    status           text NOT NULL,
    tx_hash          text NOT NULL,
    from_block       bigint NOT NULL,
    from_block_hash  text NOT NULL,
    to_block         bigint NOT NULL,
    to_block_hash    text NOT NULL,
    -- Base units of the native coin: what the books held, what the new block charged (the
    -- difference is the `fee_adjustment` posting, if any; `payments.network_fee_actual`, the
    -- merchant's charge, and `sweeps.network_fee` keep what was charged when it ended).
    fee_posted       numeric(78,0) NOT NULL,
    fee_charged      numeric(78,0) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((payment_id IS NULL) <> (sweep_id IS NULL))
);
CREATE UNIQUE INDEX inclusion_moves_payment ON inclusion_moves (payment_id, to_block_hash)
    WHERE payment_id IS NOT NULL;
CREATE UNIQUE INDEX inclusion_moves_sweep ON inclusion_moves (sweep_id, to_block_hash)
    WHERE sweep_id IS NOT NULL;
CREATE TRIGGER inclusion_moves_append_only BEFORE UPDATE OR DELETE ON inclusion_moves
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();

-- A cancelled or failed payment's mined transaction whose block left the chain; a finished
-- sweep's.
INSERT INTO reconcile_discrepancy_kinds (kind) VALUES ('receipt_reorged'), ('sweep_reorged');
