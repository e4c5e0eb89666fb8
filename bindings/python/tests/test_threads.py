"""Threads: a connection per thread races correctly; a connection shared by
two threads at once is refused, not corrupted; the GIL is released while a
call waits on the database."""
import random
import sqlite3
import threading
import time

import pytest

import nodup

THREADS = 16
KEYS = 40


def test_sixteen_threads_one_creator_per_key(db, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, k text UNIQUE, who integer)')
    start = threading.Barrier(THREADS)
    results = [[] for _ in range(THREADS)]
    errors = []

    def worker(n):
        try:
            with nodup.connect(db.url) as conn:  # a connection per thread
                keys = list(range(KEYS))
                random.Random(n).shuffle(keys)
                start.wait()
                for k in keys:
                    id_, created = conn.get_or_create(table, {"k": f"key{k}"}, {"who": n})
                    results[n].append((k, id_, created))
        except Exception as e:  # reported below, with the thread's number
            errors.append((n, e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(KEYS):
        calls = [(id_, created) for r in results for (kk, id_, created) in r if kk == k]
        assert len(calls) == THREADS
        assert sum(created for _, created in calls) == 1, f"key{k}: not exactly one creator"
        assert len({id_ for id_, _ in calls}) == 1, f"key{k}: callers got different ids"
    assert db.query(f'SELECT count(*), count(DISTINCT k) FROM "{table}"') == [(KEYS, KEYS)]


class Blocker:
    """Hold the lock a get-or-create of key 'blocked' must wait for: SQLite's
    write lock, or on PostgreSQL an uncommitted insert of the same key."""

    def __init__(self, db, table):
        if db.sqlite:
            self.c = sqlite3.connect(db.path, isolation_level=None)
            self.c.execute("BEGIN IMMEDIATE")
        else:
            import psycopg2
            from conftest import pg_conninfo
            self.c = psycopg2.connect(pg_conninfo(db.pg_dbname))
            self.c.cursor().execute(f'INSERT INTO "{table}" (k) VALUES (%s)', ("blocked",))

    def release(self):
        self.c.rollback()
        self.c.close()


def test_shared_connection_refused_and_gil_released(db, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, k text UNIQUE, who integer)')
    with nodup.connect(db.url) as conn:
        conn.get_or_create(table, {"k": "warm"})  # the key is prepared
        blocker = Blocker(db, table)
        outcome = []
        waiting = threading.Thread(
            target=lambda: outcome.append(conn.get_or_create(table, {"k": "blocked"})))
        waiting.start()
        try:
            time.sleep(0.5)  # the thread is inside the call, waiting on the lock
            assert waiting.is_alive()
            # This thread runs meanwhile (the GIL is released), and the
            # connection, busy in the other thread, is refused to it.
            with pytest.raises(nodup.UsageError, match="connection per thread"):
                conn.get_or_create(table, {"k": "other"})
            with pytest.raises(nodup.UsageError):
                conn.close()
        finally:
            blocker.release()
            waiting.join()
        assert outcome and outcome[0][1] is True
        assert conn.get_or_create(table, {"k": "other"})[1] is True  # usable again
