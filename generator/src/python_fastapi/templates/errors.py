"""Every error answer as an RFC 9457 problem document (`application/problem+json`).

`{type, title, status, detail, instance, errors?}`: `type` is one of the URIs below, `errors`
lists the members at fault as `{field, in, message, type}`, where `field` is a JSON Pointer into
the body (`/email`) or the name of a query or path parameter. Problems never echo what the client
sent (a refused password stays out of the answer) and a 500 never carries internals.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

_LOG = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
_BASE = "https://backforge.dev/problems/"
_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Invalid content"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(BaseModel):
    """The body of every error answer."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route for these error statuses, all problem documents."""
    return {
        status: {
            "model": Problem,
            "description": _SLUGS[status][1],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


class NotFoundError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ForbiddenError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConflictError(Exception):
    """409; `fields` names the members concerned, never the other row's values."""

    def __init__(self, message: str, fields: list[str]):
        super().__init__(message)
        self.message = message
        self.fields = fields


class FieldValidationError(Exception):
    """A 422 naming one member; `loc` is e.g. ["body", "customer_id"] or ["query", "sort"]."""

    def __init__(self, loc: list[str], message: str, type_: str):
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.type = type_


def _field(loc: Sequence[Any]) -> tuple[str, str]:
    parts = [str(part) for part in loc]
    if not parts:
        return "", "body"
    where, rest = parts[0], parts[1:]
    if where == "body":
        # The whole body is the empty pointer; "/" would name a member called "".
        return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in rest), "body"
    return ".".join(rest), where


def problem(
    request: Request,
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    slug, title = _SLUGS.get(status, ("error", "Error"))
    content: dict[str, Any] = {
        "type": _BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        content["errors"] = errors
    return JSONResponse(status_code=status, content=content, media_type=MEDIA_TYPE, headers=headers)


def _error(loc: Sequence[Any], message: str, type_: str) -> dict[str, str]:
    field, where = _field(loc)
    return {"field": field, "in": where, "message": message, "type": type_}


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only the location, message and type of each error: Pydantic's `input` and `ctx` would
        # echo what was sent (a password, say).
        errors = [_error(e["loc"], e["msg"], e["type"]) for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(request, 400, "the body is not valid JSON", errors)
        return problem(request, 422, "the request breaks a rule of the API", errors)

    @app.exception_handler(FieldValidationError)
    async def _invalid(request: Request, exc: FieldValidationError) -> JSONResponse:
        return problem(request, 422, exc.message, [_error(exc.loc, exc.message, exc.type)])

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return problem(request, 404, exc.message)

    @app.exception_handler(ForbiddenError)
    async def _forbidden(request: Request, exc: ForbiddenError) -> JSONResponse:
        return problem(request, 403, exc.message)

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        errors = [_error(["body", f], exc.message, "conflict") for f in exc.fields]
        return problem(request, 409, exc.message, errors or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = (
            exc.detail
            if isinstance(exc.detail, str)
            else _SLUGS.get(exc.status_code, ("", "Error"))[1]
        )
        return problem(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _LOG.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, 500, "an unexpected error occurred")
