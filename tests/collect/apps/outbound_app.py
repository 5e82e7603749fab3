"""An instrumented app whose one endpoint calls out with ``requests`` (issue 13, defect 1).

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the collector exports over HTTP with the same
library the requests plugin instruments: the loop this app exists to catch.
``DOWNSTREAM_URL`` is what the endpoint calls.
"""

from __future__ import annotations

import os

import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import latency_ledger


async def call(request: Request) -> PlainTextResponse:
    answer = requests.get(os.environ["DOWNSTREAM_URL"], timeout=5)
    return PlainTextResponse(str(answer.status_code))


app = latency_ledger.instrument(Starlette(routes=[Route("/call", call)]))
