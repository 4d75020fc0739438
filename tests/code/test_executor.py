"""Executors: a Dask cluster gives the same verdicts as the local sandbox."""

import json
import time
from pathlib import Path

import pytest

from alignlab.code.evaluate import EvaluateConfig, evaluate
from alignlab.code.problems import load_problems
from alignlab.code.sandbox import Program, Sandbox, SandboxConfig
from alignlab.code.sandbox.executor import DaskExecutor, close_worker_sandboxes, make_executor
from alignlab.errors import ConfigError

pytest.importorskip("distributed")

# The session sandbox's limits (tests/code/conftest.py), so the verdicts can be compared.
LIMITS = {"cpu_seconds": 0.5, "wall_seconds": 2.0}


def mixed(path: Path) -> Path:
    samples: list[dict[str, object]] = []
    for p in list(load_problems().values())[:4]:
        samples.append({"task_id": p.task_id, "completion": p.canonical_solution})
        samples.append({"task_id": p.task_id, "completion": "    return None\n"})
    samples.append({"task_id": "HumanEval/0", "completion": "    while True:\n        pass\n"})
    samples.append({"task_id": "HumanEval/1", "completion": "    raise ValueError('no')\n"})
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def verdicts(results: Path) -> list[tuple[str, int, str, str]]:
    records = map(json.loads, results.read_text().splitlines())
    return sorted((r["task_id"], r["completion_id"], r["verdict"], r["detail"]) for r in records)


def test_a_local_dask_cluster_gives_the_local_verdicts(sandbox: Sandbox, tmp_path: Path) -> None:
    samples = mixed(tmp_path / "s.jsonl")
    local = evaluate(samples, tmp_path / "local.jsonl", sandbox=sandbox)
    config = EvaluateConfig(workers=2, executor="dask-local", chunk_size=3, **LIMITS)  # type: ignore[arg-type]
    distributed = evaluate(samples, tmp_path / "dask.jsonl", config)
    assert verdicts(tmp_path / "dask.jsonl") == verdicts(tmp_path / "local.jsonl")
    assert {v for *_, v, _ in verdicts(tmp_path / "dask.jsonl")} >= {"passed", "failed", "timed_out"}
    assert distributed["pass_at_k"] == local["pass_at_k"]
    assert distributed["verdicts"] == local["verdicts"] == {"failed": 5, "passed": 4, "timed_out": 1}
    assert distributed["isolation"] == local["isolation"]


def test_a_dask_address_reuses_one_warm_sandbox_per_worker() -> None:
    from distributed import LocalCluster

    config = SandboxConfig(**LIMITS)  # type: ignore[arg-type]
    with LocalCluster(  # type: ignore[no-untyped-call]
        host="127.0.0.1", dashboard_address=None, n_workers=1, processes=False, protocol="tcp://"
    ) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        executor = make_executor(f"dask://{address}", config, chunk_size=2)
        assert isinstance(executor, DaskExecutor)
        try:
            programs = [Program(f"assert {i} % 3 != 0") for i in range(7)]
            started = time.monotonic()
            outcomes = list(executor.map(programs))
            assert [o.verdict for o in outcomes] == ["failed" if i % 3 == 0 else "passed" for i in range(7)]
            assert executor.isolation is not None and executor.isolation.limits
            # In-process workers share this module's cache: one sandbox, one fork server.
            from alignlab.code.sandbox import executor as module

            assert len(module._SANDBOXES) == 1
            (box,) = module._SANDBOXES.values()
            assert box.size == 1
            assert time.monotonic() - started < 30
        finally:
            executor.close()
            close_worker_sandboxes()


def test_unknown_executors_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'ray'"):
        make_executor("ray", SandboxConfig())
    with pytest.raises(ConfigError, match="dask://HOST:PORT"):
        make_executor("dask://", SandboxConfig())
