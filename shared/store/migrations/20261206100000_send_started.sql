-- Exposure is written BEFORE every send: `send_started_at` marks a send whose answer is not yet
-- recorded. The next send (or a decision to fail the payment) that finds it set cannot know
-- whether those bytes reached a node, so they count as exposed from then on. Recording the
-- answer clears it (an outright refusal leaves `exposed_at` as it was).
ALTER TABLE payment_transactions ADD COLUMN send_started_at timestamptz;
