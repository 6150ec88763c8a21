-- The notify claim walks each live endpoint's due deliveries in due order and stops after its
-- per-endpoint share, so one claim costs about its own size whatever the backlog.
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending';

-- Deliveries are queue-like: inserted, updated twice and done within seconds, so what is pending
-- swings from none to thousands (an outage, a burst). The default thresholds (20 % of the table)
-- let statistics taken at "none pending" steer plans during a backlog of thousands; after a
-- server restart the change counters start over, which delays the next analyze further.
ALTER TABLE webhook_deliveries SET (
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 200,
    autovacuum_vacuum_scale_factor = 0.02
);
