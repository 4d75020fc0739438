from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
from pathlib import Path

import pytest

import alignlab
from alignlab.core.provenance import Provenance, hash_file, hash_records, make_provenance, to_jsonable


class Mode(enum.Enum):
    FAST = "fast"


@dataclasses.dataclass
class Inner:
    path: Path
    mode: Mode


def test_hash_records_ignores_key_order() -> None:
    one = [{"a": 1, "b": {"x": [1, 2], "y": None}}, {"c": "é"}]
    two = [{"b": {"y": None, "x": [1, 2]}, "a": 1}, {"c": "é"}]
    assert hash_records(one) == hash_records(two)


def test_hash_records_sees_values_and_record_order() -> None:
    base = hash_records([{"a": 1}, {"a": 2}])
    assert hash_records([{"a": 2}, {"a": 1}]) != base
    assert hash_records([{"a": 1}, {"a": 3}]) != base
    # Record boundaries count: one record is not the same data as two.
    assert hash_records(["ab"]) != hash_records(["a", "b"])


def test_hash_records_matches_canonical_json_sha256() -> None:
    expected = hashlib.sha256(b'{"a":1,"b":2}\n').hexdigest()
    assert hash_records([{"b": 2, "a": 1}]) == f"sha256:{expected}"


def test_hash_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 10_000  # larger than one read chunk
    path.write_bytes(data)
    assert hash_file(path) == f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_make_provenance_records_version_seed_and_converted_arguments() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    prov = make_provenance(
        "guard.cascade",
        {"config": Inner(Path("/data/x.jsonl"), Mode.FAST), "stops": ("a", "b"), "ids": {3, 1, 2}},
        data_hash="sha256:abc",
        seed=7,
    )
    assert prov.package_version == alignlab.__version__
    assert prov.seed == 7
    assert prov.data_hash == "sha256:abc"
    assert prov.arguments == {
        "config": {"path": "/data/x.jsonl", "mode": "fast"},
        "stops": ["a", "b"],
        "ids": [1, 2, 3],
    }
    created = datetime.datetime.fromisoformat(prov.created_at)
    assert created.utcoffset() == datetime.timedelta(0)
    assert created >= before
    assert prov.python.count(".") == 2


def test_to_dict_is_json_and_round_trips() -> None:
    prov = make_provenance("x", {"fn": hash_file, "kind": Provenance})
    data = json.loads(json.dumps(prov.to_dict()))
    assert data["arguments"] == {
        "fn": "alignlab.core.provenance:hash_file",
        "kind": "alignlab.core.provenance:Provenance",
    }
    assert Provenance.from_dict(data) == prov


def test_provenance_is_frozen() -> None:
    prov = make_provenance("x", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        prov.seed = 3  # type: ignore[misc]


def test_int_enum_becomes_its_plain_value() -> None:
    class Level(enum.IntEnum):
        HIGH = 2

    converted = to_jsonable({"level": Level.HIGH})
    assert converted == {"level": 2}
    assert type(converted["level"]) is int
