-- Detection asked for by a chain webhook (an address-activity hint naming a deposit address).
-- One row per chain coalesces a flood of hints into one queued run: a hint enqueues a message
-- only when no request is pending, i.e. when every request so far is covered by a run that
-- started after it and completed. A lost message leaves the request pending until the next
-- timer run completes, which covers it, so nothing waits on a message that never comes.
CREATE TABLE payin_detect_requests (
    chain              text PRIMARY KEY,
    -- The newest request that enqueued a message.
    requested_at       timestamptz NOT NULL,
    -- The newest hint (coalesced or not): one newer than a completed run's start asks for
    -- another run.
    hinted_at          timestamptz NOT NULL,
    -- Start time of the newest run (timer or queued) that completed on this chain.
    covered_through    timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A reversal that could not be posted: the reorg removed a credited payment, but the merchant
-- had already spent the credit (available below the amount to take back). The invoice still
-- moves back; the reversal is parked here for an operator instead of being retried by every
-- run, and is either posted later (`meshpay admin invoices retry-reversal`) or closed with a note
-- (`final_again`: the payment came back, nothing to reverse).
CREATE TABLE invoice_reversal_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id    uuid NOT NULL REFERENCES invoices (id),
    -- The credit's ledger reference (invoice:tx hash:log index).
    reference     text NOT NULL,
    asset         text NOT NULL,
    -- The payment's amount (what the credit was posted for, the fee included).
    amount        numeric(78,0) NOT NULL CHECK (amount > 0),
    -- What the reversal takes from the merchant's available balance (amount less the fee).
    required      numeric(78,0) NOT NULL CHECK (required > 0),
    available     numeric(78,0) NOT NULL CHECK (available >= 0),
    reason        text NOT NULL CHECK (length(reason) <= 2000),
    parked_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolution    text CHECK (resolution IN ('reversed', 'closed', 'final_again')),
    note          text CHECK (length(note) BETWEEN 1 AND 2000),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE UNIQUE INDEX invoice_reversal_reviews_open ON invoice_reversal_reviews (reference)
    WHERE resolved_at IS NULL;
CREATE INDEX invoice_reversal_reviews_invoice ON invoice_reversal_reviews (invoice_id);
