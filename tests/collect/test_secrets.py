"""Planted secrets never reach an output file (issue 13, defect 2: a failed INSERT put the
body's e-mail and password hash into the SERVER span's exception message and stack
trace; a reset token in the path was stored in ``url.path``).

A real app (uvicorn, SQLAlchemy on PostgreSQL, requests) is sent secrets through every
channel a request has: the body, query parameters, headers and cookies, the path, bound
parameters, an exception's message, an outgoing call's query and headers; with
``keep_spans=all`` and every request profiled. Then every file written (the traces, the
JSON and HTML reports) is searched for each secret.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from latency_ledger.commands import analyze_paths

pytestmark = [pytest.mark.server]
DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
APPS = Path(__file__).parent / "apps"

EMAIL = "dup-secret-7f3a@example.org"
PASSWORD_HASH = "$2b$12$" + "R9hcIPz0giURNNX3kh2OPST9PgBkqquziSs7KIUgO2t0jWMUWabcd"[:53]
BODY_ONLY = "body-only-Qm9vYmFy4242xyz"
QUERY = "qs-secret-Zk81Hq0pL2mN7xW4"
HEADER = "hdr-secret-Tq93Ls0Pz7Kw1Nv5"
COOKIE = "cookie-secret-Hs72Kd9Qp1Lm0Zx"
PATH_TOKEN = "rst_Gh72kLq90ZpXw3Nc8Vb1Mt5R"
PATH_EMAIL = "path-person-31@example.net"
EXC_TOKEN = "exc_Yt62Pq0Lm8Zx4Wc9Nv3Bk7J"
EXC_EMAIL = "exc-person-42@example.com"
OUTGOING = "out-secret-Lp04Xz8Mn2Qw6Rt"
SECRETS = {
    "e-mail in the body and bound parameters": EMAIL,
    "password hash in the body and bound parameters": PASSWORD_HASH,
    "a body field never used": BODY_ONLY,
    "query parameter": QUERY,
    "Authorization header": HEADER,
    "cookie": COOKIE,
    "token in a routed path": PATH_TOKEN,
    "e-mail in an unrouted path": PATH_EMAIL,
    "token in an exception message": EXC_TOKEN,
    "e-mail in an exception message": EXC_EMAIL,
    "key in an outgoing call's query and header": OUTGOING,
}


class _Downstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def downstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Downstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


@pytest.fixture
def table() -> Iterator[str]:
    try:
        conn = psycopg.connect(DSN, connect_timeout=2, autocommit=True)
    except psycopg.Error:
        pytest.skip("PostgreSQL on 127.0.0.1:5432 not reachable")
    name = f"ll_secrets_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE {name} (email text UNIQUE, password_hash text)")
    yield name
    conn.execute(f"DROP TABLE {name}")
    conn.close()


def test_planted_secrets_reach_no_output_file(
    tmp_path: Path, table: str, downstream: str, app_process: Callable[..., Any]
) -> None:
    traces = tmp_path / "traces"
    app = app_process(
        "secrets_app:app",
        env={
            "SECRETS_TABLE": table,
            "DOWNSTREAM_URL": downstream,
            "LATENCY_LEDGER_OUTPUT_DIR": str(traces),
            "LATENCY_LEDGER_KEEP_SPANS": "all",
            "LATENCY_LEDGER_PROFILE_RATE": "1",
            "LATENCY_LEDGER_EXPORT_INTERVAL_S": "0.1",
        },
    )
    headers = {
        "Authorization": f"Bearer {HEADER}",
        "Cookie": f"session={COOKIE}",
        "X-Outgoing-Key": OUTGOING,
    }
    body = {"email": EMAIL, "password_hash": PASSWORD_HASH, "note": BODY_ONLY}
    with app, httpx.Client(base_url=app.url, headers=headers, timeout=10) as client:
        assert client.post(f"/signup?password={QUERY}", json=body).status_code == 201
        # the same e-mail again: a unique violation echoing the bound parameters
        # (the app raises: uvicorn closes that connection after the 500, so the client
        # must not reuse it, or the next request races the close)
        again = client.post(f"/signup?password={QUERY}", json=body, headers={"Connection": "close"})
        assert again.status_code == 500
        assert client.get(f"/reset/{PATH_TOKEN}?api_key={QUERY}").status_code == 200
        assert client.get(f"/users/{PATH_EMAIL}/{PATH_TOKEN}").status_code == 404
        boom = client.get("/boom", params={"token": EXC_TOKEN, "email": EXC_EMAIL})
        assert boom.status_code == 500

    json_path, html_path = tmp_path / "report.json", tmp_path / "report.html"
    assert (
        analyze_paths(
            [str(traces)],
            json_path=json_path,
            html_path=html_path,
            targets=(),
            progress=False,
            quiet=True,
        )
        == 0
    )
    outputs = {path: path.read_text() for path in [*traces.glob("*.jsonl"), json_path, html_path]}
    written = "\n".join(outputs.values())
    # The channels were exercised: not a pass because nothing was recorded.
    assert "UniqueViolation" in written  # the failed INSERT's exception, scrubbed
    assert "[parameters: ?]" in written
    assert "INSERT INTO ll_secrets_" in written  # its statement, literals redacted
    assert "/reset/{token}" in written
    assert "/users/{email}/{id}" in written  # the unrouted path, collapsed
    assert "ValueError: token ? for ? rejected" in written
    assert downstream.split("//")[1] in written  # the outgoing call's span
    assert '"ledger.profile"' in written
    leaks = {
        (what, path.name)
        for what, secret in SECRETS.items()
        for path, text in outputs.items()
        # the secret, or a telling piece of it (its second half)
        if secret in text or secret[len(secret) // 2 :] in text
    }
    assert not leaks
