"""The real embedded model, end to end (prepared from the package index on first use, then cached)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import ModelNotFoundError
from alignlab.models import embedded
from alignlab.models.base import SamplingParams

pytestmark = pytest.mark.slow
FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_smollm2_answers_and_prefers_the_true_answer(smollm2: Any) -> None:
    (gen,) = smollm2.generate([FRANCE], SamplingParams(max_new_tokens=12))
    assert "Paris" in gen.text
    right, wrong = smollm2.loglikelihood([(FRANCE, "Paris"), (FRANCE, "Berlin")])
    assert right.logprob > wrong.logprob + 2


def test_smollm2_reports_hidden_states_of_every_layer(smollm2: Any) -> None:
    (states,) = smollm2.hidden_states([FRANCE])
    assert states.shape == (31, smollm2.count_tokens(FRANCE), 576)


def test_prepare_is_idempotent_and_fast_once_cached(smollm2: Any) -> None:
    start = time.perf_counter()
    path = embedded.prepare()
    assert time.perf_counter() - start < 1.0
    assert (path / "model.safetensors").is_file() and path == embedded.model_dir()


def test_smollm2_served_streams_to_the_openai_client(smollm2: Any) -> None:
    import openai
    from support import LiveServer

    from alignlab.serve.app import create_app

    with LiveServer(create_app(smollm2)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        stream = client.chat.completions.create(
            model="smollm2", messages=FRANCE, max_tokens=12, stream=True, temperature=0
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 1 and "Paris" in "".join(pieces)


def test_a_missing_gguf_override_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("ALIGNLAB_SMOLLM2_GGUF", str(tmp_path / "none.gguf"))
    with pytest.raises(ModelNotFoundError, match=r"none\.gguf"):
        embedded.prepare()
