-- The merge benchmark's database, PostgreSQL edition (bench/merge_run.sh).
-- The driver prepends: CREATE TEMP TABLE gen_param AS SELECT CAST(<n> AS bigint) AS n;
-- gen_sqlite.sql builds the same rows (same ids, keys and links) on SQLite.
--
-- parent   n rows; n/10 keys are duplicated: n/20 keys twice, n/20 three
--          times, so 0.15 n rows are losers; ids are scattered over the
--          key groups (multiplicative permutation), keepers = lowest id
-- child    3n rows, plain foreign key, 3 per parent
-- link     n rows, UNIQUE (owner, parent_id): owner g links every member of
--          even duplicate group g (keeper-vs-loser collisions) and the two
--          losers of odd groups of three (loser-vs-loser); the rest random
-- profile  n/2 rows, one-to-one (parent_id UNIQUE) on even parent ids
-- Every foreign key column is indexed; heaps are in id order; autovacuum is
-- off on these tables so that it cannot start in the middle of a timing.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS link, profile, child, parent CASCADE;

CREATE TABLE parent (id bigint PRIMARY KEY, k text NOT NULL, name text NOT NULL)
  WITH (autovacuum_enabled = off);
INSERT INTO parent (id, k, name)
SELECT (p * 387853) % n + 1,
       'user-' || ((kidx * 48271) % 2147483647) || '@example.com',
       'name ' || p
  FROM (SELECT n, p,
               CASE WHEN p < d THEN p
                    WHEN p < d + g2 THEN p - d
                    ELSE g2 + (p - d - g2) / 2 END AS kidx
          FROM (SELECT n, n * 85 / 100 AS d, n / 20 AS g2 FROM gen_param) AS c,
               generate_series(0, c.n - 1) AS p) AS s
 ORDER BY 1;
CREATE INDEX parent_k_idx ON parent (k);

CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL, payload text NOT NULL)
  WITH (autovacuum_enabled = off);
INSERT INTO child (id, parent_id, payload)
SELECT j + 1, (j * 611953) % n + 1, 'child ' || j
  FROM gen_param, generate_series(0, 3 * gen_param.n - 1) AS j
 ORDER BY 1;
CREATE INDEX child_parent_id_idx ON child (parent_id);

CREATE TABLE link (id bigint PRIMARY KEY, owner bigint NOT NULL, parent_id bigint NOT NULL,
                   UNIQUE (owner, parent_id))
  WITH (autovacuum_enabled = off);
INSERT INTO link (id, owner, parent_id)
WITH grp AS (
  SELECT id, dense_rank() OVER (ORDER BY k) AS g,
         row_number() OVER (PARTITION BY k ORDER BY id) AS rn,
         count(*) OVER (PARTITION BY k) AS c
    FROM parent
   WHERE k IN (SELECT k FROM parent GROUP BY k HAVING count(*) > 1)),
dup AS (SELECT g AS owner, id AS parent_id FROM grp WHERE g % 2 = 0 OR (c = 3 AND rn > 1)),
fill AS (SELECT n / 10 + 1 + j % (n / 20) AS owner, (j * 701531) % n + 1 AS parent_id
           FROM gen_param, generate_series(0, gen_param.n - 1 - (SELECT count(*) FROM dup)) AS j),
link_rows AS (SELECT owner, parent_id FROM dup UNION ALL SELECT owner, parent_id FROM fill)
SELECT ((row_number() OVER (ORDER BY owner, parent_id) - 1) * 512927) % n + 1, owner, parent_id
  FROM link_rows, gen_param
 ORDER BY 1;
CREATE INDEX link_parent_id_idx ON link (parent_id);

CREATE TABLE profile (id bigint PRIMARY KEY, parent_id bigint NOT NULL UNIQUE, bio text NOT NULL)
  WITH (autovacuum_enabled = off);
INSERT INTO profile (id, parent_id, bio)
SELECT (i * 387853) % (n / 2) + 1, 2 * i + 2, 'bio ' || i
  FROM gen_param, generate_series(0, gen_param.n / 2 - 1) AS i
 ORDER BY 1;

ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent (id);
ALTER TABLE link ADD FOREIGN KEY (parent_id) REFERENCES parent (id);
ALTER TABLE profile ADD FOREIGN KEY (parent_id) REFERENCES parent (id);
VACUUM ANALYZE parent;
VACUUM ANALYZE child;
VACUUM ANALYZE link;
VACUUM ANALYZE profile;
