"""The alignlab error tree.

Every error alignlab raises on purpose derives from :class:`AlignlabError`, so a caller
can catch everything at once or one branch at the right level::

    AlignlabError
    ├── ConfigError              a setting, option or name is wrong
    │   └── UnknownNameError     a registry has no such name (suggests the closest)
    ├── DependencyError          an optional dependency is missing (names the extra)
    │   └── ToolInstallError     a tool installed on first use (garak) could not be installed
    ├── DataError                an input file is malformed (names the file and line)
    │   └── DataNotFoundError    a dataset file is not in the data folder (names the dataset, where it looked)
    ├── SandboxError             untrusted code could not be run with the isolation asked for
    ├── ToolRunError             an external tool (garak) failed or ran too long (names its log)
    └── ModelError               a model could not do what was asked
        ├── ModelNotFoundError   no weights at the given path or id
        ├── EndpointError        an HTTP endpoint is unreachable or answered with an error
        ├── ContextLengthError   the prompt does not fit the model's context
        └── CapabilityError      the backend cannot do this (e.g. hidden states over HTTP)

Messages say what was wrong and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class AlignlabError(Exception):
    """Base class of every error alignlab raises on purpose."""


class ConfigError(AlignlabError):
    """A setting, option or name is wrong."""


class UnknownNameError(ConfigError):
    """A registry was asked for a name it does not hold.

    Args:
        kind: what the registry holds, e.g. ``"model backend"``.
        name: the name that was asked for.
        known: the names the registry does hold.
        suggestion: the closest known name, if any is close.
    """

    def __init__(self, kind: str, name: str, known: list[str], suggestion: str | None) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        self.suggestion = suggestion
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}.")


class DependencyError(AlignlabError):
    """An optional dependency is not installed.

    Args:
        package: the import name that failed.
        extra: the alignlab extra that provides it (several may be joined by commas).
        needed_for: what needs it, e.g. ``"alignlab serve"``; shown in the message when given.
    """

    def __init__(self, package: str, extra: str, needed_for: str = "") -> None:
        self.package = package
        self.extra = extra
        self.needed_for = needed_for
        why = f" (needed for {needed_for})" if needed_for else ""
        super().__init__(
            f"{package!r} is not installed{why}; install it with: pip install 'alignlab[{extra}]'"
        )


class ToolInstallError(DependencyError):
    """A tool alignlab installs on first use, into its own environment, could not be installed.

    Args:
        tool: the tool's package name, e.g. ``"garak"``.
        version: the pinned version.
        reason: which step failed.
        log: the install log, where pip says why.
    """

    def __init__(self, tool: str, version: str, reason: str, log: str | Path) -> None:
        self.package = tool
        self.extra = ""
        self.version = version
        self.log = str(log)
        AlignlabError.__init__(
            self,
            f"could not install {tool}=={version}: {reason}; see {self.log} "
            "(the package index must be reachable on first use)",
        )


class DataError(AlignlabError):
    """An input file is malformed.

    Args:
        path: the file.
        line: the 1-based line number, where one applies.
        reason: what is wrong.
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class DataNotFoundError(DataError):
    """A file of a dataset is not in the data folder.

    Args:
        path: the file looked for.
        dataset: the dataset it belongs to (a name ``alignlab data`` lists).
        root: the data folder.
        origin: how that folder was chosen (``--data-dir``, ``$ALIGNLAB_DATA`` or the default).
    """

    def __init__(self, path: str | Path, dataset: str, root: str | Path, origin: str) -> None:
        self.dataset = dataset
        self.root = str(Path(root).resolve())
        super().__init__(
            path,
            None,
            f"no such file, needed for the dataset {dataset!r}; looked in the data folder {self.root} "
            f"({origin}); point alignlab at yours with --data-dir or $ALIGNLAB_DATA "
            "(`alignlab data` lists the datasets and where they come from)",
        )


class SandboxError(AlignlabError):
    """The sandbox could not start, or could not get the isolation it was required to have."""


class ToolRunError(AlignlabError):
    """An external tool alignlab drives (such as garak) failed or ran past its time limit.

    Args:
        tool: the tool, e.g. ``"garak"``.
        reason: what happened.
        log: the tool's output, where it says why.
    """

    def __init__(self, tool: str, reason: str, log: str | Path) -> None:
        self.tool = tool
        self.log = str(log)
        super().__init__(f"{tool} {reason}; see {self.log}")


class ModelError(AlignlabError):
    """A model could not do what was asked."""


class ModelNotFoundError(ModelError):
    """No model weights at the given path or id."""


class EndpointError(ModelError):
    """An HTTP endpoint is unreachable or answered with an error.

    Args:
        url: the URL that failed.
        reason: what happened.
        status: the HTTP status, where the server answered.
    """

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"endpoint {url}{code}: {reason}")


class ContextLengthError(ModelError):
    """The prompt (plus the tokens asked for) does not fit the model's context.

    Args:
        tokens: the prompt length in tokens.
        limit: the model's context length.
    """

    def __init__(self, tokens: int, limit: int) -> None:
        self.tokens = tokens
        self.limit = limit
        super().__init__(
            f"prompt is {tokens} tokens but the model's context is {limit} tokens; shorten the prompt"
        )


class CapabilityError(ModelError):
    """The backend cannot do this at all (not a transient failure)."""
