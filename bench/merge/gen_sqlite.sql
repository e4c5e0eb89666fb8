-- The merge benchmark's database, SQLite edition (bench/merge_run.sh).
-- The driver prepends: CREATE TEMP TABLE gen_param AS SELECT <n> AS n;
-- The same rows as gen_pg.sql (same ids, keys and links; see there), with
-- recursive CTEs for the series (SQLite 3.40 has no generate_series), the
-- foreign keys declared inline and integer rowid primary keys.
.bail on
PRAGMA journal_mode = WAL;
DROP TABLE IF EXISTS link;
DROP TABLE IF EXISTS profile;
DROP TABLE IF EXISTS child;
DROP TABLE IF EXISTS parent;
BEGIN;

CREATE TABLE parent (id INTEGER PRIMARY KEY, k TEXT NOT NULL, name TEXT NOT NULL);
WITH RECURSIVE s(p) AS (SELECT 0 UNION ALL SELECT p + 1 FROM s WHERE p + 1 < (SELECT n FROM gen_param))
INSERT INTO parent (id, k, name)
SELECT (p * 387853) % n + 1,
       'user-' || ((kidx * 48271) % 2147483647) || '@example.com',
       'name ' || p
  FROM (SELECT n, p,
               CASE WHEN p < d THEN p
                    WHEN p < d + g2 THEN p - d
                    ELSE g2 + (p - d - g2) / 2 END AS kidx
          FROM (SELECT n, n * 85 / 100 AS d, n / 20 AS g2 FROM gen_param) AS c, s) AS x
 ORDER BY 1;
CREATE INDEX parent_k_idx ON parent (k);

CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id),
                    payload TEXT NOT NULL);
WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j + 1 < (SELECT 3 * n FROM gen_param))
INSERT INTO child (id, parent_id, payload)
SELECT j + 1, (j * 611953) % n + 1, 'child ' || j FROM gen_param, s ORDER BY 1;
CREATE INDEX child_parent_id_idx ON child (parent_id);

CREATE TABLE link (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL,
                   parent_id INTEGER NOT NULL REFERENCES parent (id), UNIQUE (owner, parent_id));
CREATE TEMP TABLE dup AS
SELECT g AS owner, id AS parent_id
  FROM (SELECT id, dense_rank() OVER (ORDER BY k) AS g,
               row_number() OVER (PARTITION BY k ORDER BY id) AS rn,
               count(*) OVER (PARTITION BY k) AS c
          FROM parent
         WHERE k IN (SELECT k FROM parent GROUP BY k HAVING count(*) > 1))
 WHERE g % 2 = 0 OR (c = 3 AND rn > 1);
WITH RECURSIVE
s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s
          WHERE j + 1 < (SELECT n FROM gen_param) - (SELECT count(*) FROM dup)),
fill AS (SELECT n / 10 + 1 + j % (n / 20) AS owner, (j * 701531) % n + 1 AS parent_id
           FROM gen_param, s),
link_rows AS (SELECT owner, parent_id FROM dup UNION ALL SELECT owner, parent_id FROM fill)
INSERT INTO link (id, owner, parent_id)
SELECT ((row_number() OVER (ORDER BY owner, parent_id) - 1) * 512927) % n + 1, owner, parent_id
  FROM link_rows, gen_param
 ORDER BY 1;
DROP TABLE dup;
CREATE INDEX link_parent_id_idx ON link (parent_id);

CREATE TABLE profile (id INTEGER PRIMARY KEY,
                      parent_id INTEGER NOT NULL UNIQUE REFERENCES parent (id),
                      bio TEXT NOT NULL);
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < (SELECT n / 2 FROM gen_param))
INSERT INTO profile (id, parent_id, bio)
SELECT (i * 387853) % (n / 2) + 1, 2 * i + 2, 'bio ' || i FROM gen_param, s ORDER BY 1;

COMMIT;
ANALYZE;
