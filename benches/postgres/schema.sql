-- The baseline most teams would build: a double-entry ledger in PostgreSQL, one transaction per
-- transfer, idempotent on the transfer id, balances checked under row locks.
DROP TABLE IF EXISTS postings, transfers, accounts CASCADE;
CREATE TABLE accounts (
  id      integer PRIMARY KEY,
  balance bigint  NOT NULL,          -- minor units
  floor   bigint  NOT NULL DEFAULT 0 -- lowest allowed balance (the bank may go negative)
);
CREATE TABLE transfers (
  id         uuid    PRIMARY KEY,    -- the idempotency key
  debit      integer NOT NULL REFERENCES accounts(id),
  credit     integer NOT NULL REFERENCES accounts(id),
  amount     bigint  NOT NULL CHECK (amount > 0),
  result     text    NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE postings (
  transfer_id   uuid    NOT NULL REFERENCES transfers(id),
  account_id    integer NOT NULL REFERENCES accounts(id),
  amount        bigint  NOT NULL,    -- signed: debit negative
  balance_after bigint  NOT NULL
);
CREATE INDEX postings_account ON postings(account_id);

-- Account 1 is the hot merchant, 2..10001 wallets, 0 the bank.
INSERT INTO accounts SELECT 0, 0, -9223372036854775807;
INSERT INTO accounts SELECT g, 0, 0 FROM generate_series(1, 10001) g;

CREATE OR REPLACE FUNCTION transfer(p_id uuid, p_debit integer, p_credit integer, p_amount bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  d accounts%ROWTYPE;
  c accounts%ROWTYPE;
  prior text;
BEGIN
  SELECT result INTO prior FROM transfers WHERE id = p_id;
  IF FOUND THEN RETURN prior; END IF;            -- retry: replay the first outcome
  -- Lock both rows in id order (no deadlocks between opposite transfers).
  PERFORM 1 FROM accounts WHERE id IN (p_debit, p_credit) ORDER BY id FOR UPDATE;
  SELECT * INTO d FROM accounts WHERE id = p_debit;
  SELECT * INTO c FROM accounts WHERE id = p_credit;
  IF d.balance - p_amount < d.floor THEN
    INSERT INTO transfers VALUES (p_id, p_debit, p_credit, p_amount, 'insufficient_funds') ON CONFLICT DO NOTHING;
    RETURN 'insufficient_funds';
  END IF;
  INSERT INTO transfers VALUES (p_id, p_debit, p_credit, p_amount, 'ok') ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN RETURN (SELECT result FROM transfers WHERE id = p_id); END IF;
  UPDATE accounts SET balance = balance - p_amount WHERE id = p_debit;
  UPDATE accounts SET balance = balance + p_amount WHERE id = p_credit;
  INSERT INTO postings VALUES (p_id, p_debit, -p_amount, d.balance - p_amount),
                              (p_id, p_credit, p_amount, c.balance + p_amount);
  RETURN 'ok';
END $$;

-- Fund every wallet from the bank.
SELECT transfer(gen_random_uuid(), 0, g, 10000000000) FROM generate_series(2, 10001) g;
