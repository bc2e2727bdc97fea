"""Multi-layer perceptrons on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

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

