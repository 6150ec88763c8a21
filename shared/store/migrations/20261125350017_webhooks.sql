-- Merchant webhooks: endpoints, the events fanned out from the outbox (`webhook` topic), one
-- delivery per (event, endpoint) and the log of every delivery attempt.
--
-- Flow: a payment transition writes an outbox row `webhook` in its own transaction; the notify
-- dispatcher turns each such row into one `webhook_events` row (the exact signed body) and one
-- `webhook_deliveries` row per subscribed endpoint, in one transaction that also marks the
-- outbox row dispatched; it then sends due deliveries and records each attempt.

CREATE TABLE webhook_endpoints (
    id                 uuid PRIMARY KEY,
    merchant_id        uuid NOT NULL REFERENCES merchants (id),
    url                text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- NULL: every event type, including types added later.
    event_types        text[] CHECK (event_types IS NULL OR cardinality(event_types) > 0),
    -- The signing secret, AES-256-GCM sealed with the service key (MESHPAY_WEBHOOK_SECRET_KEY)
    -- and the endpoint id as associated data: it must be recoverable to sign, unlike API keys.
    secret_ciphertext  bytea NOT NULL CHECK (length(secret_ciphertext) BETWEEN 29 AND 256),
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Set when the endpoint answered 410 Gone; nothing is sent to it afterwards.
    disabled_at        timestamptz,
    disabled_reason    text,
    -- Soft delete: deliveries keep naming their endpoint in the log.
    deleted_at         timestamptz
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, id DESC)
    WHERE deleted_at IS NULL;

CREATE TABLE webhook_events (
    -- `msg_<hex>`: the `webhook-id` header, stable across retries and endpoints.
    id           uuid PRIMARY KEY,
    -- The outbox row this event came from (unique: fan-out happens once per row). No foreign
    -- key: outbox rows may be pruned before the event history.
    outbox_id    bigint NOT NULL UNIQUE,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    payment_id   uuid REFERENCES payments (id),
    event_type   text NOT NULL,
    -- The exact JSON body that is signed and sent (text, not jsonb: byte-for-byte stable).
    body         text NOT NULL,
    -- When the state change happened (the outbox row's creation).
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Status: pending (will be attempted at next_attempt_at), succeeded (2xx), failed (retries
-- exhausted, endpoint disabled or deleted).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook_events (id),
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id),
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    -- Ordering scope: the events of one payment reach one endpoint in `event_seq` order; a
    -- delivery is not attempted while an earlier one of the same (endpoint, payment) is pending.
    payment_id       uuid,
    -- The outbox id of the event: increasing per payment, because a payment's transitions are
    -- serialized by its version check, so event N+1's row is inserted after N's committed.
    event_seq        bigint NOT NULL,
    event_type       text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Attempts started (a claim counts one before the request is sent).
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (event_id, endpoint_id),
    CHECK ((status = 'pending') = (completed_at IS NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, payment_id, event_seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries (merchant_id, id DESC);
CREATE INDEX webhook_deliveries_merchant_status ON webhook_deliveries (merchant_id, status, id DESC);
CREATE INDEX webhook_deliveries_completed ON webhook_deliveries (completed_at)
    WHERE status <> 'pending';

-- The delivery log: one row per attempt that got an answer or an error.
CREATE TABLE webhook_attempts (
    delivery_id       uuid NOT NULL REFERENCES webhook_deliveries (id),
    attempt           integer NOT NULL CHECK (attempt >= 1),
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL CHECK (duration_ms >= 0),
    status_code       integer,
    error             text,
    -- The first bytes of the response body (bounded read), for support.
    response_excerpt  text,
    PRIMARY KEY (delivery_id, attempt)
);
