"""Every route's path, query and body fields use the edge types of `domain.inputs` /
`service.inputs`: a route added with a bare `str` or `int` id fails here before it can answer
500 on PostgreSQL (issue 14). No database needed: this reads the app's declarations."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel

from domain import inputs
from service.app import create_app

TEXT_CHECKS = {inputs.refuse_in_line.func, inputs.refuse_in_text.func}


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif getattr(route, "original_router", None) is not None:  # an included router
            yield from _routes(route.original_router.routes)


def _params(dependant: Any) -> Iterator[tuple[str, Any]]:
    for kind in ("path", "query", "header", "cookie", "body"):
        for param in getattr(dependant, f"{kind}_params"):
            yield kind, param
    for sub in dependant.dependencies:
        yield from _params(sub)


def _metadata(annotation: Any) -> Iterator[Any]:
    """Every Annotated metadata item anywhere in a type (unions, lists, aliases)."""
    if typing.get_origin(annotation) is typing.Annotated:
        yield from annotation.__metadata__
    for arg in typing.get_args(annotation):
        yield from _metadata(arg)


def _types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in typing.get_args(annotation):
        if not isinstance(arg, str | int):
            yield from _types(arg)


def _fields(where: str, name: str, annotation: Any, metadata: list[Any]) -> Iterator[tuple]:
    """(where, name, plain types, metadata) of a field and of every model field inside it."""
    meta = [*metadata, *_metadata(annotation)]
    types = list(_types(annotation))
    yield where, name, types, meta
    for t in types:
        if isinstance(t, type) and issubclass(t, BaseModel):
            for sub, info in t.model_fields.items():
                yield from _fields(f"{where} {t.__name__}", sub, info.annotation, info.metadata)


def _all_fields() -> list[tuple]:
    out: list[tuple] = []
    for route in _routes(create_app().routes):
        for kind, param in _params(route.dependant):
            info = param.field_info
            where = f"{sorted(route.methods or ())[0]} {route.path} ({kind})"
            out.extend(_fields(where, param.name, info.annotation, info.metadata))
    return out


def test_every_text_field_refuses_control_characters() -> None:
    bare = [
        f"{where}: {name}"
        for where, name, types, meta in _all_fields()
        if str in types
        and not any(isinstance(m, AfterValidator) and m.func in TEXT_CHECKS for m in meta)
    ]
    assert not bare, "use domain.inputs.Line or Text for: " + ", ".join(bare)


def _le(meta: list[Any]) -> int | None:
    return next((m.le for m in meta if getattr(m, "le", None) is not None), None)


def test_every_id_and_offset_is_bounded() -> None:
    fields = _all_fields()
    assert len(fields) > 40  # the walk sees the routes and their bodies
    unbounded = []
    for where, name, types, meta in fields:
        if int not in types:
            continue
        if "(path)" in where and where.count(" ") == 2:  # a path parameter, not a body field
            ok = any(
                isinstance(m, AfterValidator) and m.func.__module__ == "service.inputs"
                for m in meta
            )
        elif name.endswith("_id"):
            ok = _le(meta) == inputs.DB_ID_MAX
        elif name == "offset":
            ok = _le(meta) == inputs.OFFSET_MAX
        else:
            continue
        if not ok:
            unbounded.append(f"{where}: {name}")
    assert not unbounded, "use service.inputs / domain.inputs id types for: " + ", ".join(unbounded)
