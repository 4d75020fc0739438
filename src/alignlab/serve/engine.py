"""The serving engine: queues concurrent requests and decodes them in batches.

One worker thread owns the model and hands each token to its request's asyncio queue.
With a backend that supports it (the in-process ``hf`` backend), batching is continuous:
between two decoding steps the worker admits every request waiting, up to ``max_batch``
rows, so a request arriving mid-answer starts after one step instead of waiting for the
batch before it. Other backends get static batches: the worker takes every request waiting
and decodes them together. A request is never dropped: it waits for a free row. A request
whose client went away is cancelled at its next token. An exception while decoding fails
the requests decoding at that moment only; the worker goes on.

A batch either computes hidden states for every row or for none. A request that needs them
(a guard's probe) arriving while a batch without them runs stops that batch admitting, and
starts the next one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from alignlab.models.base import Backend, ContinuousBackend, Prompt, Request, SamplingParams, TokenEvent

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

    def __init__(self, backend: Backend, *, max_batch: int = 32, batch_window: float = 0.05) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.batch_window = batch_window
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._held: list[Job] = []  # taken from the queue but left for the next batch (worker thread only)
        self._live: set[int] = set()  # jobs being decoded now (worker thread writes)
        self.finished: Counter[str] = Counter()
        """How decoded requests ended, by finish reason (``error`` for a failed decode)."""
        self._thread = threading.Thread(target=self._run, name="alignlab-engine", daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        """Requests being decoded right now (0 once every client has finished or left)."""
        return len(self._live)

    def _started(self, job: Job) -> None:
        self._live.add(id(job))

    def _ended(self, job: Job, reason: str) -> None:
        if id(job) in self._live:
            self._live.discard(id(job))
            self.finished[reason] += 1

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
        while self._held and len(batch) < self.max_batch:  # requests left over from the last batch go first
            batch.append(self._held.pop(0))
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
        while (first := self._held.pop(0) if self._held else self._queue.get()) is not None:
            if isinstance(self.backend, ContinuousBackend):
                self._continuous(self.backend, first)
                continue
            batch = self._take_batch(first)
            if batch:
                self._decode(batch)

    def _continuous(self, backend: ContinuousBackend, first: Job) -> None:
        """Decode from ``first`` on, admitting waiting requests between steps until none is left."""
        hidden = first.hidden_states
        running: dict[int, Job] = {}
        deferred: list[Job] = []  # need hidden states this batch does not compute: next batch
        starting = True

        def admit() -> list[Request]:
            nonlocal starting
            if starting:
                jobs, starting = self._take_batch(first), False
            else:
                jobs = self._waiting(self.max_batch - len(running)) if not deferred else []
            taken = []
            for job in jobs:
                if job.hidden_states and not hidden:
                    deferred.append(job)
                else:
                    running[id(job)] = job
                    self._started(job)
                    taken.append(Request(id(job), job.prompt, job.params))
            return taken

        try:
            events = backend.stream_continuous(
                admit, hidden_states=hidden, cancelled=lambda key: running[key].cancelled
            )
            for key, event in events:
                job = running[key]
                if isinstance(event, BaseException):
                    del running[key]
                    self._ended(job, "error")
                    job.put(event)
                    continue
                if not job.hidden_states and hidden:  # this batch computes activations; this row did not ask
                    if event.prompt:
                        continue
                    event.hidden = None
                job.put(event)
                if event.finish_reason is not None:
                    del running[key]
                    self._ended(job, event.finish_reason)
        except Exception as exc:  # one bad batch must not take the server down
            log.exception("decoding %d running requests failed", len(running))
            for job in running.values():
                self._ended(job, "error")
                job.put(exc)
        self._held = deferred + self._held  # they start the next batch, ahead of later arrivals

    def _waiting(self, room: int) -> list[Job]:
        """Requests already queued, up to ``room``, without waiting for more."""
        jobs: list[Job] = []
        while self._held and len(jobs) < room:
            jobs.append(self._held.pop(0))
        while len(jobs) < room:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # closing: leave the signal for the worker loop
                self._queue.put(None)
                break
            jobs.append(job)
        return [j for j in jobs if not j.cancelled]

    def _decode(self, batch: list[Job]) -> None:
        hidden = any(j.hidden_states for j in batch)
        for job in batch:
            self._started(job)
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
                if event.finish_reason is not None:
                    self._ended(job, event.finish_reason)
        except Exception as exc:  # one bad batch must not take the server down
            log.exception("decoding a batch of %d failed", len(batch))
            for job in batch:
                self._ended(job, "error")
                job.put(exc)
