-- Re-points the unindexed child (gen_note_*.sql), both engines: merge_run.sh
-- --unindexed puts this statement into hand_*.sql in place of the line
-- "-- @note". No index is made on note.parent_id: the UPDATE is one join
-- with m, but each loser's foreign key check at the final DELETE reads note
-- whole (PostgreSQL's RI trigger; SQLite's foreign key check), which is what
-- a hand-written merge of such a table costs.
UPDATE note SET parent_id = m.keeper FROM m WHERE note.parent_id = m.loser;
