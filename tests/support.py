"""Test support: a real uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ScriptedSession:
    """A stand-in guard session for tests of the serving path: it reads every unit it is fed.

    The real sessions (probe cascade, classifier) are tested through the same server in
    ``tests/serve/test_release_rule.py``; subclasses here decide flags by rule.
    """

    classifier_seconds = 0.0

    def __init__(self, messages: Any = None) -> None:
        self.messages = messages or []
        self.count = 0
        self.ended = False
        self.last: Any = None
        self.trace: list[dict[str, float | None]] = []

    def required(self) -> tuple[str, ...]:
        return ("stand-in",)

    def read(self) -> dict[str, int]:
        return {"stand-in": self.count + int(self.ended)}

    def prompt(self, hidden: Any) -> Any:
        return None

    def token(self, token_id: int | None, text: str, hidden: Any) -> Any:
        self.count += 1
        return None

    def end(self, text: str = "") -> Any:
        self.ended = True
        return None

    def cheap(self) -> bool:
        return True
