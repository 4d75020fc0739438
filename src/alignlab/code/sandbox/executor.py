"""Where programs run: the local sandbox, or sandboxes on the workers of a Dask cluster.

An :class:`Executor` runs :class:`~alignlab.code.sandbox.Program` s and yields their
outcomes in order; :class:`~alignlab.code.sandbox.Sandbox` is the local one. The Dask
executor sends programs in chunks to the workers of a cluster (``dask://HOST:PORT``) or
of a cluster it starts on this machine, bound to 127.0.0.1 (``dask-local``). Each Dask
worker process runs the chunks it gets in its own :class:`Sandbox` with one warm fork
server, started on the first chunk and kept for the next ones, so every program is
confined and limited exactly as it would be locally and the verdicts are the same.

Dask is an optional dependency (the ``code`` extra), imported only when a Dask executor
starts. The cluster's workers must have alignlab installed; programs and outcomes travel
through Dask's own protocol, which trusts the scheduler: use a cluster of your own.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

from alignlab.code.sandbox.namespaces import Isolation
from alignlab.code.sandbox.pool import IsolationWarning, Outcome, Program, Sandbox, SandboxConfig
from alignlab.errors import ConfigError, DependencyError, SandboxError

LOCAL = "local"
DASK_LOCAL = "dask-local"
DASK_SCHEME = "dask://"


class Executor(Protocol):
    """Runs programs and reports the isolation its sandboxes achieved."""

    isolation: Isolation | None

    def start(self) -> None:
        """Get ready to run (start workers, connect)."""
        ...

    def map(self, programs: Iterable[Program]) -> Iterator[Outcome]:
        """Run programs, yielding outcomes in the order given."""
        ...

    def close(self) -> None:
        """Release what :meth:`start` took."""
        ...


def make_executor(spec: str, config: SandboxConfig, *, chunk_size: int = 16) -> Executor:
    """An executor for ``spec``: ``local``, ``dask-local`` or ``dask://HOST:PORT``.

    Args:
        spec: where programs run.
        config: the sandbox settings; ``config.workers`` is the local sandbox's size, or the
            number of Dask workers ``dask-local`` starts (0: one per core).
        chunk_size: programs per Dask task.

    Raises:
        ConfigError: ``spec`` names no executor.
    """
    if spec == LOCAL:
        return Sandbox(config)
    if spec == DASK_LOCAL or (spec.startswith(DASK_SCHEME) and len(spec) > len(DASK_SCHEME)):
        return DaskExecutor(spec, config, chunk_size=chunk_size)
    raise ConfigError(f"unknown executor {spec!r}: use {LOCAL}, {DASK_LOCAL} or {DASK_SCHEME}HOST:PORT")


class DaskExecutor:
    """Runs programs in chunks on a Dask cluster, in one warm sandbox per Dask worker process.

    Args:
        spec: ``dask-local`` (start a cluster on 127.0.0.1) or ``dask://HOST:PORT`` (connect).
        config: the sandbox settings used on every Dask worker.
        chunk_size: programs per Dask task.

    Raises:
        DependencyError: (on start) ``dask[distributed]`` is not installed.
        SandboxError: (on start or while mapping) a Dask worker's sandbox could not start.
    """

    def __init__(self, spec: str, config: SandboxConfig, *, chunk_size: int = 16) -> None:
        self.spec = spec
        self.config = config
        self.chunk_size = max(1, chunk_size)
        self.isolation: Isolation | None = None
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect to the cluster (or start the local one) and learn the isolation achieved."""
        if self._client is not None:
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise DependencyError("dask[distributed]", "code") from exc
        if self.spec == DASK_LOCAL:
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                host="127.0.0.1",
                dashboard_address=None,
                n_workers=self.config.workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
            )
            self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
        else:
            self._client = Client("tcp://" + self.spec.removeprefix(DASK_SCHEME))  # type: ignore[no-untyped-call]
        report = self._client.submit(worker_isolation, self.config, pure=False).result()
        self.isolation = Isolation.from_dict(report)
        if self.isolation.warnings:
            message = "code sandbox isolation is incomplete: " + "; ".join(self.isolation.warnings)
            warnings.warn(message + " (on the Dask workers)", IsolationWarning, stacklevel=2)

    def map(self, programs: Iterable[Program]) -> Iterator[Outcome]:
        """Run programs in chunks across the cluster, yielding outcomes in the order given.

        A few chunks per worker are in flight, so a long iterable is consumed lazily.
        """
        self.start()
        window: deque[Any] = deque()
        depth = 2 * max(1, len(self._client.scheduler_info(n_workers=-1).get("workers", {})))
        stream = iter(programs)
        try:
            while chunk := list(islice(stream, self.chunk_size)):
                window.append(self._client.submit(run_chunk, chunk, self.config, pure=False))
                if len(window) >= depth:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def close(self) -> None:
        """Disconnect, and stop the cluster if this executor started it."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


# One sandbox per (Dask worker) process and config, kept warm between chunks.
_SANDBOXES: dict[SandboxConfig, Sandbox] = {}
_SANDBOXES_LOCK = threading.Lock()


def worker_sandbox(config: SandboxConfig) -> Sandbox:
    """This process's warm sandbox for ``config`` (one fork server), started on first use.

    Raises:
        SandboxError: the sandbox could not start.
    """
    with _SANDBOXES_LOCK:
        sandbox = _SANDBOXES.get(config)
        if sandbox is None:
            if not _SANDBOXES:
                atexit.register(close_worker_sandboxes)
            sandbox = Sandbox(dataclasses.replace(config, workers=1))
            with warnings.catch_warnings():
                # Reported once, by the client, from the isolation record.
                warnings.simplefilter("ignore", IsolationWarning)
                sandbox.start()
            _SANDBOXES[config] = sandbox
        return sandbox


def close_worker_sandboxes() -> None:
    """Stop this process's cached sandboxes."""
    with _SANDBOXES_LOCK:
        for sandbox in _SANDBOXES.values():
            sandbox.close()
        _SANDBOXES.clear()


def worker_isolation(config: SandboxConfig) -> dict[str, Any]:
    """Run on a Dask worker: the isolation its sandbox achieves."""
    isolation = worker_sandbox(config).isolation
    if isolation is None:
        raise SandboxError("a Dask worker's sandbox started without an isolation report")
    return isolation.to_dict()


def run_chunk(programs: list[Program], config: SandboxConfig) -> list[Outcome]:
    """Run on a Dask worker: the outcomes of ``programs``, in order, from its warm sandbox."""
    return list(worker_sandbox(config).map(programs))
