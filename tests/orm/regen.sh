#!/usr/bin/env bash
# Regenerate django_sqlite.sql and django_pg.sql: the DDL Django itself
# writes for django_app/models.py (`manage.py sqlmigrate`), after the
# contenttypes app's own (its generic relations point into
# django_content_type), with Debian's
# python3-django (3.2) and, for PostgreSQL, python3-psycopg2 and a server
# to connect to (sqlmigrate asks it for its version): PGHOST names its
# socket directory. Run by hand when the models change; the tests read
# the committed files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/nodup-orm.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
/usr/bin/python3 -m django startproject proj >/dev/null
cd proj
/usr/bin/python3 manage.py startapp teams >/dev/null
cp "$here/django_app/models.py" teams/models.py
sed -i "s/'django.contrib.staticfiles',/'django.contrib.staticfiles', 'teams',/" proj/settings.py
cat >>proj/settings.py <<'PY'
import os
if os.environ.get('NODUP_ORM_PG'):
    DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'postgres',
                             'HOST': os.environ['PGHOST'], 'USER': 'postgres'}}
PY
/usr/bin/python3 manage.py makemigrations teams >/dev/null
ddl() {
  for m in "contenttypes 0001" "contenttypes 0002" "teams 0001"; do
    # shellcheck disable=SC2086 # app and migration: two words
    /usr/bin/python3 manage.py sqlmigrate $m
  done
}
ddl >"$here/django_sqlite.sql"
NODUP_ORM_PG=1 ddl >"$here/django_pg.sql"
