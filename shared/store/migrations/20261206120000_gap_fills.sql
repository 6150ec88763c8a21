-- A handed-back nonce (wallet_nonce_gaps) that no payment reuses stalls every later nonce of a
-- quiet wallet. Reconcile fills such a stale gap with a 0-value transfer from the wallet to
-- itself at that nonce: one row per fill, holding its signed bytes so it can be re-sent like a
-- payment's attempt. The gap row is removed in the transaction that stores the fill, so the
-- nonce is always accounted for (by a gap, a payment's attempt, or a fill).
CREATE TABLE wallet_gap_fills (
    id                        uuid PRIMARY KEY,
    chain                     text NOT NULL,
    address                   text NOT NULL,
    nonce                     bigint NOT NULL CHECK (nonce >= 0),
    gas_limit                 bigint NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas > 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL
                                  CHECK (max_priority_fee_per_gas BETWEEN 0 AND max_fee_per_gas),
    tx_hash                   text NOT NULL UNIQUE,
    raw_tx                    bytea NOT NULL,
    -- signed: stored, no node has acknowledged it yet; sent: a node accepted it.
    status                    text NOT NULL CHECK (status IN ('signed', 'sent')),
    send_count                integer NOT NULL DEFAULT 0 CHECK (send_count >= 0),
    last_error                text,
    -- Same rule as payment_transactions: the send's start is written before the bytes go out.
    send_started_at           timestamptz,
    exposed_at                timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    last_sent_at              timestamptz,
    UNIQUE (chain, address, nonce),
    FOREIGN KEY (chain, address) REFERENCES wallet_nonces (chain, address)
);
