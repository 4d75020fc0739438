"""Where a sandbox sample's time goes: fork, the child's layers, the program, the exit, the server.

Two views, each for HumanEval's canonical solutions and for a program that does nothing
(``pass``, the fixed cost of a sample), written to ``results/code_sandbox_profile.json``:

* ``stages``: the fork server and its children run with wrappers around their stages
  (nothing else changed): per stage, the median and mean wall time (``perf_counter_ns``)
  and the minor page faults (the copy-on-write faults that follow a fork show up here),
  the child's CPU and faults from ``wait4``, and the CPU of the harness and of the
  workers (their start included) from ``getrusage``;
* ``--perf LABEL``: the same programs, uninstrumented, under ``perf record``: CPU per
  sample by process (harness, worker, fork server, sample child, told apart by their
  place in the fork tree) and by what it was doing (fork, page faults, seccomp, Landlock,
  exit, other system calls, user space). It does not depend on the sandbox's internals,
  so it profiles an older checkout too (``PYTHONPATH=OTHER/src``).

    python benchmarks/code_sandbox_profile.py --repeat 2
    python benchmarks/code_sandbox_profile.py --repeat 2 --perf after

Wall times in the child are those of one process on a core and include waiting for a core
on a loaded machine; the CPU figures do not. ``perf`` sampling itself slows the kernel
paths it samples, so compare its figures with each other, not with the benchmark's.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from alignlab.code.problems import load_problems
from alignlab.code.sandbox import IsolationWarning, Program, Sandbox, SandboxConfig, worker

# Run in each worker before its fork server starts: wraps the stages, times them in the server
# and in the child (which sends its marks on a pipe of its own), and adds them to the result.
_PATCH = r"""
import json, os, resource, sys, time
from alignlab.code.sandbox import child, forkserver, seccomp

