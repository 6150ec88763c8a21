-- Confirm, settle and reconcile steps: the confirm polling lease and what the chain was last
-- seen to say per payment, chain webhook replay dedupe, and reconcile bookkeeping.

-- One row per payment that the confirm step has looked at.
--
-- Polling lease: confirm messages re-enqueue themselves ("not deep enough yet, look again"), so
-- every extra message (webhook hint, reconcile nudge, duplicate delivery) could otherwise start
-- a second self-perpetuating chain of messages. A message may only poll while it holds the
-- lease: `poller` is the chain's token, `poller_seq` the sequence number its next message must
-- carry (a duplicate delivery of an older message is refused), `lease_until` when an abandoned
-- chain (its process died) may be taken over.
CREATE TABLE payment_confirmations (
    payment_id        uuid PRIMARY KEY REFERENCES payments (id),
    poller            uuid,
    poller_seq        integer NOT NULL DEFAULT 0 CHECK (poller_seq >= 0),
    lease_until       timestamptz,
    chain_started_at  timestamptz,
    total_checks      bigint NOT NULL DEFAULT 0 CHECK (total_checks >= 0),
    last_checked_at   timestamptz,
    -- What the last check concluded, and why (kept when the chain ends: the payment's reason).
    last_outcome      text CHECK (last_outcome IN ('not_mined', 'resent', 'not_final', 'confirmed',
                          'reverted', 'needs_review', 'stalled', 'rpc_error', 'reorged')),
    last_detail       text CHECK (length(last_detail) <= 1000),
    -- The inclusion last observed (while still waiting for depth): a later check that finds the
    -- transaction in another block, or not at all, has seen a reorg.
    tx_hash           text,
    block_number      bigint CHECK (block_number >= 0),
    block_hash        text,
    reorgs_seen       integer NOT NULL DEFAULT 0 CHECK (reorgs_seen >= 0),
    resends           integer NOT NULL DEFAULT 0 CHECK (resends >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((poller IS NULL) = (lease_until IS NULL))
);
CREATE INDEX payment_confirmations_review ON payment_confirmations (payment_id)
    WHERE last_outcome = 'needs_review';

-- Chain webhooks already acted on (replay dedupe): the provider's event id (`id` of an Alchemy
-- payload) or the Standard Webhooks `webhook-id`. Pruned by the reconcile timer.
CREATE TABLE chain_webhook_receipts (
    source       text NOT NULL CHECK (source IN ('alchemy', 'standard')),
    webhook_id   text NOT NULL CHECK (length(webhook_id) BETWEEN 1 AND 255),
    received_at  timestamptz NOT NULL DEFAULT now(),
    tx_hashes    integer NOT NULL CHECK (tx_hashes >= 0),
    enqueued     integer NOT NULL DEFAULT 0 CHECK (enqueued >= 0),
    PRIMARY KEY (source, webhook_id)
);
CREATE INDEX chain_webhook_receipts_received ON chain_webhook_receipts (received_at);

-- Reconcile: when a stuck payment was last nudged (a message re-enqueued for a step), so a step
-- that is down is not flooded with one more message per payment on every run.
CREATE TABLE reconcile_nudges (
    payment_id      uuid NOT NULL REFERENCES payments (id),
    step            text NOT NULL CHECK (step IN ('broadcast', 'confirm', 'settle')),
    nudges          integer NOT NULL DEFAULT 1 CHECK (nudges >= 1),
    last_nudged_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, step)
);

-- One row per reconcile run: what it did and every ledger discrepancy it found (flags for an
-- operator; the run itself never "fixes" the ledger).
CREATE TABLE reconcile_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    report       jsonb NOT NULL,
    violations   text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX reconcile_runs_flagged ON reconcile_runs (id) WHERE cardinality(violations) > 0;

-- The reconcile timer's scans: in-flight payments by status and age.
CREATE INDEX payments_in_flight ON payments (status, updated_at)
    WHERE status IN ('authorized', 'broadcast', 'confirmed');
