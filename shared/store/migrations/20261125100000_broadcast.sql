-- Broadcast step: per (chain, hot wallet) nonce counters and the signed transactions of
-- payments (one row per attempt: nonce, fees, raw signed bytes, hash).
--
-- Invariant: a nonce is handed out only in the transaction that also stores the signed
-- transaction using it and moves the payment to `broadcast`. So every nonce between the chain's
-- pending nonce and `next_nonce` has stored bytes that can be re-sent (or sits in
-- wallet_nonce_gaps): the counter can run ahead of the chain, but never over a hole we cannot
-- fill (the drift of OpenZeppelin relayer #818, where the counter moved before signing).

CREATE TABLE wallet_nonces (
    chain        text NOT NULL,
    address      text NOT NULL,                                -- EIP-55
    next_nonce   bigint NOT NULL CHECK (next_nonce >= 0),
    -- The chain's pending nonce as last observed when allocating: a floor for next_nonce;
    -- next_nonce - chain_nonce approximates the transactions in flight.
    chain_nonce  bigint NOT NULL CHECK (chain_nonce >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, address)
);

-- Nonces below next_nonce handed back by failed payments whose transaction no node accepted.
-- The next allocation on the wallet reuses the lowest one (a hole would stall every later
-- nonce of the wallet); those below the chain's pending nonce were consumed and are discarded.
CREATE TABLE wallet_nonce_gaps (
    chain        text NOT NULL,
    address      text NOT NULL,
    nonce        bigint NOT NULL CHECK (nonce >= 0),
    released_by  uuid REFERENCES payments (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, address, nonce),
    FOREIGN KEY (chain, address) REFERENCES wallet_nonces (chain, address)
);

-- Status of an attempt:
--   signed      stored, not yet acknowledged by a node (the process may have died before send)
--   sent        a node accepted it ("already known" and "nonce too low" with our hash known too)
--   rejected    a node refused it for good and the payment failed; its nonce was handed back
--   superseded  its nonce was consumed by another transaction; a later attempt replaces it
CREATE TABLE payment_transactions (
    id                        uuid PRIMARY KEY,
    payment_id                uuid NOT NULL REFERENCES payments (id),
    attempt                   integer NOT NULL CHECK (attempt >= 1),
    chain                     text NOT NULL,
    chain_id                  bigint NOT NULL CHECK (chain_id > 0),
    from_address              text NOT NULL,
    nonce                     bigint NOT NULL CHECK (nonce >= 0),
    -- The recipient (native transfer) or the token contract (ERC-20 `transfer`).
    to_address                text NOT NULL,
    value                     numeric(78,0) NOT NULL CHECK (value >= 0),
    gas_limit                 bigint NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas > 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL
                                  CHECK (max_priority_fee_per_gas BETWEEN 0 AND max_fee_per_gas),
    tx_hash                   text NOT NULL UNIQUE,
    raw_tx                    bytea NOT NULL,
    status                    text NOT NULL
                                  CHECK (status IN ('signed', 'sent', 'rejected', 'superseded')),
    send_count                integer NOT NULL DEFAULT 0 CHECK (send_count >= 0),
    last_error                text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    first_sent_at             timestamptz,
    last_sent_at              timestamptz,
    UNIQUE (payment_id, attempt),
    FOREIGN KEY (chain, from_address) REFERENCES wallet_nonces (chain, address)
);
-- Two payments never share a live nonce of a wallet (the database's own double-spend guard).
CREATE UNIQUE INDEX payment_transactions_live_nonce
    ON payment_transactions (chain, from_address, nonce)
    WHERE status IN ('signed', 'sent');
CREATE INDEX payment_transactions_payment ON payment_transactions (payment_id, attempt);
