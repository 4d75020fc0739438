"""The real embedded code model, where it is prepared (``alignlab models pull qwen2.5-coder-0.5b``).

Skipped when it is not: preparing it fetches 491 MB, which no test should do on its own.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from alignlab.models import embedded
from alignlab.models.base import SamplingParams

MODEL = embedded.QWEN_CODER
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not embedded.is_prepared(MODEL), reason="run `alignlab models pull qwen2.5-coder-0.5b`"
    ),
]


@pytest.fixture(scope="module")
def coder() -> Any:
    from alignlab.models import load_backend

    return load_backend(MODEL.name)


def test_the_assembled_gguf_matches_its_pins() -> None:
    gguf = embedded.cache_root() / "downloads" / f"{MODEL.name}.gguf"
    if not gguf.is_file():
        pytest.skip("the assembled GGUF was removed after preparing")
    digest = hashlib.sha256()
    with gguf.open("rb") as src:
        while block := src.read(1 << 20):
            digest.update(block)
    assert gguf.stat().st_size == MODEL.size and digest.hexdigest() == MODEL.sha256


def test_the_coder_writes_a_working_function_in_chat(coder: Any) -> None:
    question = [{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}]
    assert "<|im_start|>assistant" in coder.tokenizer.decode(coder.encode(question))
    (reply,) = coder.generate([question], SamplingParams(max_new_tokens=64))
    assert "def add(" in reply.text and reply.finish_reason in {"stop", "length"}
