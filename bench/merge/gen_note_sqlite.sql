-- The unindexed child (issue 12), SQLite edition: the same rows as
-- gen_note_pg.sql (see there), run after gen_sqlite.sql or
-- bench/lock/gen_sqlite.sql with the same temp table gen_param(n).
.bail on
DROP TABLE IF EXISTS note;
CREATE TABLE note (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id),
                   body TEXT NOT NULL);
WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j + 1 < (SELECT n / 3 FROM gen_param))
INSERT INTO note (id, parent_id, body)
SELECT j + 1, (j * 733361) % n + 1, 'note ' || j FROM gen_param, s ORDER BY 1;
ANALYZE;
