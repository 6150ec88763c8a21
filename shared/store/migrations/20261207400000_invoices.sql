-- Pay-ins: invoices paid to their own deposit address (the CREATE2 address of a forwarder clone
-- of the chain's DepositFactory, computed from `salt` when the invoice is created).
CREATE TABLE invoices (
    -- UUIDv4, not v7: the id is the pay page's only secret, so all 122 bits are random.
    id                uuid PRIMARY KEY,
    merchant_id       uuid NOT NULL REFERENCES merchants (id),
    status            text NOT NULL CHECK (status IN ('open', 'pending', 'paid', 'underpaid',
                          'overpaid', 'expired', 'paid_late', 'cancelled')),
    -- Optimistic concurrency: every status change is `UPDATE ... WHERE version = expected`.
    version           bigint NOT NULL CHECK (version >= 1),
    chain             text NOT NULL,
    asset             text NOT NULL,
    amount            numeric(78,0) NOT NULL CHECK (amount > 0),
    -- Sum of the recognized payments seen on the canonical chain (final or not) and of the final
    -- ones: what the status is derived from.
    amount_received   numeric(78,0) NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
    amount_final      numeric(78,0) NOT NULL DEFAULT 0 CHECK (amount_final >= 0),
    service_fee_bps   integer NOT NULL CHECK (service_fee_bps BETWEEN 0 AND 10000),
    factory           text NOT NULL,
    salt              bytea NOT NULL CHECK (length(salt) = 32),
    deposit_address   text NOT NULL,
    reference         text CHECK (length(reference) <= 255),
    metadata          jsonb,
    idempotency_key   text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256    bytea NOT NULL CHECK (length(request_sha256) = 32),
    -- A payment arrived after expires_at (credited all the same, and flagged).
    late              boolean NOT NULL DEFAULT false,
    -- A transfer of this invoice was recorded or changed since its status was last derived: set
    -- in the same statement as the transfer change, cleared by the refresh under the row lock.
    refresh_due       boolean NOT NULL DEFAULT false,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, idempotency_key),
    UNIQUE (chain, deposit_address)
);
-- Newest first per merchant (keyset on created_at, id: ids are random).
CREATE INDEX invoices_merchant_created ON invoices (merchant_id, created_at DESC, id DESC);
-- Detection reads the addresses still able to receive a payment, per chain.
CREATE INDEX invoices_watch ON invoices (chain, deposit_address)
    WHERE status NOT IN ('cancelled');
CREATE INDEX invoices_refresh_due ON invoices (chain) WHERE refresh_due;

-- Append-only history: one row per status change, keyed by the version it produced.
CREATE TABLE invoice_events (
    invoice_id   uuid NOT NULL REFERENCES invoices (id),
    version      bigint NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, version)
);
CREATE TRIGGER invoice_events_append_only BEFORE UPDATE OR DELETE ON invoice_events
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();

-- Every transfer seen to a deposit address, one row per (tx hash, log index). `asset` is NULL
-- for a token the chain's configuration does not know (wrong token: never credited, swept only
-- by an operator). A transfer whose block left the canonical chain is `removed`, never deleted.
CREATE TABLE invoice_payments (
    invoice_id    uuid NOT NULL REFERENCES invoices (id),
    tx_hash       text NOT NULL,
    log_index     bigint NOT NULL CHECK (log_index >= 0),
    token         text NOT NULL,
    asset         text,
    amount        numeric(78,0) NOT NULL CHECK (amount > 0),
    block_number  bigint NOT NULL,
    block_hash    text NOT NULL,
    status        text NOT NULL CHECK (status IN ('seen', 'final', 'removed')),
    -- Below the configured dust minimum: shown, never credited.
    dust          boolean NOT NULL DEFAULT false,
    late          boolean NOT NULL DEFAULT false,
    seen_at       timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, tx_hash, log_index)
);

-- Detection's progress per chain: the next block whose logs are read.
CREATE TABLE payin_cursors (
    chain       text PRIMARY KEY,
    next_block  bigint NOT NULL CHECK (next_block >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Ledger: `invoice_credit` moves a final payment from the asset's `payins` account (the outside
-- world, which goes negative) to the merchant's available balance minus the service fee;
-- `invoice_reversal` is its exact opposite when a reorg removes the payment. Both are unique per
-- (kind, reference = invoice/tx hash/log index).
--
-- The kind lists are extended, not restated, so migrations adding other kinds keep theirs
-- whatever order they run in.
DO $$
DECLARE
    def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'ledger_transactions_kind_check';
    ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
    EXECUTE format('ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check '
        'CHECK ((%s) OR kind IN (''invoice_credit'', ''invoice_reversal''))',
        substring(def FROM '^CHECK \((.*)\)$'));

    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
     WHERE conname = 'ledger_accounts_kind_check';
    ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
    EXECUTE format('ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check '
        'CHECK ((%s) OR kind = ''payins'')',
        substring(def FROM '^CHECK \((.*)\)$'));
END $$;
