"""Every failure in one JSON shape, `{"error": {"code", "message"}}`, with the status that fits it.
The library's errors already say what went wrong and what to do; here they only get a status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vlmsearch.errors import (
    BadInputError,
    ConfigError,
    MissingWeightsError,
    ModelServerError,
    StoreError,
    StoreUnavailableError,
    TooLargeError,
    UnsupportedFileError,
    VlmsearchError,
)  # fmt: skip

log = logging.getLogger("vlmsearch.server")
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_type", 422: "invalid_request", 429: "busy"}  # fmt: skip


class ApiError(StarletteHTTPException):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(status, message)
        self.code = code or _CODES.get(status, "error")


def error_body(status: int, message: str, code: str | None = None) -> dict:
    return {"error": {"code": code or _CODES.get(status, "error"), "message": message}}


# The library's errors, most specific first, with the status and code each becomes.
_STATUSES = (
    (UnsupportedFileError, 415, "unsupported_type"),
    (TooLargeError, 413, "too_large"),
    (BadInputError, 400, "bad_input"),
    (ConfigError, 400, "bad_config"),
    (MissingWeightsError, 503, "model_unavailable"),
    (ModelServerError, 502, "model_server"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (StoreError, 500, "store"),
)


def _status_of(exc: VlmsearchError) -> tuple[int, str]:
    return next(((status, code) for kind, status, code in _STATUSES if isinstance(exc, kind)), (400, "error"))


INTERNAL = "the server failed on this request; its log has the details"


def streamed_error(exc: Exception) -> dict:
    """The error of a response already under way (its status line is sent): the body to send last."""
    if isinstance(exc, VlmsearchError):
        status, code = _status_of(exc)
        return error_body(status, str(exc), code)
    log.error("a request failed while streaming", exc_info=exc)
    return error_body(500, INTERNAL, "internal")


def install(app: FastAPI) -> None:
    @app.exception_handler(VlmsearchError)
    async def library_error(request: Request, exc: VlmsearchError) -> JSONResponse:
        status, code = _status_of(exc)
        return JSONResponse(error_body(status, str(exc), code), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None)
        return JSONResponse(error_body(exc.status_code, str(exc.detail), code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
        return JSONResponse(error_body(422, f"{where}: {first.get('msg')}"), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, INTERNAL, "internal"), status_code=500)
