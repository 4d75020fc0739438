"""The shared core every pillar uses.

``jsonl`` (JSON Lines files), ``results`` (resumable results files), ``provenance``
(what produced a result), ``config`` (dataclass configs and their CLI and files),
``progress`` (progress bars) and ``registry`` (named, lazily imported components).

Nothing is imported here: import the module you need, e.g. ``from alignlab.core.jsonl import read_jsonl``.
"""
