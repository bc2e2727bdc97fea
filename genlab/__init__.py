"""genlab: train, compare and evaluate the classic unsupervised generative models."""

from genlab.errors import GenlabError, Interrupted, RunError, StartUpInterrupts
from genlab.version import __version__

__all__ = ["GenlabError", "Interrupted", "RunError", "StartUpInterrupts", "__version__", "load"]


def load(path, device: str = "auto", ema: bool = True):
    """A trained model for inference: genlab.load("outputs/run").sample(16). See genlab.api."""
    from genlab.api import load as _load

    return _load(path, device, ema)
