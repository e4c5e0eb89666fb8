"""nodup.django: Django's get_or_create, made race-free by nodup.

    from nodup.django import get_or_create

    conversation, created = get_or_create(
        Conversation, defaults={"title": "Hello"},
        context_type="agency_inquiry", context_id=agency.id, created_by=user)

Django's own QuerySet.get_or_create is check-then-insert: two requests both
miss, and both insert unless a unique constraint stops one, in which case
that one gets an IntegrityError it retries only on some paths. This helper
hands the call to libnodup instead, which makes the unique index the
arbiter: exactly one caller creates the row and every caller gets it.

What it takes from the model: the table (Meta.db_table), the columns of the
key (a ForeignKey `conference` is the column `conference_id`), the
constraint that backs exactly those fields (a UniqueConstraint, with its
`condition` compiled to SQL for the connection as Django's migrations
compile it; a unique_together entry; a unique=True field) and the database
the router picks for writes. A lookup no constraint backs is refused with
nodup.UnbackedKeyError before any query: it is the bug of a get_or_create
without a constraint (Django's documentation warns of it; the seed reports
show it in production).

The new row gets every column Django itself would insert: the key, the
defaults (callables called, as Django does), and the model's field defaults
and pre_save values (auto_now_add...) for the rest. The instance returned is
fetched by primary key through the model's base manager.

Connections: nodup keeps its own connection per thread and database alias,
opened from the alias's settings (SQLite: the database file; PostgreSQL:
NAME, USER, PASSWORD, HOST, PORT and libpq's OPTIONS), and reopened when
those change. A connection per thread, as nodup requires: threads never
share one. Its writes commit at once, outside any transaction.atomic()
block of Django's connection; on SQLite, call it outside a block that has
written (the block holds the write lock nodup would wait for).
"""

import datetime
import decimal
import os
import threading
import uuid

from django.db import connections, router
from django.db.models import UniqueConstraint

import nodup

__all__ = ["get_or_create", "close_connections"]

# libpq keywords passed on from DATABASES[...]["OPTIONS"]; Django's own
# options there (isolation_level, server_side_binding...) are not libpq's.
_LIBPQ_OPTIONS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "connect_timeout",
    "application_name", "options", "target_session_attrs", "service", "passfile",
    "keepalives", "keepalives_idle", "gssencmode", "channel_binding",
)

_local = threading.local()   # .conns: {alias: (url, nodup.Connection)}
_plans = {}                  # (Model, alias, vendor, key names) -> _Plan
_plans_lock = threading.Lock()


class _Plan:
    """What a (model, alias, key names) lookup needs, worked out once."""

    def __init__(self, table, key_fields, where, create_fields):
        self.table = table
        self.key_fields = key_fields        # model fields, in the caller's order
        self.where = where                  # the constraint's condition as SQL, or None
        self.create_fields = create_fields  # the other columns Django would insert


def get_or_create(Model, defaults=None, **key):
    """Return (instance, created) like Model.objects.get_or_create(defaults, **key),
    without its race: under any concurrency exactly one caller creates the row.

    `key` names model fields (ForeignKeys by name with an instance, or by their
    attname, `conference_id`, with the id); no lookups (`name__iexact`). The
    fields must be exactly those of a UniqueConstraint (its condition becomes
    the key's predicate), a unique_together entry or a unique=True field:
    nodup.UnbackedKeyError otherwise. `defaults` (values, or callables) are
    used only when the row is created. Errors are nodup.Error subclasses
    (nodup.PredicateError for a key outside a partial constraint's condition,
    nodup.ConstraintError for another constraint). A connection per thread is
    kept for you; see the module's documentation for transactions.
    """
    if not key:
        raise nodup.UsageError("get_or_create needs at least one key field")
    alias = router.db_for_write(Model)
    dj = connections[alias]
    plan = _plan(Model, alias, dj, tuple(key))
    params = dict(key)
    for name, value in (defaults or {}).items():
        params[name] = value() if callable(value) else value
    obj = Model(**params)
    key_values = {f.column: _db_value(f, obj, dj) for f in plan.key_fields}
    create_values = {f.column: _db_value(f, obj, dj) for f in plan.create_fields
                     if not (f is Model._meta.auto_field and obj.pk is None)}
    pk, created = _connection(alias, dj).get_or_create(
        plan.table, key_values, create_values, where=plan.where)
    # str(pk) is the library's own text (an int id is one in canonical form):
    # the pk field converts it, where an int would be misread by a UUIDField.
    return Model._base_manager.db_manager(alias).get(pk=str(pk)), created


def close_connections():
    """Close the calling thread's nodup connections (they also close when the
    thread ends). The next get_or_create in this thread opens a new one."""
    conns = getattr(_local, "conns", {})
    while conns:
        conns.popitem()[1][1].close()


