"""Template renders as INTERNAL spans: one per page, includes inside it, errors marked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.template import Context, Engine
from django.template.backends.jinja2 import Jinja2
from latency_ledger_django import plugin as published
from latency_ledger_django.templates import template_name
from opentelemetry.trace import SpanKind, StatusCode

PAGES = {
    "page.html": "{% for i in items %}{% include 'row.html' %}{% endfor %}",
    "row.html": "<b>{{ i }}</b>",
    "broken.html": "{{ thing.explode }}",
}


class Exploding:
    def explode(self) -> str:
        raise KeyError("boom")


@pytest.fixture
def plugin() -> Iterator[Any]:
    yield published
    published.uninstrument()


@pytest.fixture
def engine() -> Engine:
    return Engine(loaders=[("django.template.loaders.locmem.Loader", PAGES)])


def test_one_span_per_page_with_its_includes(spans: Any, plugin: Any, engine: Engine) -> None:
    plugin.instrument(spans.provider)
    html = engine.get_template("page.html").render(Context({"items": [1, 2, 3]}))
    assert html == "<b>1</b><b>2</b><b>3</b>"
    (span,) = spans.finished()
    assert span.name == "render page.html"
    assert span.kind == SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {"django.template.name": "page.html"}


def test_string_template_and_error(spans: Any, plugin: Any, engine: Engine) -> None:
    plugin.instrument(spans.provider)
    assert engine.from_string("hi {{ name }}").render(Context({"name": "x"})) == "hi x"
    with pytest.raises(KeyError, match="boom"):
        engine.get_template("broken.html").render(Context({"thing": Exploding()}))
    ok, failed = spans.finished()
    assert ok.name == "render <string>"
    assert failed.name == "render broken.html"
    assert failed.status.status_code == StatusCode.ERROR


def test_jinja2_backend(spans: Any, plugin: Any) -> None:
    plugin.instrument(spans.provider)
    backend = Jinja2({"NAME": "jinja", "DIRS": [], "APP_DIRS": False, "OPTIONS": {}})
    assert backend.from_string("{{ 1 + 2 }}").render() == "3"
    (span,) = spans.finished()
    assert span.name == "render <string>"


def test_uninstrument_restores_render(spans: Any, plugin: Any, engine: Engine) -> None:
    from django.template.base import Template

    original = Template.render
    plugin.instrument(spans.provider)
    assert Template.render is not original
    plugin.uninstrument()
    assert Template.render is original
    engine.from_string("x").render(Context())
    assert spans.finished() == ()


def test_template_name_fallbacks() -> None:
    class Named:
        name = "n.html"

    class Bare:
        pass

    assert template_name(Named()) == "n.html"
    assert template_name(Bare()) == "<string>"
