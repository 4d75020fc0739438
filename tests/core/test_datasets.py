"""The dataset registry, `alignlab data`, `alignlab data check`, and the missing-dataset error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignlab import cli
from alignlab.core.datasets import check, dataset_file, datasets, owner, root_origin
from alignlab.errors import DataNotFoundError, UnknownNameError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
USES = {"training", "evaluation only", "training and evaluation"}


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder beside the project, or a skip saying where it was looked for."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED.resolve()}; it is needed to check the real layout")
    return SHARED


def fake_folder(root: Path) -> Path:
    """A data folder with every registered file, holding the registered number of (empty) records."""
    for dataset in datasets().values():
        for path, count in dataset.paths(root):
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.name.endswith(".xml"):
                path.write_text("<posts>" + '<row Id="1"/>' * count + "</posts>")
            elif path.name.endswith(".json"):
                path.write_text(json.dumps({"examples": [{}] * count}))
            else:
                path.write_text('{"id": "x", "prompt": "p"}\n' * count)
    return root


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_every_dataset_is_described() -> None:
    for d in datasets().values():
        assert d.use in USES and d.pillars and d.files, d.name
        assert d.source and d.licence and d.title and d.how, d.name


def test_the_registry_agrees_with_the_code_that_reads_the_data() -> None:
    from alignlab.guard.seeds import BENIGN_TRAINING
    from alignlab.prefs.data import EVALUATION_ONLY

    for name in BENIGN_TRAINING:
        assert owner(f"benign/{name}/prompts.jsonl").use == "training", name
    for name in ("arena_hard_v0_1", "arena_hard_v2_0", "mt_bench", "coconot_contrast", "xstest"):
        assert datasets()[name].use == "evaluation only", name
    assert {"hhh"} == EVALUATION_ONLY and datasets()["hhh_alignment"].use == "evaluation only"


def test_data_lists_every_dataset_and_the_folder(tmp_path: Path) -> None:
    code, output = invoke("data", "--data-dir", str(tmp_path))
    assert code == 0, output
    assert f"data folder: {tmp_path.resolve()} (--data-dir)" in output
    for d in datasets().values():
        assert f"  {d.name}: {d.title} [MISSING]" in output
    code, output = invoke("data", "--json", "--data-dir", str(fake_folder(tmp_path)))
    listed = json.loads(output)
    assert [d["name"] for d in listed["datasets"]] == list(datasets())
    assert all(d["present"] for d in listed["datasets"])
    assert listed["datasets"][0]["path"] == str(tmp_path.resolve() / "coconot")


def test_check_passes_on_the_shared_data(shared_data: Path) -> None:
    code, output = invoke("data", "check", str(shared_data))
    assert code == 0, output
    assert f"all {sum(len(d.files) for d in datasets().values())} files" in output


def test_check_names_what_is_missing_or_wrong(tmp_path: Path) -> None:
    root = fake_folder(tmp_path)
    assert check(root) == []
    (root / "coconot" / "prompts.jsonl").unlink()
    (root / "xstest" / "prompts.jsonl").write_text('{"id": "x"}\n')
    (root / "hhh_alignment" / "honest" / "task.json").write_text("{not json")
    code, output = invoke("data", "check", str(root))
    assert code == 1
    assert "3 of 23 files missing or wrong" in output
    assert f"coconot: {root / 'coconot' / 'prompts.jsonl'}: missing" in output
    assert f"xstest: {root / 'xstest' / 'prompts.jsonl'}: 1 records, expected 450" in output
    assert "hhh_alignment: " in output and "does not parse" in output
    code, output = invoke("data", "check", str(root), "--dataset", "hh-rlhf")
    assert code == 0, output
    result = CliRunner().invoke(cli.app, ["data", "check", str(root), "--dataset", "coconut"])
    assert isinstance(result.exception, UnknownNameError) and "Did you mean 'coconot'" in str(
        result.exception
    )


def test_a_missing_file_names_the_dataset_and_where_alignlab_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNLAB_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as caught:
        dataset_file(tmp_path, "benign/mt_bench/prompts.jsonl")
    message = str(caught.value)
    assert caught.value.dataset == "mt_bench" and "'mt_bench'" in message
    assert f"looked in the data folder {tmp_path.resolve()} ($ALIGNLAB_DATA)" in message
    assert "--data-dir" in message and "`alignlab data`" in message


def test_the_pillars_report_a_missing_dataset(tmp_path: Path) -> None:
    from alignlab.guard.evalsets import load_eval_sets
    from alignlab.prefs.data import load_source

    with pytest.raises(DataNotFoundError, match="'arena_hard_v0_1'"):
        load_eval_sets(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"'hhh_alignment'.*--data-dir"):
        load_source("hhh", tmp_path)
    root = fake_folder(tmp_path / "all")
    (root / "cyberseceval" / "prompts.jsonl").unlink()
    with pytest.raises(DataNotFoundError, match="'cyberseceval'"):
        load_eval_sets(root)


def test_root_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    assert root_origin(Path.cwd().parent / "shared" / "data").startswith("the default")
    assert root_origin(tmp_path) == "--data-dir"
    monkeypatch.setenv("ALIGNLAB_DATA", str(tmp_path))
    assert root_origin(tmp_path) == "$ALIGNLAB_DATA"
