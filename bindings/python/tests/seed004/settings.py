"""Settings of the seed-004 project: the smallest Django site whose view
creates a conversation per (agency, user) through nodup.django.

The database comes from the environment, set by tests/test_django.py:
NODUP_SEED_ENGINE (sqlite3 or postgresql), NODUP_SEED_NAME (a file path or
a database name), and for PostgreSQL NODUP_SEED_HOST and NODUP_SEED_USER.
"""
import os

SECRET_KEY = "seed004-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["seed004.conversations"]
MIDDLEWARE = []
ROOT_URLCONF = "seed004.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends." + os.environ.get("NODUP_SEED_ENGINE", "sqlite3"),
        "NAME": os.environ.get("NODUP_SEED_NAME", ""),
        "HOST": os.environ.get("NODUP_SEED_HOST", ""),
        "USER": os.environ.get("NODUP_SEED_USER", ""),
    }
}
