"""DCGAN generator and discriminator (Radford et al. 2016) for square images of side 32, 64,
... (any power of two from 16): strided (transposed) 4x4 convs, batch norm in G, LeakyReLU(0.2)
in D, tanh output, N(0, 0.02) init; optional class conditioning for the conditional GAN."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.nets import layers as L


def _depth(image_size: int) -> int:
    depth = math.log2(image_size / 4)
    if image_size < 16 or depth != int(depth):
        raise GenlabError(f"DCGAN nets need data.image_size a power of two >= 16, got {image_size}")
    return int(depth)


class DCGANGenerator(nn.Module):
    """z (B, z_dim) [+ label code] -> (B, C, S, S) in [-1, 1]: a 4x4 map of base * 2^(k-1)
    channels, then k stride-2 transposed convs halving the channels, the last to C."""

    def __init__(self, z_dim: int = 100, out_channels: int = 3, image_size: int = 64, base_channels: int = 64,
                 num_classes: int = 0, cond: str = "embedding", cond_dim: int | None = 50):
        super().__init__()
        k = _depth(image_size)
        self.z_dim = z_dim
        self.label = L.LabelCode(num_classes, cond, cond_dim) if num_classes else None
        c = base_channels * 2 ** (k - 1)
        in_dim = z_dim + (self.label.dim if self.label else 0)
        stages = [nn.ConvTranspose2d(in_dim, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(k - 1):
            stages += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        stages += [nn.ConvTranspose2d(c, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*stages)
        L.init_normal(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label is not None:
            z = torch.cat([z, self.label(y)], 1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(B, C, S, S) [+ label] -> logits (B,): k stride-2 4x4 convs doubling the channels down
    to 4x4 (no norm on the first), then a 4x4 conv to one logit.

    norm: one of layers.NORMS (WGAN-GP and R1 need one without batch statistics);
    spectral_norm wraps every conv; conditioning by `concat` (one-hot label maps as extra input
    channels) or `projection` (Miyato & Koyama 2018: + <embed(y), sum-pooled features>).
    `forward(x, y, features=True)` also returns the 4x4 features for feature matching."""

    def __init__(self, in_channels: int = 3, image_size: int = 64, base_channels: int = 64, norm: str = "batch",
                 spectral_norm: bool = False, num_classes: int = 0, cond: str = "projection"):
        super().__init__()
        if num_classes and cond not in ("concat", "projection"):
            raise GenlabError(f"discriminator conditioning {cond!r} is not one of concat, projection")
        k = _depth(image_size)
        self.num_classes, self.cond = num_classes, cond
        c_in = in_channels + (num_classes if num_classes and cond == "concat" else 0)
        sn = lambda m: L.maybe_spectral_norm(m, spectral_norm)  # noqa: E731
        stages, c = [sn(nn.Conv2d(c_in, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2, True)], base_channels
        for _ in range(k - 1):
            stages += [sn(nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm == "none")), L.norm2d(norm, c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        self.features = nn.Sequential(*stages)
        self.head = sn(nn.Conv2d(c, 1, 4, 1, 0))
        self.embed = sn(nn.Embedding(num_classes, c)) if num_classes and cond == "projection" else None
        L.init_normal(self)

    def forward(self, x: Tensor, y: Tensor | None = None, features: bool = False):
        if self.num_classes and self.cond == "concat":
            maps = nn.functional.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], 1)
        h = self.features(x)  # (B, C, 4, 4)
        logits = self.head(h).flatten()
        if self.embed is not None:
            logits = logits + (self.embed(y) * h.sum((2, 3))).sum(1)
        return (logits, h.flatten(1)) if features else logits
