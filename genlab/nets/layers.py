"""Small building blocks chosen by name from configs."""

from torch import nn

from genlab import GenlabError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str | None) -> nn.Module:
    """Module for an activation name; None or "identity" gives the identity (linear layer)."""
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise GenlabError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def norm2d(name: str | None, channels: int) -> nn.Module:
    options = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": None, None: None}
    if name not in options:
        raise GenlabError(f"unknown norm {name!r}; choose one of batch, instance, none")
    return nn.Identity() if options[name] is None else options[name](channels)
