"""nodup.Connection on one backend (NODUP_TEST_BACKEND): get-or-create,
update-or-create, check, slugs, errors and the connection's life."""
import pytest

import nodup


@pytest.fixture
def t(db, table):
    """table(id, k UNIQUE, v, n, x, b)."""
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, k text UNIQUE, v text, '
               f'n integer, x double precision, b boolean)')
    return table


def test_created_then_existing(conn, t):
    first = conn.get_or_create(t, {"k": "a"})
    assert first[1] is True and isinstance(first[0], int)
    assert conn.get_or_create(t, {"k": "a"}) == (first[0], False)
    other = conn.get_or_create(t, {"k": "b"})
    assert other[1] is True and other[0] != first[0]


def test_defaults_used_only_on_create(db, conn, t):
    id_, created = conn.get_or_create(t, {"k": "a"}, defaults={"v": "first"})
    assert created
    assert conn.get_or_create(t, {"k": "a"}, defaults={"v": "second"}) == (id_, False)
    assert db.query(f'SELECT v FROM "{t}"') == [("first",)]


def test_value_types(db, conn, t):
    conn.get_or_create(t, {"k": "a"}, {"v": None, "n": 42, "x": 1.5, "b": True})
    conn.get_or_create(t, {"k": "b"}, {"v": "é", "n": -7, "x": 2.0, "b": False})
    rows = db.query(f'SELECT k, v, n, x, b FROM "{t}" ORDER BY k')
    true, false = (1, 0) if db.sqlite else (True, False)  # what each engine stores
    assert rows == [("a", None, 42, 1.5, true), ("b", "é", -7, 2.0, false)]
    # An int key value finds the row a text one made, and the reverse.
    db.execute(f'CREATE TABLE "{t}_n" (id {db.pk()}, n integer UNIQUE)')
    id_, _ = conn.get_or_create(f"{t}_n", {"n": 5})
    assert conn.get_or_create(f"{t}_n", {"n": "5"}) == (id_, False)


def test_refused_values(conn, t):
    with pytest.raises(TypeError, match="bytes"):
        conn.get_or_create(t, {"k": b"a"})
    with pytest.raises(ValueError, match="NUL"):
        conn.get_or_create(t, {"k": "a\0b"})
    with pytest.raises(TypeError):
        conn.get_or_create(t, ["k"])
    with pytest.raises(TypeError):
        conn.get_or_create(t, {"k": "a"}, where=1)


def test_null_key(conn, t):
    with pytest.raises(nodup.NullKeyError) as e:
        conn.get_or_create(t, {"k": None})
    assert e.value.code == 8 and isinstance(e.value, ValueError)
    assert '"k"' in str(e.value)


def test_unbacked_key(conn, t):
    with pytest.raises(nodup.UnbackedKeyError) as e:
        conn.get_or_create(t, {"v": "a"})
    assert e.value.code == nodup.UnbackedKeyError.code == 7
    assert "CREATE UNIQUE INDEX" in str(e.value)
    with pytest.raises(nodup.NoTableError):
        conn.get_or_create(t + "_none", {"k": "a"})
    with pytest.raises(nodup.NoColumnError):
        conn.get_or_create(t, {"nope": "a"})


def test_other_constraint_named(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, k text UNIQUE, '
               f'n integer CONSTRAINT "n_positive" CHECK (n > 0), u text UNIQUE)')
    conn.get_or_create(table, {"k": "a"}, {"n": 1, "u": "x"})
    with pytest.raises(nodup.ConstraintError) as e:
        conn.get_or_create(table, {"k": "b"}, {"n": -1})
    assert e.value.sqlstate == "23514" and "n_positive" in str(e.value)
    if not db.sqlite:  # SQLite names no constraint outside the message
        assert e.value.constraint == "n_positive"
    with pytest.raises(nodup.ConstraintError) as e:
        conn.get_or_create(table, {"k": "c"}, {"n": 1, "u": "x"})
    assert e.value.sqlstate == "23505"
    if not db.sqlite:
        assert e.value.constraint == f"{table}_u_key"
    # Nothing was inserted by the failed calls.
    assert db.query(f'SELECT count(*) FROM "{table}"') == [(1,)]


