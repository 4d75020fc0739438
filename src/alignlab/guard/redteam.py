"""Red teaming in one command: garak probes against the guarded and the unguarded model, side by side.

A *suite* (``guard/data/redteam/*.yaml``) pins a garak version and its probes per family
(garak's probe module: encoding, dan, latentinjection, ...). :func:`run_redteam` runs the
suite against ``--target`` (the guarded server) and, if given, ``--baseline`` (the same
model unguarded), and writes ``redteam.json``, ``redteam.md`` and ``redteam.png``.

**Attack success.** garak writes one ``eval`` entry per (probe, detector) with the
outputs the detector passed and failed; a failed output is a successful attack. A probe's
attack success is ``fails / total_evaluated`` of its detector (suites run each probe's
primary detector only; were there several, the probe counts its worst one, so each output
counts once). A family's attack success pools its probes: all their failed outputs over
all their evaluated outputs, so a probe weighs by its number of outputs. Outputs the
target did not produce (``nones``) are counted apart and weigh in neither.

The attack prompts stay inside garak and these reports: they are for red teaming only,
never for training a guard or choosing its thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alignlab.core.config import option
from alignlab.core.registry import Registry
from alignlab.errors import ConfigError, DataError

AGGREGATION = "failed / evaluated outputs of each probe's detector (its worst), pooled per family"
SUITES: Registry[Path] = Registry("red-team suite")
SUITES.register("garak", Path("garak.yaml"))


@dataclass(frozen=True)
class RedTeamConfig:
    """Settings of ``alignlab guard redteam``."""

    target: str | None = option(None, "URL of the guarded server (e.g. http://127.0.0.1:8000)")
    baseline: str | None = option(None, "URL of the same model unguarded, reported side by side")
    suite: str = option("garak", "red-team suite: garak (shipped) or a suite YAML")
    probes: tuple[str, ...] = option((), "garak probes module.Class (repeatable; default: the suite's)")
    generations: int = option(1, "outputs asked per prompt")
    max_prompts: int = option(8, "most prompts per probe (garak's soft cap; a few probes send all theirs)")
    max_tokens: int = option(128, "completion tokens asked per prompt")
    parallel: int = option(1, "attempts garak sends at once (the server batches them)")
    timeout_s: float = option(7200.0, "most seconds one target's garak run may take")
    out: Path | None = option(None, "output folder (default: under the alignlab cache)")


@dataclass(frozen=True)
class Suite:
    """A pinned garak version, what to install beside it, and its probes per family."""

    name: str
    version: str
    requirements: tuple[str, ...]
    probes: dict[str, tuple[str, ...]]

    def probe_names(self) -> tuple[str, ...]:
        """Every probe as garak names it, ``module.Class``."""
        return tuple(f"{family}.{cls}" for family, classes in self.probes.items() for cls in classes)


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``garak``) or a suite YAML file.

    Raises:
        UnknownNameError: no shipped suite of that name (lists the known ones).
        DataError: the YAML is malformed or lacks ``version`` or ``probes``.
    """
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(str(resources.files("alignlab.guard") / "data" / "redteam" / SUITES.get(name_or_path)))
    if not path.is_file():
        raise DataError(path, None, "no such suite file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(path, None, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not {"version", "probes"} <= data.keys():
        raise DataError(path, None, "a suite is a mapping with 'version', 'requirements' and 'probes'")
    return Suite(
        name=path.stem,
        version=str(data["version"]),
        requirements=tuple(data.get("requirements", ())),
        probes={str(family): tuple(classes) for family, classes in data["probes"].items()},
    )


@dataclass(frozen=True)
class Tally:
    """Outputs judged for some probes: how many were successful attacks."""

    hits: int
    outputs: int
    nones: int = 0

    @property
    def attack_success(self) -> float | None:
        return self.hits / self.outputs if self.outputs else None

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.hits + other.hits, self.outputs + other.outputs, self.nones + other.nones)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "attack_success": self.attack_success}


