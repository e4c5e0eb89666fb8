"""nodup.django on a small Django project (tests/seed004) on this run's
backend: the helper's mapping of models to keys, its refusal of a lookup no
constraint backs (seed 001), and seed 004 itself: 32 concurrent HTTP requests
to a view that creates a conversation answer exactly one 201 per key."""
import json
import os
import socketserver
import threading
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest

import nodup
from conftest import BACKEND, PG_ADMIN


@pytest.fixture(scope="module")
def models(request, tmp_path_factory):
    """Django set up on a fresh database (a new file, or this run's PostgreSQL
    database), with the seed project's tables; the models module."""
    if BACKEND == "pg":
        name = request.getfixturevalue("pg_database")
        words = dict(w.split("=", 1) for w in PG_ADMIN.split())
        os.environ.update(NODUP_SEED_ENGINE="postgresql", NODUP_SEED_NAME=name,
                          NODUP_SEED_HOST=words["host"], NODUP_SEED_USER=words["user"])
    else:
        path = tmp_path_factory.mktemp("django") / "seed.sqlite3"
        os.environ.update(NODUP_SEED_ENGINE="sqlite3", NODUP_SEED_NAME=str(path))
    os.environ["DJANGO_SETTINGS_MODULE"] = "seed004.settings"
    import django
    django.setup()
    from django.apps import apps
    from django.db import connection
    with connection.schema_editor() as editor:  # the tables and constraints, as migrate makes them
        for model in apps.get_app_config("conversations").get_models():
            editor.create_model(model)
    from seed004.conversations import models
    yield models
    import nodup.django
    nodup.django.close_connections()


@pytest.fixture
def account(models):
    return models.Account.objects.create(name="agency")


def test_created_then_existing(models, account):
    from nodup.django import get_or_create
    c, created = get_or_create(models.Conversation, defaults={"subject": "hello"},
                               context_type="agency_inquiry", context_id=1, created_by=account)
    assert created and isinstance(c, models.Conversation)
    assert (c.subject, c.is_open, c.created_by_id) == ("hello", True, account.pk)
    assert c.created_at is not None  # auto_now_add: what Django itself inserts
    again, created = get_or_create(models.Conversation, defaults={"subject": "other"},
                                   context_type="agency_inquiry", context_id=1,
                                   created_by_id=account.pk)  # the FK by its attname
    assert (again.pk, created, again.subject) == (c.pk, False, "hello")


def test_callable_defaults_and_bool(models, account):
    from nodup.django import get_or_create
    c, created = get_or_create(models.Conversation,
                               defaults={"subject": lambda: "made", "is_open": False},
                               context_type="agency_inquiry", context_id=2, created_by=account)
    assert created and c.subject == "made" and c.is_open is False


def test_partial_constraint_on_a_bool(models):
    from nodup.django import get_or_create
    t, created = get_or_create(models.Team, title="core")
    assert created and t.is_active
    assert get_or_create(models.Team, title="core") == (t, False)
    # A key outside the constraint's condition: no index covers it.
    with pytest.raises(nodup.PredicateError):
        get_or_create(models.Team, defaults={"is_active": False}, title="old")


def test_seed001_unbacked_lookup_refused(models, account):
    from nodup.django import get_or_create
    with pytest.raises(nodup.UnbackedKeyError, match="UniqueConstraint") as e:
        get_or_create(models.Conference, conference_id="c1", app=account)
    assert e.value.code == 7
    assert not models.Conference.objects.exists()
    # A narrower lookup than the constraint is refused too.
    with pytest.raises(nodup.UnbackedKeyError):
        get_or_create(models.Conversation, context_type="agency_inquiry", context_id=1)


def test_unique_together_and_unique_field(models, account):
    from nodup.django import get_or_create
    p, created = get_or_create(models.Participant, participant_id="p1", app=account)
    assert created
    assert get_or_create(models.Participant, app=account, participant_id="p1") == (p, False)
    q, created = get_or_create(models.Participant, defaults={"participant_id": "p2",
                                                             "app": account}, code="X1")
    assert created and q.participant_id == "p2"
    with pytest.raises(nodup.ConstraintError):  # (p1, account) is taken
        get_or_create(models.Participant, defaults={"participant_id": "p1", "app": account},
                      code="X2")


def test_uuid_primary_key(models):
    from nodup.django import get_or_create
    invite, created = get_or_create(models.Invite, email="a@example.org")
    assert created and invite.id.version == 4
    assert get_or_create(models.Invite, email="a@example.org") == (invite, False)


def test_lookups_refused(models):
    from nodup.django import get_or_create
    with pytest.raises(nodup.UsageError, match="lookup"):
        get_or_create(models.Team, title__iexact="core")
    with pytest.raises(nodup.UsageError):
        get_or_create(models.Team)


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """Django's WSGI handler on wsgiref, a thread per request."""
    daemon_threads = True
    request_queue_size = 64  # 32 connections arrive at once


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(models):
    from django.core.wsgi import get_wsgi_application
    httpd = ThreadingWSGIServer(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_wsgi_application())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/conversations"
    httpd.shutdown()
    httpd.server_close()


def post_at_once(url, bodies):
    """POST every body from a thread of its own, all released together;
    [(status, id or error text)] in the bodies' order."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = threading.Barrier(len(bodies))
    out = [None] * len(bodies)

    def one(i):
        req = urllib.request.Request(url, data=json.dumps(bodies[i]).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        start.wait()
        try:
            with opener.open(req, timeout=60) as r:
                out[i] = (r.status, json.loads(r.read())["id"])
        except urllib.error.HTTPError as e:
            out[i] = (e.code, e.read().decode(errors="replace")[:300])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def check_one_creator(models, bodies, answers):
    keys = {json.dumps(b, sort_keys=True) for b in bodies}
    for key in keys:
        mine = [a for b, a in zip(bodies, answers) if json.dumps(b, sort_keys=True) == key]
        statuses = sorted(status for status, _ in mine)
        assert statuses == [200] * (len(mine) - 1) + [201], f"{key}: {mine}"
        assert len({id_ for _, id_ in mine}) == 1, f"{key}: different ids {mine}"
        b = json.loads(key)
        assert models.Conversation.objects.filter(
            context_type=b["context_type"], context_id=b["context_id"],
            created_by_id=b["created_by"]).count() == 1


def test_seed004_32_concurrent_requests_one_201(models, server, account):
    body = {"context_type": "agency_inquiry", "context_id": 4, "created_by": account.pk,
            "subject": "hello"}
    bodies = [body] * 32
    answers = post_at_once(server, bodies)
    check_one_creator(models, bodies, answers)
    # Four keys, eight requests each, all at once.
    bodies = [dict(body, context_id=100 + i % 4) for i in range(32)]
    answers = post_at_once(server, bodies)
    check_one_creator(models, bodies, answers)
    assert len({id_ for _, id_ in answers}) == 4
