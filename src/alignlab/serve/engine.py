"""The serving engine: queues concurrent requests and decodes them in batches.

One worker thread owns the model. Requests wait in a queue; the worker takes every
request waiting (up to ``max_batch``), decodes them as one batch and hands each token to
its request's asyncio queue. A request is never dropped: it waits for the next batch. A
request whose client went away is cancelled at its next token. An exception while
decoding fails that batch's requests only; the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from alignlab.models.base import Backend, Prompt, SamplingParams, TokenEvent

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's prompt, parameters and the queue its events go to."""

    prompt: Prompt
    params: SamplingParams
    hidden_states: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[TokenEvent | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False

    def put(self, item: TokenEvent | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, item)


class Engine:
    """Batches concurrent generation requests onto one backend.

    Args:
        backend: the model.
        max_batch: most rows decoded together.
        batch_window: seconds to wait for more requests after the first one arrives.
    """

    def __init__(self, backend: Backend, *, max_batch: int = 16, batch_window: float = 0.05) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.batch_window = batch_window
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alignlab-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def submit(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> AsyncGenerator[TokenEvent, None]:
        """Queue a request and stream its events; leaving the loop early cancels it."""
        job = Job(prompt, params, hidden_states, asyncio.get_running_loop())
        self._queue.put(job)
        try:
            while True:
                item = await job.events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            job.cancelled = True  # the client left (or finished): stop spending compute on it

    def _take_batch(self, first: Job) -> list[Job]:
        batch = [first]
        deadline = self.batch_window
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get(timeout=deadline)
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            batch.append(job)
            deadline = 0.01
        return [j for j in batch if not j.cancelled]

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = self._take_batch(first)
            if batch:
                self._decode(batch)

    def _decode(self, batch: list[Job]) -> None:
        hidden = any(j.hidden_states for j in batch)
        try:
            events = self.backend.stream_batch(
                [j.prompt for j in batch],
                [j.params for j in batch],
                hidden_states=hidden,
                cancelled=lambda row: batch[row].cancelled,
            )
            for row, event in events:
                job = batch[row]
                if not job.hidden_states and hidden:  # another row asked for activations; this one did not
                    if event.prompt:
                        continue
                    event.hidden = None
                job.put(event)
        except Exception as exc:  # one bad batch must not take the server down
            log.exception("decoding a batch of %d failed", len(batch))
            for job in batch:
                job.put(exc)
