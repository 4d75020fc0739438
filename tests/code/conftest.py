import warnings
from collections.abc import Callable, Iterator

import pytest

from alignlab.code.sandbox import IsolationWarning, Sandbox, SandboxConfig

StartSandbox = Callable[[SandboxConfig], Sandbox]


def _started(config: SandboxConfig) -> Sandbox:
    box = Sandbox(config)
    with warnings.catch_warnings():
        # Expected on kernels that refuse a layer; the tests read the isolation report instead.
        warnings.simplefilter("ignore", IsolationWarning)
        box.start()
    return box


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Two confined workers with short limits, shared by the code tests."""
    box = _started(SandboxConfig(workers=2, cpu_seconds=0.5, wall_seconds=2.0))
    yield box
    box.close()


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start a sandbox of one's own (closed after the test)."""
    boxes: list[Sandbox] = []

    def start(config: SandboxConfig) -> Sandbox:
        boxes.append(_started(config))
        return boxes[-1]

    yield start
    for box in boxes:
        box.close()


@pytest.fixture(scope="session")
def fully_isolated(sandbox: Sandbox) -> bool:
    """Whether every kernel layer is in place (probes relying on one are skipped otherwise)."""
    iso = sandbox.isolation
    assert iso is not None
    return all(
        [iso.network_namespace, iso.mount_namespace, iso.pid_namespace, iso.landlock_abi >= 6, iso.seccomp]
    )