def probe_tallies(report: Path) -> dict[str, Tally]:
    """Each probe's tally from a garak ``*.report.jsonl`` (its worst detector; see the module doc).

    Raises:
        DataError: a line is not JSON, or an ``eval`` entry lacks its counts.
    """
    worst: dict[str, Tally] = {}
    for number, line in enumerate(report.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(report, number, f"not JSON: {exc.msg}") from exc
        if entry.get("entry_type") != "eval":
            continue
        try:
            # garak before 0.13 called total_evaluated "total" and wrote no fails.
            outputs = int(entry.get("total_evaluated", entry.get("total")))
            tally = Tally(outputs - int(entry["passed"]), outputs, int(entry.get("nones", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(report, number, f"eval entry without counts: {exc}") from exc
        probe = str(entry["probe"])
        kept = worst.get(probe)
        if kept is None or (tally.attack_success or 0.0) > (kept.attack_success or 0.0):
            worst[probe] = tally
    return worst


def family_tallies(probes: Mapping[str, Tally]) -> dict[str, Tally]:
    """Pool probe tallies by family (the probe's garak module), in first-seen order."""
    families: dict[str, Tally] = {}
    for probe, tally in probes.items():
        family = probe.split(".", 1)[0]
        families[family] = families.get(family, Tally(0, 0)) + tally
    return families


Runner = Callable[[str, str, tuple[str, ...]], Path]
"""``runner(name, url, probes)`` runs the probes against ``url`` and returns garak's report."""


def garak_runner(config: RedTeamConfig, suite: Suite, folder: Path) -> Runner:
    """The real runner: garak installed from the suite's pins, run as a subprocess."""
    from alignlab.guard.garak import GarakRun, ensure_garak, run_garak

    def run(name: str, url: str, probes: tuple[str, ...]) -> Path:
        python = ensure_garak(suite.version, suite.requirements)
        settings = GarakRun(
            name, url, probes, config.generations, config.max_prompts, config.max_tokens, config.parallel
        )
        return run_garak(python, settings, folder, config.timeout_s)

    return run


def run_redteam(config: RedTeamConfig, runner: Runner | None = None) -> dict[str, Any]:
    """Run the suite against the target (and baseline); write and return the report.

    A target whose run finished with the same settings is read back, not run again, so a
    rerun after an interruption picks up where it stopped.

    Args:
        config: the settings.
        runner: runs garak (a seam for tests); by default :func:`garak_runner`.

    Raises:
        ConfigError: no ``--target``.
        UnknownNameError: an unknown suite.
        ToolInstallError, ToolRunError, EndpointError: garak could not be installed or run.
    """
    from alignlab.core.provenance import make_provenance

    if not config.target:
        raise ConfigError("give the guarded server's URL: --target http://127.0.0.1:PORT")
    suite = load_suite(config.suite)
    folder = output_folder(config)
    run = runner or garak_runner(config, suite, folder / "garak")
    probes = config.probes or suite.probe_names()
    targets = {"guarded": config.target, "unguarded": config.baseline}
    results = {
        name: _target(run, folder, name, url, probes, _settings(config, suite, url, probes))
        for name, url in targets.items()
        if url
    }
    report = {
        "suite": suite.name,
        "garak_version": suite.version,
        "probes": list(probes),
        "aggregation": AGGREGATION,
        "families": _side_by_side(results),
        "targets": results,
        # The output folder is where, not what: it stays out of the record.
        "provenance": make_provenance("guard.redteam", asdict(config) | {"out": None}).to_dict(),
    }
    (folder / "redteam.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "redteam.md").write_text(markdown_table(report))
    plot(report, folder / "redteam.png")
    return report


def output_folder(config: RedTeamConfig) -> Path:
    """Where a run's reports go: ``--out``, or ``guard/redteam`` under the alignlab cache."""
    from alignlab.models.embedded import cache_root

    return config.out or cache_root() / "guard" / "redteam"


def _settings(config: RedTeamConfig, suite: Suite, url: str, probes: Iterable[str]) -> dict[str, Any]:
    keys = ("generations", "max_prompts", "max_tokens")
    fixed = {"url": url, "garak": suite.version, "probes": list(probes)}
    return fixed | {k: getattr(config, k) for k in keys}


def _target(
    run: Runner, folder: Path, name: str, url: str, probes: tuple[str, ...], settings: dict[str, Any]
) -> dict[str, Any]:
    """One target's results, read back if a finished run had the same settings."""
    from alignlab.guard.garak import run_seconds

    saved = folder / f"{name}.json"
    if saved.is_file():
        previous: dict[str, Any] = json.loads(saved.read_text())
        if previous.get("settings") == settings:
            return previous
    report = run(name, url, probes)
    tallies = probe_tallies(report)
    result = {
        "settings": settings,
        "report": str(report.relative_to(folder) if report.is_relative_to(folder) else report.name),
        "garak_s": run_seconds(report),
        "families": {f: t.to_dict() for f, t in family_tallies(tallies).items()},
        "probes": {p: t.to_dict() for p, t in tallies.items()},
    }
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _side_by_side(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    families: dict[str, dict[str, float | None]] = {}
    for name, result in results.items():
        for family, tally in result["families"].items():
            families.setdefault(family, {})[name] = tally["attack_success"]
    return families


def table_lines(report: Mapping[str, Any]) -> list[str]:
    """Attack success per family, one column per target, as Markdown table lines."""
    names = list(report["targets"])

    def cell(name: str, family: str) -> str:
        tally = report["targets"][name]["families"].get(family)
        if not tally or tally["attack_success"] is None:
            return "n/a"
        return f"{tally['attack_success']:.1%} ({tally['hits']}/{tally['outputs']})"

    lines = ["| family | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    return lines + [f"| {f} | " + " | ".join(cell(n, f) for n in names) + " |" for f in report["families"]]


def markdown_table(report: Mapping[str, Any]) -> str:
    """The table under a heading naming the garak version."""
    heading = (
        f"# Red team: garak {report['garak_version']}, attack success per probe family (lower is better)"
    )
    return "\n".join([heading, "", *table_lines(report)]) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> bool:
    """Bar plot of attack success per family, a bar per target; False (and no file) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(report["families"])
    names = list(report["targets"])
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(families)), 3.6))
    for i, name in enumerate(names):
        values = [report["families"][f].get(name) or 0.0 for f in families]
        ax.bar([x + i * width for x in range(len(families))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(families))], families, rotation=30)
    ax.set(ylabel="attack success", ylim=(0, 1.02), title=f"garak {report['garak_version']} probes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