def test_partial_key(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, kind text, ref integer)')
    db.execute(f'CREATE UNIQUE INDEX "{table}_one" ON "{table}" (kind, ref) '
               "WHERE kind = 'inquiry'")
    where = "kind = 'inquiry'"
    id_, created = conn.get_or_create(table, {"kind": "inquiry", "ref": 1}, where=where)
    assert created
    assert conn.get_or_create(table, {"kind": "inquiry", "ref": 1}, where=where) == (id_, False)
    with pytest.raises(nodup.PredicateError):
        conn.get_or_create(table, {"kind": "other", "ref": 1}, where=where)
    with pytest.raises(nodup.UnbackedKeyError):  # the same columns without the predicate
        conn.get_or_create(table, {"kind": "inquiry", "ref": 1})
    keys = [{"kind": "inquiry", "ref": 1}, {"kind": "inquiry", "ref": 2}]
    assert [c for _, c in conn.get_or_create_many(table, keys, where=where)] == [False, True]
    with pytest.raises(nodup.PredicateError):
        conn.get_or_create_many(table, [{"kind": "other", "ref": 1}], where=where)
    assert conn.check(table, ["kind", "ref"], where=where) == f"{table}_one"


def test_update_or_create(db, conn, t):
    id_, outcome = conn.update_or_create(t, {"k": "a"}, set={"v": "1"}, create={"n": 5})
    assert outcome == nodup.CREATED == "created"
    assert conn.update_or_create(t, {"k": "a"}, set={"v": "1"}) == (id_, nodup.UNCHANGED)
    assert conn.update_or_create(t, {"k": "a"}, set={"v": "2"}, create={"n": 9}) == (
        id_, nodup.UPDATED)
    assert db.query(f'SELECT v, n FROM "{t}"') == [("2", 5)]
    with pytest.raises(nodup.UsageError):  # a set column of the key
        conn.update_or_create(t, {"k": "a"}, set={"k": "b"})


def test_check(conn, t):
    assert conn.check(t, ["k"])
    assert conn.check(t, ("k",)) == conn.check(t, ["k"])
    with pytest.raises(nodup.UnbackedKeyError):
        conn.check(t, ["v"])
    with pytest.raises(TypeError):
        conn.check(t, "k")


def test_slug(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, org integer, slug text, '
               'name text, UNIQUE (org, slug))')
    s1, id1 = conn.slug(table, "slug", "My Team", scope={"org": 1}, set={"name": "My Team"})
    s2, id2 = conn.slug(table, "slug", "My Team", scope={"org": 1})
    s3, _ = conn.slug(table, "slug", "My Team", scope={"org": 2})
    assert (s1, s2, s3) == ("my-team", "my-team-2", "my-team")
    assert id1 != id2
    assert conn.slug(table, "slug", "!!!", scope={"org": 1}, fallback="team")[0] == "team"
    assert len(conn.slug(table, "slug", "x" * 80, scope={"org": 1}, max_length=20)[0]) <= 20
    with pytest.raises(nodup.UnbackedKeyError):
        conn.slug(table, "slug", "My Team")  # the index is per org
    assert nodup.slugify("Crème Brûlée") == "creme-brulee"


def test_slug_handles_cached_per_arguments(db, table):
    """slug() keeps a prepared handle per (table, column, scope and set
    columns, options): each call must still get its own arguments' rules."""
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, org integer, slug text, '
               'name text, note text, UNIQUE (org, slug))')
    conn = nodup.connect(db.url)
    long = "word " * 20
    assert len(conn.slug(table, "slug", long, scope={"org": 1}, max_length=20)[0]) <= 20
    assert len(conn.slug(table, "slug", long, scope={"org": 1})[0]) > 20  # default 50
    assert conn.slug(table, "slug", "!!", scope={"org": 1}, fallback="x")[0] == "x"
    assert conn.slug(table, "slug", "!!", scope={"org": 1})[0] == "n-a"
    conn.slug(table, "slug", "T", scope={"org": 1}, set={"name": "a", "note": "b"})
    conn.slug(table, "slug", "T", scope={"org": 1}, set={"note": "d", "name": "c"})
    assert db.query(f'SELECT slug, name, note FROM "{table}" WHERE name IS NOT NULL '
                    'ORDER BY id') == [("t", "a", "b"), ("t-2", "c", "d")]
    with pytest.raises(nodup.NullKeyError):  # the handle stays usable after an error
        conn.slug(table, "slug", "T", scope={"org": None})
    assert conn.slug(table, "slug", "T", scope={"org": 1})[0] == "t-3"
    with pytest.raises(TypeError):
        conn.slug(table, "slug", "T", scope={"org": 1}, fallback=1)
    # A schema change under a kept handle: at most one DatabaseError (the
    # handle is then dropped), and the next call works on the new table.
    conn.execute(f'DROP TABLE "{table}"')
    conn.execute(f'CREATE TABLE "{table}" (id {db.pk()}, org text, slug text, '
                 'UNIQUE (org, slug))')
    try:
        first = conn.slug(table, "slug", "T", scope={"org": 1})[0]
    except nodup.DatabaseError:
        first = conn.slug(table, "slug", "T", scope={"org": 1})[0]
    assert first == "t"
    conn.close()  # frees the slug handles, then the connection
    assert conn.closed


