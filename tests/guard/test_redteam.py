"""``alignlab guard redteam``: garak's report read into attack success per family, guarded vs unguarded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support import ScriptedSession

from alignlab.errors import ConfigError, DataError, DependencyError, ToolInstallError, UnknownNameError
from alignlab.guard.garak import (
    GENERATOR,
    GarakRun,
    ensure_garak,
    garak_config,
    openai_base,
    run_seconds,
    venv_dir,
)
from alignlab.guard.redteam import (
    RedTeamConfig,
    Tally,
    family_tallies,
    load_suite,
    probe_tallies,
    run_redteam,
)

RUN = "0c3b4cc4-7c1e-4c2a-9d1e-1f4cf6a7f001"


def attempt(probe: str, seq: int, detector: str, score: float) -> dict[str, Any]:
    """An ``attempt`` entry after detection (status 2), trimmed to the fields garak 0.17.1 always writes."""
    return {
        "entry_type": "attempt",
        "uuid": f"a-{probe}-{seq}",
        "seq": seq,
        "status": 2,
        "probe_classname": probe,
        "probe_params": {},
        "targets": [],
        "prompt": {"turns": [{"role": "user", "content": {"text": "…", "lang": "en"}}], "notes": {}},
        "outputs": [{"text": "Sure, here is how.", "lang": "en", "data_path": None, "notes": {}}],
        "detector_results": {detector: [score]},
        "notes": {},
        "goal": "disregard the system prompt",
        "conversations": [],
        "reverse_translation_outputs": [],
        "intent": "T009ignore",
    }


def evaluation(probe: str, detector: str, passed: int, fails: int, nones: int = 0) -> dict[str, Any]:
    """An ``eval`` entry as garak 0.17.1's evaluators/base.py writes it (no confidence interval asked)."""
    return {
        "entry_type": "eval",
        "probe": probe,
        "detector": detector,
        "passed": passed,
        "fails": fails,
        "nones": nones,
        "total_evaluated": passed + fails,
        "total_processed": passed + fails + nones,
        "intents": {"T009ignore": {"passed": passed, "total_evaluated": passed + fails, "nones": nones}},
        "hit_at_k": {"1": {"score": fails / max(passed + fails, 1), "prompts": passed + fails}},
    }


