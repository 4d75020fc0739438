"""``alignlab serve``: load a backend, put the guard in front of it, serve it with uvicorn on 127.0.0.1."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alignlab.core.config import option


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``alignlab serve``."""

    model: str = option(
        "smollm2",
        "model spec: smollm2, hf:PATH, openai:URL (or openai:URL#MODEL), scripted or scripted:REPLY",
    )
    host: str = option("127.0.0.1", "address to bind (loopback by default; nothing is exposed unless asked)")
    port: int = option(8000, "port to bind")
    max_batch: int = option(32, "most requests decoded together; new ones take free rows between steps")
    max_body_bytes: int = option(1 << 20, "larger request bodies are refused with 413")
    default_max_tokens: int = option(256, "completion length when a request sets none")
    log_level: str = option("info", "uvicorn log level")
    guard: str = option("default", "guard in front of the model: default (shipped), a guard folder, or none")
    upstream: str | None = option(
        None, "serve an OpenAI-compatible upstream URL (guarded) instead of --model"
    )
    hold_back: int = option(
        4,
        "tokens that every required guard stage must have read after a token before it is released "
        "(each token is read by every stage the cascade requires before it leaves; this adds look-ahead)",
    )
    prompt_window: int | None = option(
        None, "the guard's prompt window; must match the one its guard.json records (None: use that one)"
    )
    log_text: bool = option(False, "include conversation text in the guard's verdict log")
    guard_trace: str = option(
        "loopback",
        "who may ask for per-token guard traces (guard_trace: true in a chat request): off, loopback, all",
    )


def serve(config: ServeConfig) -> None:
    """Load the model, then serve it until interrupted."""
    import uvicorn

    from alignlab.models import load_backend
    from alignlab.serve.app import create_app

    backend = load_backend(f"openai:{config.upstream}" if config.upstream else config.model)
    guard = None
    verdicts = logging.getLogger("alignlab.guard.verdicts")
    if not verdicts.handlers:  # one JSON line per verdict on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        verdicts.addHandler(handler)
        verdicts.setLevel(logging.INFO)
    if config.guard != "none":
        from alignlab.guard.load import serving_guard

        guard = serving_guard(
            config.guard,
            backend,
            hold_back=config.hold_back,
            log_text=config.log_text,
            prompt_window=config.prompt_window,
        )
    app = create_app(
        backend,
        max_batch=config.max_batch,
        max_body_bytes=config.max_body_bytes,
        default_max_tokens=config.default_max_tokens,
        guard=guard,
        guard_trace=config.guard_trace,
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level)
