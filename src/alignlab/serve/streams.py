"""Event streams of the server: several choices interleaved, and server-sent events with errors in-band."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from alignlab.errors import AlignlabError
from alignlab.models.base import TokenEvent
from alignlab.serve.schemas import error_body

log = logging.getLogger("alignlab.serve.app")


async def merged(
    streams: list[AsyncIterator[TokenEvent]],
) -> AsyncGenerator[tuple[int, TokenEvent], None]:
    """Interleave several event streams as events arrive; closing this closes them all."""
    if len(streams) == 1:
        async for event in streams[0]:
            yield 0, event
        return
    out: asyncio.Queue[tuple[int, TokenEvent | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[TokenEvent]) -> None:
        try:
            async for event in stream:
                await out.put((i, event))
        except BaseException as exc:
            await out.put((i, exc))
            raise
        finally:
            await out.put((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            i, item = await out.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()


async def prepend(
    first: tuple[int, TokenEvent] | None, rest: AsyncGenerator[tuple[int, TokenEvent], None]
) -> AsyncIterator[tuple[int, TokenEvent]]:
    try:
        if first is not None:
            yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


async def sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """Server-sent events; an error mid-stream becomes an error event, then ``[DONE]``."""
    try:
        async for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
    except AlignlabError as exc:
        yield f"data: {json.dumps(error_body(str(exc), 'invalid_request_error'))}\n\n"
    except Exception as exc:
        log.exception("stream failed")
        yield f"data: {json.dumps(error_body(f'internal error: {type(exc).__name__}', 'server_error'))}\n\n"
    yield "data: [DONE]\n\n"
