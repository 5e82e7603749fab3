"""An instrumented app that handles secrets in every way an app does (issue 13, defect 2).

A sign-up stores an e-mail and a password hash from the request body with bound
parameters (a second sign-up fails with a unique violation whose message echoes them); a
reset link carries a token in its path; an endpoint raises with a token and an e-mail in
the message; an outgoing call sends a key in its query and a header. ``SECRETS_TABLE``
names the table, ``DOWNSTREAM_URL`` the outgoing call's target.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import latency_ledger

ENGINE = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLE = os.environ.get("SECRETS_TABLE", "ll_secrets_users")


async def signup(request: Request) -> PlainTextResponse:
    body: dict[str, Any] = await request.json()
    with ENGINE.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO {TABLE} (email, password_hash) VALUES (:email, :hash)"),
            {"email": body["email"], "hash": body["password_hash"]},
        )
    return PlainTextResponse("created", status_code=201)


async def reset(request: Request) -> PlainTextResponse:
    token = request.path_params["token"]
    with ENGINE.connect() as conn:
        found = conn.execute(
            sa.text(f"SELECT email FROM {TABLE} WHERE email = :t OR password_hash = :t"),
            {"t": token},
        ).first()
    answer = requests.get(
        os.environ["DOWNSTREAM_URL"],
        params={"api_key": request.headers["x-outgoing-key"]},
        headers={"Authorization": f"Bearer {request.headers['x-outgoing-key']}"},
        timeout=5,
    )
    return PlainTextResponse(f"{found is not None} {answer.status_code}")


async def boom(request: Request) -> PlainTextResponse:
    raise ValueError(
        f"token {request.query_params['token']} for {request.query_params['email']} rejected"
    )


routes = [
    Route("/signup", signup, methods=["POST"]),
    Route("/reset/{token}", reset),
    Route("/boom", boom),
]
app = latency_ledger.instrument(Starlette(routes=routes))
