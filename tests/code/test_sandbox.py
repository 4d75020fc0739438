"""The sandbox runs programs, tells verdicts apart and contains hostile ones."""

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alignlab.code.sandbox import IsolationWarning, Program, Sandbox, SandboxConfig, Verdict


def run(box: Sandbox, source: str) -> tuple[Verdict, str]:
    outcome = box.run(Program(source))
    return outcome.verdict, outcome.detail


def test_distinct_verdicts(sandbox: Sandbox) -> None:
    assert run(sandbox, "assert 1 + 1 == 2") == (Verdict.PASSED, "")
    verdict, detail = run(sandbox, "x = 1\nassert x == 2, 'nope'")
    assert verdict == Verdict.FAILED and detail == "AssertionError: nope (line 2)"
    assert run(sandbox, "while True:\n    pass")[0] == Verdict.TIMED_OUT
    assert run(sandbox, "x = bytearray(3 << 30)")[0] == Verdict.OUT_OF_MEMORY
    verdict, detail = run(sandbox, "import ctypes\nctypes.string_at(0)")
    assert verdict == Verdict.DIED and "SIGSEGV" in detail


def test_entry_point_is_checked(sandbox: Sandbox) -> None:
    good = "def add(a, b):\n    return a + b\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
    assert sandbox.run(Program(good, "add")).verdict == Verdict.PASSED
    bad = good.replace("a + b", "a - b")
    assert sandbox.run(Program(bad, "add")).verdict == Verdict.FAILED
    missing = sandbox.run(Program("def check(c):\n    pass\n", "add"))
    assert missing.verdict == Verdict.FAILED and "'add'" in missing.detail


def test_exiting_before_the_tests_is_not_a_pass(sandbox: Sandbox) -> None:
    for source in ("import os\nos._exit(0)", "import sys\nsys.exit(0)", "raise SystemExit"):
        assert run(sandbox, source)[0] == Verdict.FAILED, source


def test_output_is_captured_and_capped(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        Program("import os, sys\nprint('hello')\nos.write(1, b'raw')\nprint('x' * 100_000, file=sys.stderr)")
    )
    assert outcome.verdict == Verdict.PASSED
    assert outcome.stdout.startswith("hello\n") or "hello" in outcome.stdout
    assert "raw" in outcome.stdout
    assert len(outcome.stderr) == sandbox.config.output_bytes
    flood = sandbox.run(Program("while True:\n    print('x' * 4096)"))
    assert flood.verdict in (Verdict.FAILED, Verdict.TIMED_OUT)


def test_cpu_time_not_wall_time_decides_timeouts(sandbox: Sandbox) -> None:
    # Sleeping uses no CPU: 0.6 s of it passes under a 0.5 s CPU limit.
    assert run(sandbox, "import time\ntime.sleep(0.6)")[0] == Verdict.PASSED
    verdict, detail = run(sandbox, "import time\ntime.sleep(60)")
    assert verdict == Verdict.TIMED_OUT and "wall-clock" in detail


def test_ignoring_the_timer_signal_still_times_out(sandbox: Sandbox) -> None:
    source = (
        "import signal\n"
        "for s in (signal.SIGPROF, signal.SIGALRM, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "while True:\n"
        "    pass"
    )
    assert run(sandbox, source)[0] == Verdict.TIMED_OUT
    catching = (
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        continue\n"
    )
    assert run(sandbox, catching)[0] == Verdict.TIMED_OUT


