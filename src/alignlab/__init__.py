"""alignlab: build, evaluate and safeguard language assistants.

Importing the package does no work: models, servers and pillars load on first use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alignlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
