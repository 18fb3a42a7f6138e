"""What REST routes share: the caller's token, the JSON body parsed into its `Body` model (a bad
one is the seeds' 400 naming the field, never FastAPI's 422), and the request bodies' schemas
for the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from common.errors import InvalidArgument
from coordinator.api.base import Api
from coordinator.auth import bearer

B = TypeVar("B", bound=BaseModel)

# Request-body models named in the document (`request_body`); rest.py adds their schemas to
# the document's components.
DOCUMENTED: dict[str, type[BaseModel]] = {}


def api(request: Request) -> Api:
    return Api(request.app.state.convoy)


def token(request: Request) -> str:
    return bearer(request.headers.get("authorization"))


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (400 when it is not one)."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}", parameter="body") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object", parameter="body")
    return body


def parse(model: type[B], data: dict[str, Any]) -> B:
    """`data` as `model`, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "extra_forbidden":
            raise InvalidArgument(f"unknown field {name!r}", parameter=name) from None
        raise InvalidArgument(f"{name}: {first['msg']}", parameter=name) from None


async def body(request: Request, model: type[B]) -> B:
    return parse(model, await json_object(request))


def request_body(model: type[BaseModel], *, required: bool = True,
                 media_type: str = "application/json") -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: the body's schema in the document."""
    DOCUMENTED[model.__name__] = model
    return {"requestBody": {"required": required, "content": {
        media_type: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def documented_schemas() -> dict[str, Any]:
    """The components of every `request_body` model (nested models beside them)."""
    out: dict[str, Any] = {}
    for name, model in DOCUMENTED.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out
