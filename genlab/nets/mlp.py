"""Multi-layer perceptrons on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.nets import layers as L


class MLP(nn.Module):
    """dims[0] -> dims[1] -> ... -> dims[-1], one `layers` entry per Linear (+ activation).

    Inputs of any shape (B, ...) are flattened; `out_shape` reshapes the output, e.g. to
    (C, H, W). Keeping layers separate lets a stacked autoencoder pretrain them one by one.
    """

    def __init__(
        self,
        dims: Sequence[int],
        activation: str | None = "relu",
        final_activation: str | None = None,
        bias: bool = True,
        out_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size, got dims={list(dims)}")
        n = len(dims) - 1
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(dims[i], dims[i + 1], bias=bias),
                L.activation(final_activation if i == n - 1 else activation),
            )
            for i in range(n)
        )
        self.out_shape = tuple(out_shape) if out_shape is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = layer(x)
        return x if self.out_shape is None else x.view(x.shape[0], *self.out_shape)



class MLPGenerator(nn.Module):
    """z (B, z_dim) [+ label code] -> samples of out_shape: images (C, H, W) with tanh, or
    points such as (2,) for the 2-D benchmarks with no final activation."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], hidden: Sequence[int] = (256, 256), activation: str = "relu",
                 final_activation: str | None = "tanh", num_classes: int = 0, cond: str = "embedding", cond_dim: int | None = 16):
        super().__init__()
        self.z_dim = z_dim
        self.label = L.LabelCode(num_classes, cond, cond_dim) if num_classes else None
        out = 1
        for s in out_shape:
            out *= int(s)
        in_dim = z_dim + (self.label.dim if self.label else 0)
        self.net = MLP([in_dim, *hidden, out], activation=activation, final_activation=final_activation, out_shape=out_shape)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label is not None:
            z = torch.cat([z, self.label(y)], 1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Samples of in_shape [+ label] -> logits (B,), with the last hidden layer as features;
    options as the DCGAN discriminator's (spectral norm, concat or projection conditioning)."""

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int] = (256, 256), activation: str = "leaky_relu",
                 spectral_norm: bool = False, num_classes: int = 0, cond: str = "projection"):
        super().__init__()
        d = 1
        for s in in_shape:
            d *= int(s)
        self.num_classes, self.cond = num_classes, cond
        dims = [d + (num_classes if num_classes and cond == "concat" else 0), *hidden]
        sn = lambda m: L.maybe_spectral_norm(m, spectral_norm)  # noqa: E731
        self.features = nn.Sequential(*[nn.Sequential(sn(nn.Linear(a, b)), L.activation(activation)) for a, b in zip(dims, dims[1:])])
        self.head = sn(nn.Linear(dims[-1], 1))
        self.embed = sn(nn.Embedding(num_classes, dims[-1])) if num_classes and cond == "projection" else None
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor | None = None, features: bool = False):
        x = x.flatten(1)
        if self.num_classes and self.cond == "concat":
            x = torch.cat([x, nn.functional.one_hot(y, self.num_classes).to(x.dtype)], 1)
        h = self.features(x)
        logits = self.head(h).flatten()
        if self.embed is not None:
            logits = logits + (self.embed(y) * h).sum(1)
        return (logits, h) if features else logits
