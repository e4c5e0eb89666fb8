-- The limit: a hand-written, set-based merge of parent's duplicate keys in
-- one transaction, on PostgreSQL (bench/merge_run.sh runs it with psql).
-- Same rules as nodup merge: the lowest id of a key is kept; a link or
-- profile row that would collide once re-pointed is deleted, keeping the
-- row already on the keeper, else the lowest id. No archive, no checks.
\set ON_ERROR_STOP 1
BEGIN;
CREATE TEMP TABLE m ON COMMIT DROP AS
SELECT id AS loser, keeper
  FROM (SELECT id, min(id) OVER (PARTITION BY k) AS keeper
          FROM parent
         WHERE k IN (SELECT k FROM parent GROUP BY k HAVING count(*) > 1)) AS s
 WHERE id <> keeper;
CREATE UNIQUE INDEX ON m (loser);
ANALYZE m;
-- every parent of a group, with its keeper; moved = 1 for losers
CREATE TEMP TABLE t ON COMMIT DROP AS
SELECT loser AS pid, keeper, 1 AS moved FROM m
UNION ALL
SELECT DISTINCT keeper, keeper, 0 FROM m;
ANALYZE t;

DELETE FROM link AS l
 USING (SELECT l.id,
               row_number() OVER (PARTITION BY l.owner, t.keeper ORDER BY t.moved, l.id) AS rn
          FROM link AS l JOIN t ON l.parent_id = t.pid) AS d
 WHERE l.id = d.id AND d.rn > 1;
UPDATE link SET parent_id = m.keeper FROM m WHERE link.parent_id = m.loser;

DELETE FROM profile AS p
 USING (SELECT p.id,
               row_number() OVER (PARTITION BY t.keeper ORDER BY t.moved, p.id) AS rn
          FROM profile AS p JOIN t ON p.parent_id = t.pid) AS d
 WHERE p.id = d.id AND d.rn > 1;
UPDATE profile SET parent_id = m.keeper FROM m WHERE profile.parent_id = m.loser;

UPDATE child SET parent_id = m.keeper FROM m WHERE child.parent_id = m.loser;
-- @note (merge_run.sh --unindexed: bench/merge/hand_note.sql goes here)
DELETE FROM parent USING m WHERE parent.id = m.loser;
COMMIT;
