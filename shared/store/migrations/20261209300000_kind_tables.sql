-- Kinds that grow with features are rows of a table, no longer CHECK lists: a feature adds its
-- kind with one INSERT instead of a DO-block that rewrites the constraint from its current
-- definition (each such block restated the last one, and two branches adding a kind collided).
-- Each table starts with exactly the kinds the CHECK it replaces allowed (read from it).
CREATE TABLE ledger_transaction_kinds (kind text PRIMARY KEY);
CREATE TABLE ledger_account_kinds (kind text PRIMARY KEY);
CREATE TABLE reconcile_discrepancy_kinds (kind text PRIMARY KEY);

INSERT INTO ledger_transaction_kinds (kind)
SELECT DISTINCT literal[1]
  FROM pg_constraint c,
       regexp_matches(pg_get_constraintdef(c.oid), '''([a-z0-9_]+)''', 'g') AS literal
 WHERE c.conname = 'ledger_transactions_kind_check';
INSERT INTO ledger_account_kinds (kind)
SELECT DISTINCT literal[1]
  FROM pg_constraint c,
       regexp_matches(pg_get_constraintdef(c.oid), '''([a-z0-9_]+)''', 'g') AS literal
 WHERE c.conname = 'ledger_accounts_kind_check';
INSERT INTO reconcile_discrepancy_kinds (kind)
SELECT DISTINCT literal[1]
  FROM pg_constraint c,
       regexp_matches(pg_get_constraintdef(c.oid), '''([a-z0-9_]+)''', 'g') AS literal
 WHERE c.conname = 'reconcile_discrepancies_kind_check';

ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_fkey
    FOREIGN KEY (kind) REFERENCES ledger_transaction_kinds (kind);
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_fkey
    FOREIGN KEY (kind) REFERENCES ledger_account_kinds (kind);
ALTER TABLE reconcile_discrepancies DROP CONSTRAINT reconcile_discrepancies_kind_check;
ALTER TABLE reconcile_discrepancies ADD CONSTRAINT reconcile_discrepancies_kind_fkey
    FOREIGN KEY (kind) REFERENCES reconcile_discrepancy_kinds (kind);
