"""Small building blocks chosen by name from configs."""

from torch import nn

from genlab.errors import GenlabError

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


NORMS = ("batch", "instance", "instance_affine", "layer", "none")


def norm2d(name: str | None, channels: int) -> nn.Module:
    """The one norm factory of every conv net: batch; instance (no learned scale and shift,
    as in the pix2pix and CycleGAN references); instance_affine (with them); layer (one group
    norm over C, H, W: no batch statistics, as a gradient penalty's per-sample gradients
    need); none."""
    if name is None or name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name in ("instance", "instance_affine"):
        return nn.InstanceNorm2d(channels, affine=name == "instance_affine")
    if name == "layer":
        return nn.GroupNorm(1, channels)
    raise GenlabError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class LabelCode(nn.Module):
    """Class labels (B,) -> condition vectors (B, dim): one-hot (dim = num_classes) or a
    learned embedding."""

    def __init__(self, num_classes: int, mode: str = "embedding", dim: int | None = None):
        super().__init__()
        if mode not in ("onehot", "embedding"):
            raise GenlabError(f"label conditioning {mode!r} is not one of onehot, embedding")
        self.num_classes, self.mode = num_classes, mode
        self.dim = num_classes if mode == "onehot" else (dim or num_classes)
        self.embed = nn.Embedding(num_classes, self.dim) if mode == "embedding" else None

    def forward(self, y):
        if self.embed is not None:
            return self.embed(y)
        return nn.functional.one_hot(y, self.num_classes).float()


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The init of the DCGAN, pix2pix and CycleGAN papers: conv, linear and embedding weights
    ~ N(0, std), batch-norm scales ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
