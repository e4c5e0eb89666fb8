"""Fixtures of the binding's tests: one backend per run, chosen by ctest.

NODUP_TEST_BACKEND=sqlite gives each test a new database file; =pg a
database of its own on the tests' throwaway cluster (NODUP_TEST_PG, the
conninfo of tests/CMakeLists.txt's pg fixture), made for this run and
dropped after it, each test using tables of its own there.
"""
import os
import sqlite3
import uuid

import pytest

import nodup

BACKEND = os.environ.get("NODUP_TEST_BACKEND", "sqlite")
PG_ADMIN = os.environ.get("NODUP_TEST_PG", "")


def pg_conninfo(dbname):
    """The cluster's conninfo with another database (libpq: the last wins)."""
    return f"{PG_ADMIN} dbname={dbname}"


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this run, dropped at its end."""
    if BACKEND != "pg":
        pytest.skip("PostgreSQL run only")
    if not PG_ADMIN:
        pytest.fail("NODUP_TEST_BACKEND=pg needs NODUP_TEST_PG (run through ctest)")
    name = f"nodup_py_{os.getpid()}"
    with nodup.connect(PG_ADMIN) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with nodup.connect(PG_ADMIN) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Db:
    """The test's database: its nodup URL, DDL in the backend's dialect and
    reads through the backend's own Python driver, to check what nodup did."""

    def __init__(self, url, path=None, pg_dbname=None):
        self.url = url
        self.path = path
        self.pg_dbname = pg_dbname
        self.sqlite = BACKEND == "sqlite"

    def pk(self):
        return "integer PRIMARY KEY" if self.sqlite else "bigserial PRIMARY KEY"

    def execute(self, sql):
        with nodup.connect(self.url) as conn:
            conn.execute(sql)

    def query(self, sql):
        if self.sqlite:
            with sqlite3.connect(self.path) as c:
                return c.execute(sql).fetchall()
        import psycopg2
        c = psycopg2.connect(pg_conninfo(self.pg_dbname))
        try:
            with c.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            c.close()


@pytest.fixture
def db(request, tmp_path):
    if BACKEND == "pg":
        name = request.getfixturevalue("pg_database")
        return Db(pg_conninfo(name), pg_dbname=name)
    path = tmp_path / "test.db"
    return Db(f"file:{path}?mode=rwc", path=str(path))


@pytest.fixture
def table(db):
    """A table name of this test's own (the PostgreSQL database is shared)."""
    return "t_" + uuid.uuid4().hex[:12]
