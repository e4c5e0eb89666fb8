-- The point-2 scenario of issue 12, SQLite edition: the same rows as
-- gen_pg.sql (see there). The driver prepends
--   CREATE TEMP TABLE gen_param AS SELECT <n> AS n, <keys> AS keys;
-- and appends bench/merge/gen_note_sqlite.sql.
.bail on
PRAGMA journal_mode = WAL;
DROP TABLE IF EXISTS note;
DROP TABLE IF EXISTS parent;
BEGIN;
CREATE TABLE parent (id INTEGER PRIMARY KEY, k TEXT NOT NULL, name TEXT NOT NULL);
WITH RECURSIVE s(p) AS (SELECT 0 UNION ALL SELECT p + 1 FROM s WHERE p + 1 < (SELECT n FROM gen_param))
INSERT INTO parent (id, k, name)
SELECT (p * 387853) % n + 1,
       'user-' || (((p % keys) * 48271) % 2147483647) || '@example.com',
       'name ' || p
  FROM gen_param, s
 ORDER BY 1;
CREATE INDEX parent_k_idx ON parent (k);
COMMIT;
