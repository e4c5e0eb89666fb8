"""nodup: create a database row exactly once, on SQLite and PostgreSQL.

Python binding of libnodup (include/nodup.h is its manual). The library makes
a unique index the arbiter of get-or-create, so that under any concurrency
exactly one caller creates the row and every caller gets its id::

    import nodup

    with nodup.connect("postgresql://app@db/app") as conn:
        conference_id, created = conn.get_or_create(
            "conference", {"conference_id": "abc", "app_id": 7},
            defaults={"title": "Weekly"})

A connection per thread: open one in each thread (the GIL is released during
database work). Errors are subclasses of nodup.Error carrying .code,
.sqlstate and .constraint. For Django models see nodup.django.
"""

from ._nodup import (  # noqa: F401  (re-exported)
    Connection,
    ChangedError,
    ConflictError,
    ConnectError,
    ConstraintError,
    DatabaseError,
    DuplicateError,
    Error,
    NoColumnError,
    NoPrimaryKeyError,
    NoRunError,
    NoTableError,
    NullKeyError,
    OutOfMemoryError,
    PredicateError,
    ReferencedError,
    RetryError,
    UnbackedKeyError,
    UnsupportedError,
    URLError,
    UsageError,
    connect,
    libversion,
    slugify,
    strerror,
)

# The outcomes update_or_create returns.
CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"

__version__ = libversion

# MANY-KEYS: Connection.get_or_create_many arrives with the library's
# many-keys call (src/connection.c marks the place).

__all__ = [
    "connect", "Connection", "slugify", "strerror", "libversion",
    "CREATED", "UPDATED", "UNCHANGED",
    "Error", "UsageError", "URLError", "ConnectError", "NoTableError",
    "NoColumnError", "UnbackedKeyError", "NullKeyError", "ConstraintError",
    "RetryError", "PredicateError", "NoPrimaryKeyError", "DatabaseError",
    "ConflictError", "DuplicateError", "ReferencedError", "NoRunError",
    "ChangedError", "UnsupportedError", "OutOfMemoryError",
]
