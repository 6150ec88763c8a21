-- Sweeps: a hot wallet calls the chain's DepositFactory `sweep(salts, tokens)`, which deploys
-- the missing forwarders and flushes them to the factory's treasury. A sweep is a wallet
-- transaction that belongs to no payment: it takes a nonce from the wallet's counter like a
-- payment (so every allocated nonce has a payment's attempt, a gap, a gap fill or a sweep) and
-- has its own small state machine: planned (nonce and every signed field stored) -> broadcast
-- (an attempt stored) -> confirmed (mined in a final block, posted) | failed (mined and
-- reverted in a final block: its gas posted, its invoices due again).
CREATE TABLE sweeps (
    id                        uuid PRIMARY KEY,
    chain                     text NOT NULL,
    -- invoices: the `sweep` timer's batch of final, recognized payments; operator: a token the
    -- chain's configuration does not know, swept by `meshpay admin invoices sweep`.
    kind                      text NOT NULL CHECK (kind IN ('invoices', 'operator')),
    status                    text NOT NULL
                                  CHECK (status IN ('planned', 'broadcast', 'confirmed', 'failed')),
    -- Optimistic concurrency: every status change is `UPDATE ... WHERE version = expected`.
    version                   bigint NOT NULL CHECK (version >= 1),
    wallet                    text NOT NULL,
    nonce                     bigint NOT NULL CHECK (nonce >= 0),
    factory                   text NOT NULL,
    treasury                  text NOT NULL,
    -- The call signed: `sweep(salts, tokens)` on the factory, no value; `tokens` as listed in
    -- it (the native coin is always flushed).
    input                     bytea NOT NULL,
    tokens                    text[] NOT NULL,
    gas_limit                 bigint NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas > 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL
                                  CHECK (max_priority_fee_per_gas BETWEEN 0 AND max_fee_per_gas),
    -- The mined attempt, once final.
    tx_hash                   text,
    block_number              bigint,
    block_hash                text,
    gas_used                  bigint,
    network_fee               numeric(78,0),
    status_reason             text,
    -- The books found every swept deposit address empty at the sweep's block.
    deposits_verified_at      timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain, wallet, nonce),
    FOREIGN KEY (chain, wallet) REFERENCES wallet_nonces (chain, address)
);
-- One sweep in flight per chain: planning is serialized by this index (a second planner's
-- insert fails and rolls its nonce back), and a batch waits for the one before it.
CREATE UNIQUE INDEX sweeps_one_in_flight ON sweeps (chain) WHERE status IN ('planned', 'broadcast');

-- The final invoice payments a sweep covers. A payment is due while no sweep that is not
-- `failed` covers it.
CREATE TABLE sweep_payments (
    sweep_id    uuid NOT NULL REFERENCES sweeps (id),
    invoice_id  uuid NOT NULL,
    tx_hash     text NOT NULL,
    log_index   bigint NOT NULL,
    PRIMARY KEY (sweep_id, invoice_id, tx_hash, log_index),
    FOREIGN KEY (invoice_id, tx_hash, log_index)
        REFERENCES invoice_payments (invoice_id, tx_hash, log_index)
);
CREATE INDEX sweep_payments_payment ON sweep_payments (invoice_id, tx_hash, log_index);

-- Every signed transaction of a sweep (a replacement on the same nonce is another row), as
-- payment_transactions are for payments.
CREATE TABLE sweep_transactions (
    id                        uuid PRIMARY KEY,
    sweep_id                  uuid NOT NULL REFERENCES sweeps (id),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas > 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL,
    tx_hash                   text NOT NULL UNIQUE,
    raw_tx                    bytea NOT NULL,
    -- signed/sent: live (one per sweep); replaced: a re-priced one took its place (may still
    -- be mined until the nonce is used).
    status                    text NOT NULL CHECK (status IN ('signed', 'sent', 'replaced')),
    send_count                integer NOT NULL DEFAULT 0 CHECK (send_count >= 0),
    last_error                text,
    send_started_at           timestamptz,
    exposed_at                timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    last_sent_at              timestamptz
);
CREATE UNIQUE INDEX sweep_transactions_live ON sweep_transactions (sweep_id)
    WHERE status IN ('signed', 'sent');

-- Append-only history: one row per status change, keyed by the version it produced.
CREATE TABLE sweep_events (
    sweep_id     uuid NOT NULL REFERENCES sweeps (id),
    version      bigint NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sweep_id, version)
);
CREATE TRIGGER sweep_events_append_only BEFORE UPDATE OR DELETE ON sweep_events
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();

-- The books' nonce walk finds a sweep's transaction like a payment's or a gap fill's.
ALTER TABLE hot_wallet_nonces ADD COLUMN sweep_id uuid REFERENCES sweeps (id);
ALTER TABLE hot_wallet_nonces DROP CONSTRAINT hot_wallet_nonces_source_check;
ALTER TABLE hot_wallet_nonces ADD CONSTRAINT hot_wallet_nonces_source_check
    CHECK (source IN ('payment', 'gap_fill', 'unknown', 'sweep'));
ALTER TABLE hot_wallet_nonces ADD CONSTRAINT hot_wallet_nonces_sweep_check
    CHECK ((source = 'sweep') = (sweep_id IS NOT NULL));



-- Ledger: `sweep` (one per sweep, reference `sweep:<id>`) moves what the sweep brought to the
-- treasury from the asset's `payins` account to `hot_wallets`, and its gas from `hot_wallets`
-- to `network_fees`. A token the configuration does not know goes from `payins` to
-- `unrecognized` instead (never to a merchant, outside the hot wallets' audited books), under
-- the asset `<chain>:T<first 15 hex digits of its contract>`.
DO $$
DECLARE
    def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'ledger_transactions_kind_check';
    ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
    EXECUTE format('ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check '
        'CHECK ((%s) OR kind = ''sweep'')',
        substring(def FROM '^CHECK \((.*)\)$'));

    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'ledger_accounts_kind_check';
    ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
    EXECUTE format('ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check '
        'CHECK ((%s) OR kind = ''unrecognized'')',
        substring(def FROM '^CHECK \((.*)\)$'));

    -- A confirmed sweep whose deposit address still held a swept asset at the sweep's block.
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'reconcile_discrepancies_kind_check';
    ALTER TABLE reconcile_discrepancies DROP CONSTRAINT reconcile_discrepancies_kind_check;
    EXECUTE format('ALTER TABLE reconcile_discrepancies ADD CONSTRAINT reconcile_discrepancies_kind_check '
        'CHECK ((%s) OR kind = ''sweep_not_empty'')',
        substring(def FROM '^CHECK \((.*)\)$'));
END $$;
