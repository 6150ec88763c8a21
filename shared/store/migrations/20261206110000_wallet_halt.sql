-- A wallet whose counter was found below the chain's pending nonce is halted: the key was used
-- outside meshpay, or the database lost committed broadcasts (a point-in-time restore). Both
-- are incidents in which re-signing a payment can pay twice, so no nonce is handed out on the
-- wallet (new payments go to other wallets, its own payments wait) until an operator resumes
-- it (`Store::resume_wallet`); reconcile reports it in every run meanwhile.
ALTER TABLE wallet_nonces
    ADD COLUMN halted_at     timestamptz,
    ADD COLUMN halted_reason text,
    ADD CONSTRAINT wallet_nonces_halt_reason CHECK ((halted_at IS NULL) = (halted_reason IS NULL));
