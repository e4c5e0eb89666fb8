-- The unindexed child (issue 12), PostgreSQL edition: run after gen_pg.sql
-- (bench/merge_run.sh --unindexed) or bench/lock/gen_pg.sql
-- (bench/enforce_lock_run.sh), with the same gen_param(n) in the session.
--
-- note     n/3 rows, a plain foreign key to parent whose column has NO index
--          (no index leads with parent_id), so every deleted parent row's
--          foreign key check reads note whole unless something indexes it.
-- gen_note_sqlite.sql builds the same rows on SQLite.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS note;
CREATE TABLE note (id bigint PRIMARY KEY, parent_id bigint NOT NULL, body text NOT NULL)
  WITH (autovacuum_enabled = off);
INSERT INTO note (id, parent_id, body)
SELECT j + 1, (j * 733361) % n + 1, 'note ' || j
  FROM gen_param, generate_series(0, gen_param.n / 3 - 1) AS j
 ORDER BY 1;
ALTER TABLE note ADD FOREIGN KEY (parent_id) REFERENCES parent (id);
VACUUM ANALYZE note;