def test_text_primary_key(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (code text PRIMARY KEY, name text UNIQUE)')
    assert conn.get_or_create(table, {"name": "x"}, {"code": "007"}) == ("007", True)


def test_context_manager_closes(db, t):
    with nodup.connect(db.url) as conn:
        assert not conn.closed and conn.backend == ("sqlite" if db.sqlite else "postgresql")
        conn.get_or_create(t, {"k": "a"})
    assert conn.closed and conn.backend is None
    with pytest.raises(nodup.UsageError, match="closed"):
        conn.get_or_create(t, {"k": "a"})
    conn.close()  # again: a no-op
    assert "closed" in repr(conn)
    assert conn.retries == 0 and conn.notice is None


def test_connect_errors():
    with pytest.raises(nodup.ConnectError) as e:  # a server that is not there
        nodup.connect("host=/nonexistent-nodup-dir user=x dbname=y")
    assert isinstance(e.value, ConnectionError) and e.value.code == 4
    with pytest.raises(nodup.ConnectError, match="must exist"):
        nodup.connect("/nonexistent-nodup-dir/app.db")
    with pytest.raises(nodup.URLError) as e:
        nodup.connect("postgres://[broken")
    assert isinstance(e.value, ValueError) and e.value.code == 3
    with pytest.raises(nodup.URLError):
        nodup.connect("")


def test_every_error_code_has_its_class():
    classes = {c.code: c for c in vars(nodup).values()
               if isinstance(c, type) and issubclass(c, nodup.Error) and c is not nodup.Error}
    # NODUP_AGAIN (20) is no failure: the answer of the C library's non-blocking
    # calls, which the binding does not make.
    not_errors = {20}
    code = 1
    while nodup.strerror(code) != "unknown error code":
        if code not in not_errors:
            assert code in classes, f"no class for code {code} ({nodup.strerror(code)})"
        code += 1
    assert len(classes) == code - 1 - len(not_errors)
    assert nodup.Error.code is None
    e = nodup.UnbackedKeyError("raised by Python")  # class attributes as defaults
    assert (e.code, e.sqlstate, e.constraint) == (7, None, None)


def test_bad_value_then_good(db, conn, table):
    db.execute(f'CREATE TABLE "{table}" (id {db.pk()}, n integer UNIQUE)')
    with pytest.raises(nodup.Error) as e:  # not an integer: refused, the key kept usable
        conn.get_or_create(table, {"n": "abc"})
    assert type(e.value) in (nodup.DatabaseError, nodup.UsageError)
    assert conn.get_or_create(table, {"n": 3})[1] is True
    assert conn.get_or_create(table, {"n": 3})[1] is False


def test_many_keys_and_close_with_keys(db, t):
    conn = nodup.connect(db.url)
    for cols in ({"k": "a"}, {"k": "a", "v": "b"}, {"v": "b", "k": "a"}):
        try:
            conn.get_or_create(t, cols)
        except nodup.UnbackedKeyError:
            pass
    conn.close()  # frees the prepared keys, then the connection
    assert conn.closed


def test_retry_inside_own_transaction(db, t):
    """A key another connection created after this transaction's snapshot:
    the row exists but cannot be seen, so only a re-run can go on."""
    with nodup.connect(db.url) as conn, nodup.connect(db.url) as other:
        other.get_or_create(t, {"k": "seen"})
        conn.execute("BEGIN" if db.sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.get_or_create(t, {"k": "seen"})  # a read: the snapshot starts here
        id_, _ = other.get_or_create(t, {"k": "later"})
        with pytest.raises(nodup.RetryError) as e:
            conn.get_or_create(t, {"k": "later"})
        assert e.value.code == 10
        conn.execute("ROLLBACK")
        assert conn.get_or_create(t, {"k": "later"}) == (id_, False)  # the re-run
