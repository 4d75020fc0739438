"""Where a sandbox sample's time goes: fork, the child's layers, the program, the exit, the server.

Runs HumanEval's canonical solutions through sandbox workers whose fork server and children
are instrumented (wrappers around the stages, nothing else changed), and prints, per
stage, the median and mean wall time (``perf_counter_ns``), the minor page faults (the
copy-on-write faults that follow a fork show up here) and, from ``getrusage``, the CPU of
the harness process and of the workers and children together.

    python benchmarks/code_sandbox_profile.py --repeat 2

Wall times in the child are those of one process on a core and include waiting for a core
on a loaded machine; the CPU totals do not.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import time
import warnings
from typing import Any

from alignlab.code.problems import load_problems
from alignlab.code.sandbox import IsolationWarning, Program, Sandbox, SandboxConfig, pool

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="copies of each canonical solution")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--child-stages", action="store_true", help="also time the child's stages (adds faults of its own)"
    )
    parser.add_argument("--trivial", action="store_true", help="run `pass` instead: the fixed cost")
    args = parser.parse_args()
    patch = f"CHILD_STAGES = {args.child_stages}\n" + _PATCH
    pool._BOOTSTRAP = pool._BOOTSTRAP.replace("main()\n", patch + "\nmain()\n")
    pool._Worker.replies = []  # type: ignore[attr-defined]
    read = pool._Worker.message

    def keep(self: pool._Worker) -> dict[str, Any] | None:
        message = read(self)
        if message is not None and "profile" in message:
            pool._Worker.replies.append(message["profile"])  # type: ignore[attr-defined]
        return message

    pool._Worker.message = keep  # type: ignore[method-assign]
    problems = list(load_problems().values())
    programs = [p.program(p.canonical_solution) for _ in range(args.repeat) for p in problems]
    if args.trivial:
        programs = [Program("pass")] * len(programs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IsolationWarning)
        sandbox = Sandbox(SandboxConfig(workers=args.workers))
        sandbox.start()
    own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    verdicts = [o.verdict for o in sandbox.map(programs)]
    wall = time.perf_counter() - started
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    sandbox.close()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = len(programs)
    assert all(v == "passed" for v in verdicts), verdicts
    harness = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / n * 1e3
    workers = (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / n * 1e3
    print(f"{n} samples, {args.workers} workers, {n / wall:.0f} samples/s")
    print(f"CPU ms/sample: harness {harness:.2f}, workers and children {workers:.2f}")
    rows: dict[str, list[tuple[float, int]]] = {}
    replies = pool._Worker.replies  # type: ignore[attr-defined]
    for profile in replies:
        server, child = profile["server"], profile["child"]
        forked = next(m for m in server if m[0] == "fork")
        for name, ms, faults in stages(server):
            rows.setdefault(f"server: {name}", []).append((ms, faults))
        rows.setdefault("child: fork returns in the child", []).append(
            ((child[0][1] - server[[m[0] for m in server].index("before fork")][1]) / 1e6, child[0][2])
        )
        for name, ms, faults in stages(child):
            rows.setdefault(f"child: {name}", []).append((ms, faults))
        cpu, faults = profile["child_usage"]
        rows.setdefault("child: total CPU (getrusage)", []).append((cpu * 1e3, faults))
        waited = next(m for m in server if m[0] == "_wait")
        rows.setdefault("child: exit until reaped", []).append(((waited[1] - child[-1][1]) / 1e6, 0))
        del forked
    server_faults = statistics.median(sum(m[2] for m in stages(p["server"])) for p in replies)
    print(f"server faults per sample (median): {server_faults:.0f}")
    print(f"{'stage':40s} {'median ms':>10s} {'mean ms':>8s} {'faults':>7s}")
    for name, values in rows.items():
        ms = [v[0] for v in values]
        faults = statistics.median(v[1] for v in values)
        print(f"{name:40s} {statistics.median(ms):10.3f} {statistics.fmean(ms):8.3f} {faults:7.0f}")


if __name__ == "__main__":
    main()
