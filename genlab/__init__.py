"""genlab: train, compare and evaluate the classic unsupervised generative models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


class GenlabError(Exception):
    """A user-facing error: the CLI prints its message as one line, without a traceback."""
