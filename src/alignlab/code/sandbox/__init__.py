"""Run untrusted Python programs in confined, resource-limited processes.

The layers, outermost first, one module each:

* ``executor``: where programs run: the local pool, or pools on the workers of a Dask cluster;
* ``pool``: the caller's side: :class:`Sandbox`, a pool of warm worker processes, and the
  :class:`Program`, :class:`Outcome` and :class:`SandboxConfig` it speaks in;
* ``forkserver``: a worker process: enters its namespaces once, then forks a child per program;
* ``namespaces``: the worker's kernel isolation (user, network, mount and PID namespaces,
  capabilities) and the :class:`~alignlab.code.sandbox.namespaces.Isolation` report;
* ``child``: a program's own process: resource limits, seccomp, the program and its tests;
* ``reap``: the fork server's work after each program: reap it under a wall-clock backstop,
  kill whatever it left running, empty its folder;
* ``landlock`` and ``seccomp``: the kernel layers every program runs under (the fork server
  enters them, each child adds the few seccomp rules that are its own);
* ``strict``: the in-process checks against reward hacks on the unit tests.

A worker imports ``forkserver`` and what it needs without running this file, so nothing
here may be needed by a worker.
"""

from alignlab.code.sandbox.executor import Executor, make_executor
from alignlab.code.sandbox.pool import IsolationWarning, Outcome, Program, Sandbox, SandboxConfig, Verdict

__all__ = [
    "Executor",
    "IsolationWarning",
    "Outcome",
    "Program",
    "Sandbox",
    "SandboxConfig",
    "Verdict",
    "make_executor",
]
