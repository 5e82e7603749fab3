"""Settings for the Django example shop.

SQLite in the temp directory by default (``SHOP_SQLITE_PATH`` moves it);
``DJANGO_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) switches to
PostgreSQL. ``LATENCY_LEDGER=1`` puts ``latency_ledger_django.LedgerMiddleware`` first in
``MIDDLEWARE``: the one line a user adds. ``SHOP_DOWNSTREAM_URL`` is the rates service
(examples/downstream.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = BASE_DIR.parent
if str(EXAMPLES_DIR) not in sys.path:  # the FastAPI shop's pure pricing module is reused
    sys.path.append(str(EXAMPLES_DIR))

SECRET_KEY = "example-only-not-secret"  # an example, never deployed
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
INSTALLED_APPS = ["storefront"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]
if os.environ.get("LATENCY_LEDGER") == "1":
    MIDDLEWARE.insert(0, "latency_ledger_django.LedgerMiddleware")
ROOT_URLCONF = "django_shop.urls"
WSGI_APPLICATION = "django_shop.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
APPEND_SLASH = False
LOGGING_CONFIG = None  # keep the example's output to the servers' own logs


def _database(url: str | None) -> dict[str, object]:
    if not url:
        default = Path(tempfile.gettempdir()) / "latency-ledger-django-shop.sqlite3"
        name = os.environ.get("SHOP_SQLITE_PATH") or str(default)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgres", "postgresql"):
        raise ValueError(f"DJANGO_DATABASE_URL: only postgresql:// URLs are supported: {url}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
    }


DATABASES = {"default": _database(os.environ.get("DJANGO_DATABASE_URL"))}
SHOP_DOWNSTREAM_URL = os.environ.get("SHOP_DOWNSTREAM_URL", "http://127.0.0.1:8001")
