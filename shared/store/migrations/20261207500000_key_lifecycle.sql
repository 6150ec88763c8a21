-- API key lifecycle and abuse limits: per-key rate limits, expiry, last use, rotation; merchant
-- suspension and a cap on open payments; an audit row per operator command.

ALTER TABLE api_keys
    ADD COLUMN rate_limit_per_sec integer CHECK (rate_limit_per_sec > 0),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz,
    -- The key that replaced this one (`api-key rotate`); its `revoked_at` is the grace's end.
    ADD COLUMN replaced_by uuid REFERENCES api_keys (id);

ALTER TABLE merchants
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspended_reason text CHECK (length(suspended_reason) <= 500),
    -- NULL: the process default (`MESHPAY_MAX_OPEN_PAYMENTS`).
    ADD COLUMN max_open_payments integer CHECK (max_open_payments > 0);

-- Open payments per merchant, for the cap checked at authorization.
CREATE INDEX payments_merchant_open ON payments (merchant_id)
    WHERE status NOT IN ('settled', 'failed', 'cancelled', 'expired');

-- Pruning quotes nobody authorized.
CREATE INDEX quotes_unused_expiry ON quotes (expires_at) WHERE used_by_payment IS NULL;

CREATE TABLE admin_audit (
    id           bigserial PRIMARY KEY,
    -- MESHPAY_ADMIN_ACTOR, else the OS user.
    actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    command      text NOT NULL,
    -- The command line's options, secrets left out.
    args         jsonb NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- NULL while running (or when the process died before finishing): the action may have run.
    outcome      text CHECK (outcome IN ('ok', 'error')),
    error        text
);
CREATE INDEX admin_audit_started ON admin_audit (started_at);
