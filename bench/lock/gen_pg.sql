-- The point-2 scenario of issue 12 for bench/enforce_lock_run.sh, PostgreSQL
-- edition. The driver prepends:
--   CREATE TEMP TABLE gen_param AS SELECT CAST(<n> AS bigint) AS n, CAST(<keys> AS bigint) AS keys;
-- and appends bench/merge/gen_note_pg.sql (note: n/3 rows, foreign key
-- column without an index).
--
-- parent   n rows over `keys` keys (row p has key index p % keys: n/keys
--          rows a key, so n - keys losers), keys spelled as gen_pg.sql's
--          ('user-' || (kidx * 48271 % 2147483647) || '@example.com'), ids
--          scattered over the groups (multiplicative permutation), an
--          index on k (not unique: enforce makes that).
-- gen_sqlite.sql builds the same rows on SQLite.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS note, parent CASCADE;
CREATE TABLE parent (id bigint PRIMARY KEY, k text NOT NULL, name text NOT NULL)
  WITH (autovacuum_enabled = off);
INSERT INTO parent (id, k, name)
SELECT (p * 387853) % n + 1,
       'user-' || (((p % keys) * 48271) % 2147483647) || '@example.com',
       'name ' || p
  FROM gen_param, generate_series(0, gen_param.n - 1) AS p
 ORDER BY 1;
CREATE INDEX parent_k_idx ON parent (k);
VACUUM ANALYZE parent;
