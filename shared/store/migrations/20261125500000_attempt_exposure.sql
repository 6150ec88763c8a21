-- When an attempt's signed bytes may first have reached a node: a send a node accepted, or one
-- whose outcome is unknown (timeout, connection reset, HTTP 5xx/429, an unrecognised error).
-- Bytes that may be public can be submitted again by anyone until their nonce is used on chain,
-- so the broadcast step fails a payment after signing (releasing its hold and handing its nonce
-- back) only while its live attempt's exposed_at is NULL: every send was refused outright.
ALTER TABLE payment_transactions ADD COLUMN exposed_at timestamptz;

-- What earlier sends answered was not kept: any attempt sent at least once counts as exposed.
UPDATE payment_transactions
   SET exposed_at = coalesce(first_sent_at, last_sent_at, created_at)
 WHERE send_count > 0;
