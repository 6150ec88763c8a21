-- W3C trace context of the step that wrote a row, so the work the row starts later (queue
-- dispatch, merchant webhook delivery) continues the payment's trace. NULL when telemetry is
-- off or the writer ran outside any trace; readers then start a new trace.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE webhook_events ADD COLUMN traceparent text;