def _plan(Model, alias, dj, names):
    plan_key = (Model, alias, dj.vendor, names)
    plan = _plans.get(plan_key)
    if plan is None:
        plan = _make_plan(Model, dj, names)
        with _plans_lock:
            _plans[plan_key] = plan
    return plan


def _make_plan(Model, dj, names):
    meta = Model._meta
    fields = []
    for name in names:
        if "__" in name:
            raise nodup.UsageError(
                f"{Model.__name__}: {name!r} is a lookup; nodup.django.get_or_create "
                "takes plain fields, the key a unique constraint compares with =")
        field = meta.get_field(name)
        if not getattr(field, "concrete", False) or field.many_to_many:
            raise nodup.UsageError(f"{Model.__name__}.{name} is not a column of the table")
        if field.model._meta.db_table != meta.db_table:
            raise nodup.UsageError(
                f"{Model.__name__}.{name} lives in the parent table "
                f"{field.model._meta.db_table} (multi-table inheritance): not supported")
        fields.append(field)
    where = _backing_condition(Model, dj, fields)
    keys = set(fields)
    create = [f for f in meta.local_concrete_fields if f not in keys]
    return _Plan(meta.db_table, fields, where, create)


def _backing_condition(Model, dj, fields):
    """The condition of the constraint backing exactly `fields` (None: one
    without condition), or raise UnbackedKeyError naming what would back it."""
    meta = Model._meta
    wanted = {f.column for f in fields}

    def columns(field_names):
        return {meta.get_field(n).column for n in field_names}

    plain = [f.name for f in meta.local_concrete_fields if f.unique and {f.column} == wanted]
    plain += [names for names in meta.unique_together if columns(names) == wanted]
    partial = []
    for c in meta.constraints:
        if isinstance(c, UniqueConstraint) and c.fields and columns(c.fields) == wanted:
            if c.condition is None:
                plain.append(c.name)
            else:
                partial.append(c)
    if plain:
        return None
    if len(partial) == 1:
        # Django's own path for the index's WHERE (UniqueConstraint's
        # _get_condition_sql, as migrations run it), values quoted by the
        # schema editor: the same text the index was created with.
        return partial[0]._get_condition_sql(Model, dj.schema_editor())
    names = [f.name for f in fields]
    if partial:
        raise nodup.UsageError(
            f"{Model.__name__}: several conditional UniqueConstraints cover "
            f"({', '.join(names)}): {', '.join(c.name for c in partial)}; "
            "nodup cannot tell which one a lookup means")
    raise nodup.UnbackedKeyError(
        f"{Model.__name__}: no UniqueConstraint, unique_together entry or unique=True "
        f"field covers exactly ({', '.join(names)}), so concurrent get_or_create calls "
        f"would create duplicates. Add to {Model.__name__}.Meta: constraints = "
        f"[models.UniqueConstraint(fields={names!r}, name='...')] and migrate.")


def _db_value(field, obj, dj):
    """The value Django would write for `field` of the unsaved `obj`, as one
    of the types nodup takes (str, int, float, bool, None)."""
    value = field.get_db_prep_save(field.pre_save(obj, add=True), connection=dj)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta,
                          decimal.Decimal, uuid.UUID)):
        return str(value)  # the text each engine's input function reads
    raise TypeError(f"{field.model.__name__}.{field.name}: nodup cannot pass a "
                    f"{type(value).__name__} value ({value!r})")


def _connection(alias, dj):
    """This thread's nodup connection for `alias`, (re)opened from its settings."""
    url = _url(dj)
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    held = conns.get(alias)
    if held and held[0] == url:
        return held[1]
    if held:
        held[1].close()
    conn = nodup.connect(url)
    conns[alias] = (url, conn)
    return conn


def _url(dj):
    s = dj.settings_dict
    if dj.vendor == "sqlite":
        name = str(s["NAME"] or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            raise nodup.UsageError(
                "an in-memory SQLite database: nodup needs a database file its own "
                "connection can open (for tests, set DATABASES[...]['TEST']['NAME'])")
        return name if name.startswith("file:") else "sqlite:" + os.path.abspath(name)
    if dj.vendor == "postgresql":
        words = [("dbname", s.get("NAME")), ("user", s.get("USER")),
                 ("password", s.get("PASSWORD")), ("host", s.get("HOST")),
                 ("port", s.get("PORT"))]
        options = s.get("OPTIONS") or {}
        words += [(k, options[k]) for k in _LIBPQ_OPTIONS if k in options]
        return " ".join(f"{k}={_conninfo_quote(v)}" for k, v in words if v not in (None, ""))
    raise nodup.UsageError(f"nodup supports SQLite and PostgreSQL, not {dj.vendor}")


def _conninfo_quote(value):
    """A libpq conninfo value: single-quoted, backslash and quote escaped."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
