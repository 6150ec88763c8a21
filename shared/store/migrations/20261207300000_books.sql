-- Books against the chain: per hot wallet, the opening balance and nonce (recorded by the first
-- reconcile run that sees the wallet, at the run's pinned final block), the top-ups an operator
-- recorded, which transaction consumed each nonce since the opening, and the discrepancies a
-- reconcile run found between the books and the chain.
--
-- Ledger: a hot wallet's opening balance and each top-up are postings from the asset's
-- `funding` account (the outside world) to its `hot_wallets` account; a gap fill's network fee
-- goes from `hot_wallets` to `network_fees`. A settled payment whose transaction a reorg moved
-- to another block may have been charged another fee there: the difference is a
-- `fee_adjustment` between `hot_wallets` and `network_fees` (the operator's, not the
-- merchant's), reference `fee_adjustment:<payment uuid>:<block hash>`.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
    CHECK (kind IN ('merchant_available', 'merchant_held', 'funding', 'outflow', 'service_fees',
                    'network_fees', 'hot_wallets'));
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check
    CHECK (kind IN ('fund', 'hold', 'release', 'settle', 'network_fee',
                    'wallet_opening', 'wallet_topup', 'gap_fill_fee', 'fee_adjustment'));

-- One row per hot wallet the books follow. `next_nonce` is the cursor of the nonce walk: every
-- nonce from `opening_nonce` below it has its consuming transaction in hot_wallet_nonces.
CREATE TABLE hot_wallet_books (
    chain               text NOT NULL,
    address             text NOT NULL,                            -- EIP-55
    opening_block       bigint NOT NULL CHECK (opening_block >= 0),
    opening_block_hash  text NOT NULL,
    opening_nonce       bigint NOT NULL CHECK (opening_nonce >= 0),
    next_nonce          bigint NOT NULL CHECK (next_nonce >= opening_nonce),
    -- The last pinned block the books were compared at, and whether they agreed.
    checked_block       bigint,
    checked_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, address)
);

-- Money into a hot wallet that meshpay did not send: the opening balance per asset and every
-- top-up (one per transaction, or per ERC-20 Transfer log of it: `log_index`, -1 for the
-- native value of a transaction).
CREATE TABLE hot_wallet_funding (
    id                     uuid PRIMARY KEY,
    chain                  text NOT NULL,
    address                text NOT NULL,
    asset                  text NOT NULL,
    kind                   text NOT NULL CHECK (kind IN ('opening', 'topup')),
    amount                 numeric(78,0) NOT NULL CHECK (amount >= 0),
    block_number           bigint NOT NULL CHECK (block_number >= 0),
    tx_hash                text,
    log_index              bigint CHECK (log_index >= -1),
    -- NULL for a zero opening balance (the ledger holds no zero entries).
    ledger_transaction_id  uuid REFERENCES ledger_transactions (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'topup') = (tx_hash IS NOT NULL AND log_index IS NOT NULL)),
    FOREIGN KEY (chain, address) REFERENCES hot_wallet_books (chain, address)
);
CREATE UNIQUE INDEX hot_wallet_funding_opening ON hot_wallet_funding (chain, address, asset)
    WHERE kind = 'opening';
CREATE UNIQUE INDEX hot_wallet_funding_topup ON hot_wallet_funding (chain, tx_hash, log_index)
    WHERE kind = 'topup';

-- Which transaction consumed each nonce of a hot wallet since its opening, found at a final
-- block: one of meshpay's (a payment's attempt of any kind, or a gap fill), or one meshpay did
-- not send (`unknown`). The chain-side amounts are kept for every row: they are the books'
-- figures for a payment still in flight, and the report's for an unknown transaction.
CREATE TABLE hot_wallet_nonces (
    chain          text NOT NULL,
    address        text NOT NULL,
    nonce          bigint NOT NULL CHECK (nonce >= 0),
    tx_hash        text NOT NULL,
    block_number   bigint NOT NULL CHECK (block_number >= 0),
    block_hash     text NOT NULL,
    source         text NOT NULL CHECK (source IN ('payment', 'gap_fill', 'unknown')),
    payment_id     uuid REFERENCES payments (id),
    gap_fill_id    uuid REFERENCES wallet_gap_fills (id),
    success        boolean NOT NULL,
    -- Native value sent (0 when the transaction reverted) and the fee charged, in wei.
    value          numeric(78,0) NOT NULL CHECK (value >= 0),
    fee            numeric(78,0) NOT NULL CHECK (fee >= 0),
    to_address     text,
    -- ERC-20 Transfer logs out of the wallet in the receipt: [{"asset"|"contract", "to", "amount"}].
    token_transfers jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- An unknown transaction an operator explained (resolved its discrepancy with a note): the
    -- books count it from then on, at the chain's figures.
    acknowledged_at timestamptz,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, address, nonce),
    CHECK ((source = 'payment') = (payment_id IS NOT NULL)),
    CHECK ((source = 'gap_fill') = (gap_fill_id IS NOT NULL)),
    CHECK (acknowledged_at IS NULL OR source = 'unknown'),
    FOREIGN KEY (chain, address) REFERENCES hot_wallet_books (chain, address)
);
CREATE INDEX hot_wallet_nonces_payment ON hot_wallet_nonces (payment_id) WHERE payment_id IS NOT NULL;

-- What reconcile runs found between the books and the chain. One open row per `dedupe_key`
-- (kind + scope): a later run that finds it again updates the figures and `last_seen`; a run
-- that checks the scope and finds it gone resolves it; an operator resolves it with a note.
CREATE TABLE reconcile_discrepancies (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key       text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('nonce', 'balance', 'unknown_transaction',
                         'settled_reorged', 'settled_not_on_chain')),
    chain            text NOT NULL,
    wallet           text,
    asset            text,
    payment_id       uuid REFERENCES payments (id),
    -- Base units; difference = actual - expected (negative: less on chain than in the books).
    expected         numeric(78,0),
    actual           numeric(78,0),
    difference       numeric(78,0),
    transactions     jsonb NOT NULL DEFAULT '[]'::jsonb,
    detail           text NOT NULL CHECK (length(detail) <= 2000),
    first_run_id     bigint NOT NULL REFERENCES reconcile_runs (id),
    last_run_id      bigint NOT NULL REFERENCES reconcile_runs (id),
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_by_run  bigint REFERENCES reconcile_runs (id),
    resolution_note  text CHECK (length(resolution_note) BETWEEN 1 AND 2000),
    CHECK ((resolved_at IS NULL) = (resolution_note IS NULL))
);
CREATE UNIQUE INDEX reconcile_discrepancies_open ON reconcile_discrepancies (dedupe_key)
    WHERE resolved_at IS NULL;
CREATE INDEX reconcile_discrepancies_seen ON reconcile_discrepancies (last_seen DESC);

-- Settled payments re-checked against the chain: the sample of a run takes the least recently
-- checked ones inside the depth window.
CREATE TABLE settled_rechecks (
    payment_id   uuid PRIMARY KEY REFERENCES payments (id),
    checked_at   timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('canonical', 'reorged', 'inconclusive'))
);
CREATE INDEX payments_settled_block ON payments (chain, block_number) WHERE status = 'settled';

-- Outbox rows already dispatched are pruned after a retention.
CREATE INDEX outbox_dispatched ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
