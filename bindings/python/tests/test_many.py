"""Connection.get_or_create_many on one backend (NODUP_TEST_BACKEND): many
keys in one library call, results in input order, the argument checks, and
threads sending overlapping batches."""
import collections
import random

import pytest

import nodup
from conftest import run_threads


@pytest.fixture
def t(db, table):
    """table(id, k, j, v) with (k, j) unique."""
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, k text, j integer, v text, '
               f'UNIQUE (k, j))')
    return table


def test_input_order_and_repeated_key(db, conn, t):
    old, _ = conn.get_or_create(t, {"k": "old", "j": 1}, {"v": "before"})
    keys = [{"k": "b", "j": 2}, {"k": "old", "j": 1}, {"j": 1, "k": "a"}, {"k": "b", "j": 2}]
    out = conn.get_or_create_many(t, keys, defaults={"v": "made"})
    assert [created for _, created in out] == [True, False, True, False]
    assert out[1][0] == old and out[0][0] == out[3][0]  # a repeated key: one row, one id
    assert all(isinstance(id_, int) for id_, _ in out)
    assert len({id_ for id_, _ in out}) == 3
    rows = dict(db.query(f'SELECT id, k || \':\' || j || \':\' || v FROM "{t}"'))
    assert [rows[id_] for id_, _ in out] == ["b:2:made", "old:1:before", "a:1:made", "b:2:made"]
    # The same batch again: all found, in the same order, nothing written.
    assert conn.get_or_create_many(t, keys) == [(id_, False) for id_, _ in out]
    assert db.query(f'SELECT count(*) FROM "{t}"') == [(3,)]


def test_defaults_per_row_only_on_create(db, conn, t):
    conn.get_or_create(t, {"k": "x", "j": 0}, {"v": "kept"})
    keys = [{"k": "x", "j": 0}, {"k": "y", "j": 0}, {"k": "y", "j": 0}, {"k": "z", "j": 0}]
    defaults = [{"v": "no"}, {"v": "first"}, {"v": "second"}, {"v": None}]
    assert [c for _, c in conn.get_or_create_many(t, keys, defaults)] == [False, True, False, True]
    assert db.query(f'SELECT k, v FROM "{t}" ORDER BY k') == [
        ("x", "kept"), ("y", "first"), ("z", None)]  # the first occurrence's defaults


def test_null_key_names_the_row_and_writes_nothing(db, conn, t):
    keys = [{"k": "a", "j": 1}, {"k": "b", "j": None}]
    with pytest.raises(nodup.NullKeyError) as e:
        conn.get_or_create_many(t, keys)
    assert "row 2" in str(e.value) and '"j"' in str(e.value)  # rows count from 1
    assert db.query(f'SELECT count(*) FROM "{t}"') == [(0,)]  # all or nothing
    assert conn.get_or_create_many(t, keys[:1])[0][1] is True  # the key is still usable


def test_empty(conn, t):
    assert conn.get_or_create_many(t, []) == []
    assert conn.get_or_create_many(t, (), defaults=[]) == []
    assert conn.get_or_create_many(t, iter([]), defaults={"v": "x"}) == []


def test_mismatched_columns_refused(db, conn, t):
    with pytest.raises(nodup.UsageError, match=r"keys\[2\] has the columns") as e:
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, {"j": 2, "k": "b"}, {"k": "c"}])
    assert isinstance(e.value, ValueError)
    with pytest.raises(nodup.UsageError, match=r"keys\[1\]"):
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, {"k": "b", "v": "x"}])
    with pytest.raises(nodup.UsageError, match=r"keys\[1\]"):  # no made-up column
        conn.get_or_create_many(t, [{"k": "a", "j": 1},
                                    collections.defaultdict(int, {"k": "b", "v": "x"})])
    with pytest.raises(nodup.UsageError, match=r"keys\[1\]"):
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, {"k": "b", "j": 2, "v": "x"}])
    with pytest.raises(nodup.UsageError, match=r"defaults\[1\] has the columns"):
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, {"k": "b", "j": 1}],
                                defaults=[{"v": "x"}, {}])
    with pytest.raises(nodup.UsageError, match="defaults has 1 dicts for 2 keys"):
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, {"k": "b", "j": 1}], defaults=[{}])
    with pytest.raises(TypeError, match="list of dicts"):
        conn.get_or_create_many(t, {"k": "a", "j": 1})  # one dict, not a list of them
    with pytest.raises(TypeError, match="list of dicts"):
        conn.get_or_create_many(t, "kj")
    with pytest.raises(TypeError, match=r"keys\[1\] must be a dict"):
        conn.get_or_create_many(t, [{"k": "a", "j": 1}, ("b", 1)])
    with pytest.raises(TypeError, match=r"keys\[0\]: column 'j'"):
        conn.get_or_create_many(t, [{"k": "a", "j": b"1"}])
    with pytest.raises(nodup.UnbackedKeyError):
        conn.get_or_create_many(t, [{"k": "a"}])
    assert db.query(f'SELECT count(*) FROM "{t}"') == [(0,)]


def test_text_primary_key(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (code text PRIMARY KEY, name text UNIQUE)')
    out = conn.get_or_create_many(table, [{"name": "x"}], defaults=[{"code": "007"}])
    assert out == [("007", True)]  # a text primary key stays a str, as written


THREADS = 8
KEYS = 60
BATCH = 15


def test_threads_overlapping_batches_one_creator_per_key(db, t):
    """8 threads, a connection each, every thread sending all keys in
    batches of its own order (so batches overlap across threads, and each
    batch holds a repeated key): exactly one creator per key overall."""
    results = [[] for _ in range(THREADS)]

    def work(n, conn):
        keys = list(range(KEYS))
        random.Random(n).shuffle(keys)
        for b in range(0, KEYS, BATCH):
            batch = keys[b:b + BATCH]
            batch.append(batch[0])  # a key twice in one batch
            out = conn.get_or_create_many(t, [{"k": f"key{k}", "j": k % 3} for k in batch],
                                          defaults=[{"v": f"t{n}"} for _ in batch])
            results[n].extend(zip(batch, out))

    assert run_threads(db, THREADS, work) == []
    for k in range(KEYS):
        calls = [res for r in results for (kk, res) in r if kk == k]
        assert len(calls) >= THREADS
        assert sum(created for _, created in calls) == 1, f"key{k}: not exactly one creator"
        assert len({id_ for id_, _ in calls}) == 1, f"key{k}: callers got different ids"
    assert db.query(f'SELECT count(*), count(DISTINCT k) FROM "{t}"') == [(KEYS, KEYS)]
