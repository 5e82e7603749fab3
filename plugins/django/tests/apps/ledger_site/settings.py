import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["latency_ledger_django.LedgerMiddleware"]
ROOT_URLCONF = "ledger_site.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "CONN_MAX_AGE": 600,
    }
}
USE_TZ = True
LOGGING_CONFIG = None
# output_dir and keep_spans come from LATENCY_LEDGER_* variables set by the test
LATENCY_LEDGER = {"service_name": os.environ.get("LEDGER_SERVICE", "ledger-site")}
