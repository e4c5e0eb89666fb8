-- The limit: a hand-written, set-based merge of parent's duplicate keys in
-- one transaction, on SQLite (bench/merge_run.sh runs it with sqlite3).
-- The same statements as hand_pg.sql in SQLite's dialect (no DELETE ...
-- USING), with nodup's connection settings (WAL is in the file already).
.bail on
PRAGMA foreign_keys = ON;
BEGIN IMMEDIATE;
CREATE TEMP TABLE m AS
SELECT id AS loser, keeper
  FROM (SELECT id, min(id) OVER (PARTITION BY k) AS keeper
          FROM parent
         WHERE k IN (SELECT k FROM parent GROUP BY k HAVING count(*) > 1))
 WHERE id <> keeper;
CREATE UNIQUE INDEX temp.m_loser ON m (loser);
-- every parent of a group, with its keeper; moved = 1 for losers
CREATE TEMP TABLE t AS
SELECT loser AS pid, keeper, 1 AS moved FROM m
UNION ALL
SELECT DISTINCT keeper, keeper, 0 FROM m;

DELETE FROM link WHERE id IN (
  SELECT id FROM (SELECT l.id,
                         row_number() OVER (PARTITION BY l.owner, t.keeper
                                            ORDER BY t.moved, l.id) AS rn
                    FROM link AS l JOIN t ON l.parent_id = t.pid)
   WHERE rn > 1);
UPDATE link SET parent_id = m.keeper FROM m WHERE link.parent_id = m.loser;

DELETE FROM profile WHERE id IN (
  SELECT id FROM (SELECT p.id,
                         row_number() OVER (PARTITION BY t.keeper ORDER BY t.moved, p.id) AS rn
                    FROM profile AS p JOIN t ON p.parent_id = t.pid)
   WHERE rn > 1);
UPDATE profile SET parent_id = m.keeper FROM m WHERE profile.parent_id = m.loser;

UPDATE child SET parent_id = m.keeper FROM m WHERE child.parent_id = m.loser;
-- @note (merge_run.sh --unindexed: bench/merge/hand_note.sql goes here)
DELETE FROM parent WHERE id IN (SELECT loser FROM m);
COMMIT;