def test_environment_is_scrubbed(
    start_sandbox: Callable[[SandboxConfig], Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNLAB_TEST_SECRET", "hunter2")
    box = start_sandbox(SandboxConfig(workers=1))
    source = (
        "import os\nassert 'ALIGNLAB_TEST_SECRET' not in os.environ\nassert 'hunter2' not in str(os.environ)"
    )
    assert run(box, source) == (Verdict.PASSED, "")


def test_writes_outside_its_folder_are_refused(
    sandbox: Sandbox, fully_isolated: bool, tmp_path: Path
) -> None:
    if not fully_isolated:
        pytest.skip("needs the mount namespace and Landlock")
    target = tmp_path / "escaped.txt"
    source = f"open({str(target)!r}, 'w').write('x')"
    assert run(sandbox, source)[0] == Verdict.FAILED
    assert not target.exists()
    own = "import os\nopen('mine.txt', 'w').write('x')\nassert os.path.exists('mine.txt')"
    assert run(sandbox, own)[0] == Verdict.PASSED
    assert run(sandbox, "import os\nassert not os.path.exists('mine.txt')")[0] == Verdict.PASSED


def test_no_network(sandbox: Sandbox, fully_isolated: bool) -> None:
    if not fully_isolated:
        pytest.skip("needs the network namespace and seccomp")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(1.0)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    source = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)"
    verdict, detail = run(sandbox, source)
    thread.join()
    listener.close()
    assert verdict == Verdict.FAILED and not accepted, detail


def test_no_shell_and_no_orphans(sandbox: Sandbox, fully_isolated: bool, tmp_path: Path) -> None:
    if not fully_isolated:
        pytest.skip("needs seccomp and the PID namespace")
    marker = tmp_path / "shell-ran"
    for call in (
        f"os.system('touch {marker}')",
        f"subprocess.run(['touch', {str(marker)!r}])",
        f"ctypes.CDLL(None).system(b'touch {marker}')",
    ):
        run(sandbox, f"import os, subprocess, ctypes\n{call}")
    assert not marker.exists()
    assert run(sandbox, "import os\nos.fork()")[0] == Verdict.FAILED


def test_forked_orphans_are_killed(start_sandbox: Callable[[SandboxConfig], Sandbox]) -> None:
    psutil = pytest.importorskip("psutil")
    box = start_sandbox(SandboxConfig(workers=1, processes=4))
    if box.isolation is None or box.isolation.platform != "linux":
        pytest.skip("needs Linux (a PID namespace or a subreaper)")
    source = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\n"
    assert run(box, source)[0] == Verdict.PASSED
    worker = psutil.Process(box._workers[0].process.pid)
    deadline = time.monotonic() + 2
    while len(worker.children(recursive=True)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Only the fork server: nothing the program started outlives it.
    assert len(worker.children(recursive=True)) <= 1


def test_signals_cannot_reach_the_harness_or_the_server(sandbox: Sandbox) -> None:
    for target in (os.getpid(), 1, "os.getppid()"):
        run(sandbox, f"import os, signal\nos.kill({target}, signal.SIGKILL)")
    assert run(sandbox, "pass") == (Verdict.PASSED, "")


def test_a_sample_that_kills_its_worker_does_not_kill_the_harness(
    start_sandbox: Callable[[SandboxConfig], Sandbox],
) -> None:
    box = start_sandbox(SandboxConfig(workers=1, isolate=False))
    worker_pid = box._workers[0].process.pid
    source = f"import os, signal, time\nos.kill({worker_pid}, signal.SIGKILL)\ntime.sleep(1)"
    assert box.run(Program(source)).verdict == Verdict.DIED
    assert box.run(Program("pass")).verdict == Verdict.PASSED


def test_map_resends_the_programs_queued_behind_one_that_kills_its_worker(
    start_sandbox: Callable[[SandboxConfig], Sandbox],
) -> None:
    box = start_sandbox(SandboxConfig(workers=1, isolate=False))
    worker_pid = box._workers[0].process.pid
    killer = Program(f"import os, signal, time\nos.kill({worker_pid}, signal.SIGKILL)\ntime.sleep(1)")
    programs = [Program("pass"), killer, Program("pass"), Program("assert False"), Program("pass")]
    verdicts = [o.verdict for o in box.map(programs)]
    assert verdicts == [Verdict.PASSED, Verdict.DIED, Verdict.PASSED, Verdict.FAILED, Verdict.PASSED]


def test_a_locked_folder_is_emptied_for_the_next_program(
    start_sandbox: Callable[[SandboxConfig], Sandbox],
) -> None:
    box = start_sandbox(SandboxConfig(workers=1))
    first = box._workers[0].process.pid
    lock = "import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\n"
    lock += "for d in ('a/b', 'a', '.'):\n    os.chmod(d, 0)"
    assert run(box, lock)[0] == Verdict.PASSED
    assert run(box, "import os\nassert os.listdir('.') == []") == (Verdict.PASSED, "")
    assert box._workers[0].process.pid == first  # emptied, not replaced


def test_a_folder_that_cannot_be_emptied_retires_its_worker(
    start_sandbox: Callable[[SandboxConfig], Sandbox],
) -> None:
    box = start_sandbox(SandboxConfig(workers=1))
    first = box._workers[0].process.pid
    deep = "import os\nfor _ in range(20):\n    os.mkdir('d' * 250)\n    os.chdir('d' * 250)"
    assert run(box, deep)[0] == Verdict.PASSED  # deeper than a path can name: not removable by path
    assert run(box, "import os\nassert os.listdir('.') == []") == (Verdict.PASSED, "")
    assert box._workers[0].process.pid != first


def test_parallel_map_keeps_order_and_verdicts_repeat(sandbox: Sandbox) -> None:
    programs = [Program(f"assert {i} % 3 != 0") for i in range(40)]
    first = [o.verdict for o in sandbox.map(programs)]
    second = [o.verdict for o in sandbox.map(programs)]
    assert first == second
    assert first == [Verdict.FAILED if i % 3 == 0 else Verdict.PASSED for i in range(40)]


def test_isolation_is_reported(sandbox: Sandbox) -> None:
    iso = sandbox.isolation
    assert iso is not None
    assert iso.limits and any("cpu" in limit for limit in iso.limits)
    assert iso.to_dict()["platform"]


def test_missing_layers_are_warned_about() -> None:
    box = Sandbox(SandboxConfig(workers=1, isolate=False, require_isolation=True))
    try:
        with pytest.warns(IsolationWarning, match="turned off"):
            box.start()
        assert box.isolation is not None and not box.isolation.seccomp
    finally:
        box.close()
