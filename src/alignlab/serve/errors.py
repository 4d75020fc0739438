"""How the server refuses: OpenAI-style JSON errors, and a request-body size limit.

422 names the invalid field, 400 states a context limit or a refused request, 413 refuses
an oversized body (chunked ones too), 502 reports an unreachable upstream, and anything
unexpected answers 500 while the server keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from alignlab.errors import AlignlabError, ContextLengthError, EndpointError
from alignlab.serve.schemas import error_body

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """ASGI middleware answering 413 to request bodies over ``max_bytes`` (chunked ones too)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body(
            f"request body exceeds {self.max_bytes} bytes", "invalid_request_error", code="too_large"
        )
        await JSONResponse(body, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p != "body") or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return JSONResponse(error_body(message, "invalid_request_error", param=field), status_code=422)

    @app.exception_handler(ContextLengthError)
    async def too_long(request: Request, exc: ContextLengthError) -> JSONResponse:
        body = error_body(str(exc), "invalid_request_error", param="messages", code="context_length_exceeded")
        return JSONResponse(body, status_code=400)

    @app.exception_handler(EndpointError)
    async def upstream(request: Request, exc: EndpointError) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "upstream_error"), status_code=502)

    @app.exception_handler(AlignlabError)
    async def refused(request: Request, exc: AlignlabError) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "invalid_request_error"), status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(
            error_body(f"internal error: {type(exc).__name__}", "server_error"), status_code=500
        )
