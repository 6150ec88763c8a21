-- What each deposit address of a confirmed sweep sent to the treasury, per asset, from the
-- forwarder's `Flushed(token, amount)` events in the sweep's receipt (token: the zero address
-- for the native coin). Native detection compares a deposit address's balance with what was
-- recorded less what sweeps mined at or below the block it reads took out.
CREATE TABLE sweep_flows (
    sweep_id         uuid NOT NULL REFERENCES sweeps (id),
    deposit_address  text NOT NULL,
    token            text NOT NULL,
    amount           numeric(78,0) NOT NULL CHECK (amount > 0),
    PRIMARY KEY (sweep_id, deposit_address, token)
);
CREATE INDEX sweep_flows_deposit ON sweep_flows (deposit_address, token);