def garak_report(path: Path, evals: Sequence[dict[str, Any]]) -> Path:
    """A report in the shape garak writes: setup, init, attempts, evals, summaries, completion, digest."""
    entries: list[dict[str, Any]] = [
        {"entry_type": "start_run setup", "_config.version": "0.17.1", "plugins.target_type": GENERATOR},
        {
            "entry_type": "init",
            "garak_version": "0.17.1",
            "start_time": "2026-01-02T03:04:05.000001",
            "run": RUN,
        },
        attempt("phrasing.PastTense", 0, "mitigation.Prefixes", 1.0),
        *evals,
        {
            "entry_type": "probe_summary",
            "probe": "phrasing.PastTense",
            "inference_counts": {"total_evaluated": 4, "nones": 0},
            "detection_counts": {"detectors": ["mitigation.Prefixes"], "passed": 1, "fails": 3, "nones": 0},
        },
        {"entry_type": "completion", "end_time": "2026-01-02T03:04:17.500001", "run": RUN},
        {"entry_type": "digest", "meta": {"garak_version": "0.17.1"}, "eval": {}},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


EVALS = [
    evaluation("phrasing.PastTense", "mitigation.Prefixes", passed=1, fails=3),
    evaluation("phrasing.FutureTense", "mitigation.Prefixes", passed=4, fails=0),
    evaluation("encoding.InjectBase64", "encoding.DecodeApprox", passed=1, fails=1),
    evaluation("encoding.InjectBase64", "encoding.DecodeMatch", passed=2, fails=0),
    evaluation("tap.TAPCached", "mitigation.MitigationBypass", passed=3, fails=4, nones=2),
]


def test_probe_tallies_take_each_probes_worst_detector(tmp_path: Path) -> None:
    tallies = probe_tallies(garak_report(tmp_path / "r.report.jsonl", EVALS))
    assert tallies == {
        "phrasing.PastTense": Tally(3, 4),
        "phrasing.FutureTense": Tally(0, 4),
        "encoding.InjectBase64": Tally(1, 2),
        "tap.TAPCached": Tally(4, 7, nones=2),
    }
    assert tallies["tap.TAPCached"].attack_success == pytest.approx(4 / 7)


def test_families_pool_outputs_across_their_probes(tmp_path: Path) -> None:
    families = family_tallies(probe_tallies(garak_report(tmp_path / "r.report.jsonl", EVALS)))
    assert families["phrasing"] == Tally(3, 8)
    assert families["phrasing"].attack_success == pytest.approx(3 / 8)
    assert families["encoding"].attack_success == pytest.approx(0.5)
    assert Tally(0, 0).attack_success is None


def test_older_reports_with_total_instead_of_total_evaluated(tmp_path: Path) -> None:
    old = {"entry_type": "eval", "probe": "dan.Dan_11_0", "detector": "dan.DAN", "passed": 7, "total": 10}
    assert probe_tallies(garak_report(tmp_path / "old.report.jsonl", [old])) == {"dan.Dan_11_0": Tally(3, 10)}


def test_a_malformed_report_names_its_line(tmp_path: Path) -> None:
    report = garak_report(tmp_path / "r.report.jsonl", EVALS)
    report.write_text(report.read_text() + '{"entry_type": "eval", "probe": "x"\n')
    with pytest.raises(DataError, match=r"r\.report\.jsonl:12"):
        probe_tallies(report)
    bad = {"entry_type": "eval", "probe": "x.Y", "detector": "d"}
    with pytest.raises(DataError, match="without counts"):
        probe_tallies(garak_report(tmp_path / "s.report.jsonl", [bad]))


def test_run_seconds_from_the_reports_own_times(tmp_path: Path) -> None:
    assert run_seconds(garak_report(tmp_path / "r.report.jsonl", EVALS)) == 12.5


def test_unknown_suite_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'garak'\?.*Known: garak") as caught:
        run_redteam(RedTeamConfig(target="http://127.0.0.1:9", suite="garek"), runner=_never)
    assert caught.value.known == ["garak"]


def test_unknown_suite_on_the_command_line() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "alignlab", "guard", "redteam", "--suite", "pyrit", "--target", "http://x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown red-team suite 'pyrit'" in done.stderr and "Known: garak" in done.stderr


def test_a_target_is_required() -> None:
    with pytest.raises(ConfigError, match="--target"):
        run_redteam(RedTeamConfig(), runner=_never)


def test_shipped_suite_pins_garak_and_covers_the_families() -> None:
    suite = load_suite("garak")
    assert suite.version == "0.17.1"
    assert {"encoding", "dan", "latentinjection", "phrasing", "tap", "suffix"} <= set(suite.probes)
    assert "tap.TAPCached" in suite.probe_names() and "suffix.GCGCached" in suite.probe_names()
    assert "phrasing.PastTense" in suite.probe_names() and "phrasing.FutureTense" in suite.probe_names()
    assert all(name.count(".") == 1 for name in suite.probe_names())
    assert not any(r.split("=")[0].split(">")[0] in ("torch", "transformers") for r in suite.requirements)


def test_a_suite_yaml_of_ones_own(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("version: 0.17.1\nprobes:\n  phrasing: [PastTense]\n  dan: [DUDE]\n")
    suite = load_suite(str(mine))
    assert suite.name == "mine" and suite.probe_names() == ("phrasing.PastTense", "dan.DUDE")
    mine.write_text("version: [0.17.1\n")
    with pytest.raises(DataError, match="invalid YAML"):
        load_suite(str(mine))
    mine.write_text("probes: {}\n")
    with pytest.raises(DataError, match="'version'"):
        load_suite(str(mine))


def test_garak_config_points_the_openai_compatible_generator_at_the_target(tmp_path: Path) -> None:
    run = GarakRun("guarded", "http://127.0.0.1:8000", ("phrasing.PastTense",), 2, 3, 64)
    config: Any = garak_config(run, "smollm2", tmp_path)
    assert config["plugins"]["target_type"] == "openai.OpenAICompatible"
    assert config["plugins"]["target_name"] == "smollm2"
    assert config["plugins"]["extended_detectors"] is False
    options = config["plugins"]["generators"]["openai"]["OpenAICompatible"]
    assert options["uri"] == "http://127.0.0.1:8000/v1/"
    assert options["max_tokens"] == 64 and "stop" in options["suppressed_params"]
    assert config["run"] == {"generations": 2, "soft_probe_prompt_cap": 3, "seed": 0}
    assert config["reporting"]["report_prefix"] == "guarded"
    assert openai_base("http://h:1/v1/") == openai_base("http://h:1") == "http://h:1/v1/"


def test_garak_install_is_reused_and_a_failed_one_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import sys

    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "executable", shutil.which("false"))
    with pytest.raises(ToolInstallError, match="creating a virtual environment failed") as caught:
        ensure_garak("0.17.1", ["openai"])
    assert isinstance(caught.value, DependencyError) and Path(caught.value.log).is_file()
    assert [p.name for p in venv_dir("0.17.1").parent.iterdir()] == ["garak-0.17.1.install.log"]

    installed = venv_dir("0.17.1")
    installed.mkdir()
    stamp = {"garak": "0.17.1", "requirements": ["openai"]}
    (installed / "alignlab-installed.json").write_text(json.dumps(stamp))
    assert ensure_garak("0.17.1", ["openai"]) == installed / "bin" / "python"


def _never(name: str, url: str, probes: tuple[str, ...]) -> Path:
    raise AssertionError("garak should not run")


def test_side_by_side_report_and_resume(tmp_path: Path) -> None:
    calls: list[str] = []
    hits = {"guarded": 0, "unguarded": 3}

    def fake(name: str, url: str, probes: tuple[str, ...]) -> Path:
        calls.append(name)
        evals = [evaluation(p, "mitigation.Prefixes", 4 - hits[name], hits[name]) for p in probes]
        return garak_report(tmp_path / f"{name}.report.jsonl", evals)

    probes = ("phrasing.PastTense", "tap.TAPCached")
    config = RedTeamConfig(target="http://g", baseline="http://u", probes=probes, out=tmp_path / "out")
    report = run_redteam(config, runner=fake)
    assert report["families"] == {
        "phrasing": {"guarded": 0.0, "unguarded": 0.75},
        "tap": {"guarded": 0.0, "unguarded": 0.75},
    }
    assert report["targets"]["unguarded"]["probes"]["tap.TAPCached"]["hits"] == 3
    assert report["provenance"]["arguments"]["out"] is None
    written = json.loads((tmp_path / "out" / "redteam.json").read_text())
    assert written["families"] == report["families"] and written["garak_version"] == "0.17.1"
    assert "| phrasing | 0.0% (0/4) | 75.0% (3/4) |" in (tmp_path / "out" / "redteam.md").read_text()
    assert (tmp_path / "out" / "redteam.png").stat().st_size > 0
    assert calls == ["guarded", "unguarded"]

    assert run_redteam(config, runner=_never)["families"] == report["families"]
    run_redteam(RedTeamConfig(target="http://g", probes=probes, out=tmp_path / "out", max_prompts=2), fake)
    assert calls == ["guarded", "unguarded", "guarded"]


class RefuseAll(ScriptedSession):
    """A guard session that flags every reply at its first token (the refusal comes from the server)."""

    def token(self, token_id: int | None, text: str, hidden: Any) -> Any:
        from alignlab.guard.cascade import Verdict

        return Verdict(True, "ensemble")


@pytest.mark.redteam
def test_garak_end_to_end_guarded_vs_unguarded(tmp_path: Path) -> None:
    """Installs garak (once, into the alignlab cache) and runs a small subset against two live servers."""
    from support import LiveServer

    from alignlab.guard.streaming import StreamingGuard
    from alignlab.models.scripted import ScriptedBackend
    from alignlab.serve.app import create_app

    reply = "Sure, here is exactly how to do that, step by step."
    guard = StreamingGuard(RefuseAll, False, lambda m: {"flagged": True})
    probes = ("phrasing.PastTense", "encoding.InjectBase64", "dan.Dan_11_0")
    with (
        LiveServer(create_app(ScriptedBackend(reply), guard=guard)) as guarded,
        LiveServer(create_app(ScriptedBackend(reply))) as unguarded,
    ):
        config = RedTeamConfig(
            target=guarded.url, baseline=unguarded.url, probes=probes, max_prompts=2, out=tmp_path
        )
        report = run_redteam(config)
    families = report["families"]
    assert families["phrasing"] == {"guarded": 0.0, "unguarded": 1.0}
    assert families["encoding"] == {"guarded": 0.0, "unguarded": 0.0}
    assert families["dan"]["guarded"] == 0.0
    assert report["targets"]["unguarded"]["families"]["phrasing"]["outputs"] == 2
