-- A nonce handed out to a payment whose transaction is not signed yet. The broadcast step
-- allocates the nonce and writes this row in one short transaction (the wallet row is locked
-- only for the counter bump), signs with no row lock held, then stores the signed attempt and
-- deletes this row in another transaction. The row holds every field of the transaction to
-- sign, so a later delivery signs exactly the same transaction on the same nonce.
--
-- Invariant (extends 20261125100000_broadcast.sql): every nonce between the chain's pending
-- nonce and next_nonce has stored signed bytes, a gap row, or a reservation. A reservation
-- leaves by its payment's attempt being stored, or by being handed back (a gap, or the counter
-- rewound) when signing fails for good or the payment left `authorized` without one.
CREATE TABLE wallet_nonce_reservations (
    id                        uuid PRIMARY KEY,
    payment_id                uuid NOT NULL UNIQUE REFERENCES payments (id),
    chain                     text NOT NULL,
    chain_id                  bigint NOT NULL CHECK (chain_id > 0),
    address                   text NOT NULL,
    nonce                     bigint NOT NULL CHECK (nonce >= 0),
    to_address                text NOT NULL,
    value                     numeric(78,0) NOT NULL CHECK (value >= 0),
    input                     bytea NOT NULL,
    gas_limit                 bigint NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas           numeric(39,0) NOT NULL CHECK (max_fee_per_gas > 0),
    max_priority_fee_per_gas  numeric(39,0) NOT NULL
                                  CHECK (max_priority_fee_per_gas BETWEEN 0 AND max_fee_per_gas),
    -- The fee estimate was clamped to the chain's cap (kept for the broadcast event).
    fee_capped                boolean NOT NULL,
    -- How the nonce was chosen: counter, chain_floor or gap.
    nonce_source              text NOT NULL CHECK (nonce_source IN ('counter', 'chain_floor', 'gap')),
    created_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain, address, nonce),
    FOREIGN KEY (chain, address) REFERENCES wallet_nonces (chain, address)
);
