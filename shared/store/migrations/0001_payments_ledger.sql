-- meshpay: merchants, API keys, quotes, payments (+ events), idempotency keys, double-entry
-- ledger (accounts, transactions, entries, holds) and the transactional outbox.
--
-- Conventions: ids are UUIDv7 (time-ordered); money is NUMERIC(78,0) in base units (U256 fits);
-- assets are 'chain:SYMBOL' text; timestamps are timestamptz. Later steps add files
-- 0002_*.sql, ... and never edit this one once applied anywhere.

CREATE TABLE merchants (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    service_fee_bps  integer NOT NULL CHECK (service_fee_bps BETWEEN 0 AND 10000),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Per-asset limits in base units; a missing row or NULL column means "no limit".
CREATE TABLE merchant_limits (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    asset            text NOT NULL,
    max_per_payment  numeric(78,0) CHECK (max_per_payment >= 0),
    daily_max        numeric(78,0) CHECK (daily_max >= 0),
    PRIMARY KEY (merchant_id, asset)
);

-- Keys are `mp_live_<prefix>_<secret>`; only the prefix (public, for lookup) and SHA-256 of the
-- secret are stored. The secret is 32 random bytes, so a fast hash is enough (no brute force).
CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    prefix           text NOT NULL UNIQUE,
    secret_sha256    bytea NOT NULL CHECK (length(secret_sha256) = 32),
    scopes           text[] NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE quotes (
    id                        uuid PRIMARY KEY,
    merchant_id               uuid NOT NULL REFERENCES merchants (id),
    chain                     text NOT NULL,
    asset                     text NOT NULL,
    amount                    numeric(78,0) NOT NULL CHECK (amount > 0),
    recipient                 text NOT NULL,
    service_fee_bps           integer NOT NULL CHECK (service_fee_bps BETWEEN 0 AND 10000),
    service_fee               numeric(78,0) NOT NULL CHECK (service_fee >= 0),
    network_fee_asset         text NOT NULL,
    network_fee               numeric(78,0) NOT NULL CHECK (network_fee >= 0),
    total_debit               numeric(78,0) NOT NULL CHECK (total_debit >= amount + service_fee),
    gas_limit                 bigint NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas >= 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL CHECK (max_priority_fee_per_gas >= 0),
    created_at                timestamptz NOT NULL DEFAULT now(),
    expires_at                timestamptz NOT NULL,
    used_by_payment           uuid UNIQUE
);

CREATE TABLE payments (
    id                        uuid PRIMARY KEY,
    merchant_id               uuid NOT NULL REFERENCES merchants (id),
    quote_id                  uuid NOT NULL UNIQUE REFERENCES quotes (id),
    status                    text NOT NULL CHECK (status IN ('authorized', 'broadcast',
                                  'confirmed', 'settled', 'failed', 'expired', 'cancelled')),
    -- Optimistic concurrency: every status change is `UPDATE ... WHERE version = expected`.
    version                   bigint NOT NULL CHECK (version >= 1),
    -- Copied from the quote: a payment's terms never change after authorization.
    chain                     text NOT NULL,
    asset                     text NOT NULL,
    amount                    numeric(78,0) NOT NULL CHECK (amount > 0),
    recipient                 text NOT NULL,
    service_fee_bps           integer NOT NULL,
    service_fee               numeric(78,0) NOT NULL,
    network_fee_asset         text NOT NULL,
    network_fee               numeric(78,0) NOT NULL,
    total_debit               numeric(78,0) NOT NULL,
    gas_limit                 bigint NOT NULL,
    max_fee_per_gas           numeric(39,0) NOT NULL,
    max_priority_fee_per_gas  numeric(39,0) NOT NULL,
    reference                 text CHECK (length(reference) <= 255),
    metadata                  jsonb,
    idempotency_key           text NOT NULL,
    -- Filled by the broadcast / confirm steps.
    hot_wallet                text,
    tx_hash                   text,
    nonce                     bigint,
    block_hash                text,
    block_number              bigint,
    failure_reason            text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
-- Newest first by id (UUIDv7 is time-ordered): keyset pagination, with and without status.
CREATE INDEX payments_merchant_id ON payments (merchant_id, id DESC);
CREATE INDEX payments_merchant_status_id ON payments (merchant_id, status, id DESC);
-- Daily limit: sum of today's payments per merchant and asset.
CREATE INDEX payments_merchant_asset_created ON payments (merchant_id, asset, created_at);

-- Append-only history: one row per status change, keyed by the version it produced.
CREATE TABLE payment_events (
    payment_id   uuid NOT NULL REFERENCES payments (id),
    version      bigint NOT NULL,
    event        text NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    reason       text,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, version)
);

-- Idempotency-Key of POST /payments. The row is inserted (in_flight) at the start of the
-- authorizing transaction and completed before its commit, so other sessions only ever see
-- completed rows; a concurrent duplicate blocks on the primary key until the first commits.
CREATE TABLE idempotency_keys (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256   bytea NOT NULL CHECK (length(request_sha256) = 32),
    state            text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    payment_id       uuid,
    response_status  smallint,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (merchant_id, key),
    CHECK ((state = 'completed') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Double-entry ledger. Entries are signed: + raises the account's balance, - lowers it, and the
-- entries of one ledger transaction sum to zero per asset (checked at commit by a trigger).
-- Merchant accounts keep a cached `balance` (locked, updated in the posting transaction,
-- CHECK >= 0 as the last line of defence against overdraft). System accounts (funding, outflow,
-- fees) may go negative and keep no cached balance: they would be hot rows serializing every
-- settlement; their balance is the sum of their entries.
CREATE TABLE ledger_accounts (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('merchant_available', 'merchant_held',
                     'funding', 'outflow', 'service_fees', 'network_fees')),
    merchant_id  uuid REFERENCES merchants (id),
    asset        text NOT NULL,
    balance      numeric(78,0) CHECK (balance >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((merchant_id IS NOT NULL) = (kind LIKE 'merchant\_%')),
    CHECK ((balance IS NOT NULL) = (kind LIKE 'merchant\_%')),
    UNIQUE NULLS NOT DISTINCT (kind, merchant_id, asset),
    UNIQUE (id, asset)
);

CREATE TABLE ledger_transactions (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('fund', 'hold', 'release', 'settle')),
    -- External reference (funding): idempotency by (kind, reference).
    reference   text CHECK (length(reference) BETWEEN 1 AND 255),
    payment_id  uuid REFERENCES payments (id),
    -- What was asked (funding: merchant, asset, amount) to tell a replay from a reused reference.
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ledger_transactions_reference ON ledger_transactions (kind, reference)
    WHERE reference IS NOT NULL;
-- A payment is held, released and settled at most once each (settle is idempotent by payment).
CREATE UNIQUE INDEX ledger_transactions_payment ON ledger_transactions (kind, payment_id)
    WHERE payment_id IS NOT NULL;

CREATE TABLE ledger_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  uuid NOT NULL REFERENCES ledger_transactions (id),
    account_id      uuid NOT NULL,
    asset           text NOT NULL,
    amount          numeric(78,0) NOT NULL CHECK (amount <> 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- An entry's asset is its account's asset.
    FOREIGN KEY (account_id, asset) REFERENCES ledger_accounts (id, asset)
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

-- Funds held for a payment, per asset (a token payment holds the token and the native fee).
CREATE TABLE holds (
    payment_id   uuid NOT NULL REFERENCES payments (id),
    asset        text NOT NULL,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    amount       numeric(78,0) NOT NULL CHECK (amount > 0),
    status       text NOT NULL CHECK (status IN ('held', 'released', 'captured')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (payment_id, asset)
);
CREATE INDEX holds_open ON holds (merchant_id, asset) WHERE status = 'held';

-- Transactional outbox: rows written in the same transaction as the state change they announce
-- (queue messages `queue:<queue-name>`, merchant webhook events `event:<type>`), dispatched
-- later at least once.
CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic          text NOT NULL,
    merchant_id    uuid,
    payment_id     uuid,
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    available_at   timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0,
    dispatched_at  timestamptz,
    last_error     text
);
CREATE INDEX outbox_pending ON outbox (topic, available_at, id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_payment ON outbox (payment_id);

-- Append-only tables: history is never rewritten.
CREATE FUNCTION meshpay_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION meshpay_forbid_change();

-- Double entry, enforced by the database at commit: per ledger transaction and asset, entries
-- sum to zero. Deferred, so a transaction's entries can be inserted one by one.
CREATE FUNCTION meshpay_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT asset INTO unbalanced
      FROM ledger_entries
     WHERE transaction_id = NEW.transaction_id
     GROUP BY asset
    HAVING sum(amount) <> 0
     LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %', NEW.transaction_id, unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION meshpay_check_balanced();
