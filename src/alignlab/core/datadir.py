"""Where the shared datasets live: an explicit folder, ``$ALIGNLAB_DATA``, or ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ALIGNLAB_DATA"


def data_root(option: str | Path | None = None) -> Path:
    """The datasets folder: ``option``, else ``$ALIGNLAB_DATA``, else ``../shared/data`` (from the cwd)."""
    if option:
        return Path(option)
    return Path(os.environ.get(DATA_ENV) or Path.cwd().parent / "shared" / "data")
