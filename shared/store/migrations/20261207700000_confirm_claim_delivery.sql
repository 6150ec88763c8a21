-- The queue message that made the current confirm claim (the trigger's `Id` and `DequeueCount`).
-- A claim advances `poller_seq` before it polls, so when the handler dies mid-invocation the
-- host's redelivery of that same message carries a sequence the chain has already passed: it is
-- recognised by its message id and a higher dequeue count and resumes the chain (same poller,
-- same sequence) instead of being refused until the lease lapses. A copy of the message sent
-- again (a new message id) is still refused.
ALTER TABLE payment_confirmations
    ADD COLUMN claim_message_id    text CHECK (length(claim_message_id) <= 200),
    ADD COLUMN claim_dequeue_count bigint CHECK (claim_dequeue_count >= 1);