def _mark(marks, name):
    marks.append((name, time.perf_counter_ns(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt))

def _timed(owner, name, marks_of):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        _mark(marks_of(), name)
        return out
    setattr(owner, name, wrapper)

_server, _child = [], []
_read, _write = os.pipe()
os.set_blocking(_read, False)
for owner, name in ((forkserver, "_loads"), (forkserver.ForkServer, "_wait"),
                    (forkserver.ForkServer, "_sweep"), (forkserver, "_read_record"),
                    (forkserver.ForkServer, "_take_output"), (forkserver.ForkServer, "_verdict"),
                    (forkserver, "_empty")):
    _timed(owner, name, lambda: _server)
_STAGES = ((child, "apply_limits"), (seccomp.SeccompFilter, "install"), (child, "execute"))
for owner, name in _STAGES if CHILD_STAGES else ():
    _timed(owner, name, lambda: _child)
_wait = forkserver.ForkServer._wait
def _waited(self, pid):
    status, usage, killed = _wait(self, pid)
    _usage.append((usage.ru_utime + usage.ru_stime, usage.ru_minflt))
    return status, usage, killed
forkserver.ForkServer._wait = _waited
_usage = []
_fork = os.fork
def _forked():
    _mark(_server, "before fork")
    pid = _fork()
    if pid == 0:
        _child.clear()
        _mark(_child, "child starts")
    else:
        _mark(_server, "fork")
    return pid
forkserver.os.fork = _forked
_run_child = forkserver.run_child
def _run_child_timed(*args):
    _mark(_child, "dup2, close, setsid")
    return _run_child(*args)
forkserver.run_child = _run_child_timed
_report = child._write
def _reported(fd, data):
    n = _report(fd, data)
    _mark(_child, "report")
    os.write(_write, json.dumps(_child).encode())
    return n
child._write = _reported
_run = forkserver.ForkServer.run
def _profiled_run(self, line):
    _server.clear()
    _mark(_server, "start")
    result = _run(self, line)
    _mark(_server, "end")
    marks = json.loads(os.read(_read, 1 << 16))
    result["profile"] = {"server": list(_server), "child": marks, "child_usage": _usage.pop()}
    return result
forkserver.ForkServer.run = _profiled_run
"""


def stages(marks: list[list[Any]]) -> list[tuple[str, float, int]]:
    """(stage, milliseconds, faults) between successive marks."""
    return [(b[0], (b[1] - a[1]) / 1e6, b[2] - a[2]) for a, b in itertools.pairwise(marks)]


def programs(kind: str, repeat: int) -> list[Program]:
    problems = list(load_problems().values())
    if kind == "trivial":
        return [Program("pass")] * (repeat * len(problems))
    return [p.program(p.canonical_solution) for _ in range(repeat) for p in problems]


def run(batch: list[Program], workers: int) -> dict[str, float]:
    """Run ``batch``; the CPU per program of the harness and of the workers (their start included)."""
    own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IsolationWarning)
        sandbox = Sandbox(SandboxConfig(workers=workers))
        sandbox.start()
    verdicts = [o.verdict for o in sandbox.map(batch)]
    sandbox.close()
    wall = time.perf_counter() - started
    own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    assert all(v == "passed" for v in verdicts), verdicts
    n = len(batch)
    return {
        "samples": n,
        "samples_per_second": n / wall,
        "harness_cpu_ms": (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / n * 1e3,
        "workers_cpu_ms": (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / n * 1e3,
    }


def profile_stages(kind: str, repeat: int, workers: int) -> dict[str, Any]:
    """Run ``kind`` programs through instrumented workers; the figures per stage."""
    worker._Worker.replies = []  # type: ignore[attr-defined]
    totals = run(programs(kind, repeat), workers)
    rows: dict[str, list[tuple[float, int]]] = {}
    replies = worker._Worker.replies  # type: ignore[attr-defined]
    for profile in replies:
        server, child = profile["server"], profile["child"]
        for name, ms, faults in stages(server):
            rows.setdefault(f"server: {name}", []).append((ms, faults))
        before_fork = next(m for m in server if m[0] == "before fork")
        rows.setdefault("child: fork returns in the child", []).append(
            ((child[0][1] - before_fork[1]) / 1e6, child[0][2])
        )
        for name, ms, faults in stages(child):
            rows.setdefault(f"child: {name}", []).append((ms, faults))
        waited = next(m for m in server if m[0] == "_wait")
        rows.setdefault("child: exit until reaped", []).append(((waited[1] - child[-1][1]) / 1e6, 0))
        cpu, faults = profile["child_usage"]
        rows.setdefault("child: CPU and faults (wait4)", []).append((cpu * 1e3, faults))
    table = {
        name: {
            "median_ms": statistics.median(v[0] for v in values),
            "mean_ms": statistics.fmean(v[0] for v in values),
            "median_faults": statistics.median(v[1] for v in values),
        }
        for name, values in rows.items()
    }
    server_faults = statistics.median(sum(m[2] for m in stages(p["server"])) for p in replies)
    return totals | {"server_faults_per_sample": server_faults, "stages": table}


# perf: what each process was doing, from the kernel functions on its sampled call chains.
_KINDS = (
    ("copy_process", "fork"),
    ("exc_page_fault", "page faults"),
    ("do_seccomp", "seccomp install"),
    ("landlock_", "Landlock"),
    ("do_exit", "exit"),
    ("do_syscall_64", "other system calls"),
)
_ROLES = ("harness", "worker", "fork server", "sample child")
_FREQUENCY = 1999


def profile_perf(kind: str, repeat: int, workers: int) -> dict[str, Any]:
    """Run ``kind`` programs under ``perf record``; CPU ms per sample by process role and kind of work."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        command = [
            sys.executable,
            __file__,
            "--run",
            kind,
            "--repeat",
            str(repeat),
            "--workers",
            str(workers),
        ]
        subprocess.run(
            ["perf", "record", "-q", "-F", str(_FREQUENCY), "-g", "-o", str(data), "--", *command], check=True
        )
        script = subprocess.run(
            ["perf", "script", "-i", str(data), "--show-task-events", "-F", "pid,ip,sym"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    parent: dict[int, int] = {}
    for child, mother in re.findall(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)", script):
        if child != mother:  # not a new thread
            parent.setdefault(int(child), int(mother))
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for block in script.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines or not lines[0].strip().isdigit():
            continue
        pid, chain = int(lines[0]), " ".join(lines[1:])
        depth = 0
        while pid in parent and depth < 4:
            pid, depth = parent[pid], depth + 1
        what = next((name for key, name in _KINDS if key in chain), "user space")
        counts[_ROLES[min(depth, 3)], what] += 1
    n = len(programs(kind, repeat))
    out: dict[str, Any] = {"samples": n, "frequency_hz": _FREQUENCY}
    for role in _ROLES:
        kinds = {what: c / _FREQUENCY * 1e3 / n for (r, what), c in counts.most_common() if r == role}
        out[role] = {"total_ms": sum(kinds.values()), **kinds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="copies of each canonical solution")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--perf", metavar="LABEL", help="profile with perf and store the result under LABEL")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "code_sandbox_profile.json"
    )
    parser.add_argument("--run", choices=("canonical", "trivial"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--child-stages", action="store_true", help="also time the child's stages (adds faults of its own)"
    )
    args = parser.parse_args()
    if args.run:  # the workload perf records
        run(programs(args.run, args.repeat), args.workers)
        return
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["command"] = "python benchmarks/code_sandbox_profile.py --repeat N [--perf LABEL]"
    report["machine"] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    if args.perf:
        report.setdefault("perf", {})[args.perf] = {
            kind: profile_perf(kind, args.repeat, args.workers) for kind in ("canonical", "trivial")
        }
    else:
        patch = f"CHILD_STAGES = {args.child_stages}\n" + _PATCH
        worker._BOOTSTRAP = worker._BOOTSTRAP.replace("main()\n", patch + "\nmain()\n")
        read = worker._Worker.message

        def keep(self: worker._Worker) -> dict[str, Any] | None:
            message = read(self)
            if message is not None and "profile" in message:
                worker._Worker.replies.append(message["profile"])  # type: ignore[attr-defined]
            return message

        worker._Worker.message = keep  # type: ignore[method-assign]
        report["stages"] = {
            kind: profile_stages(kind, args.repeat, args.workers) for kind in ("canonical", "trivial")
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
