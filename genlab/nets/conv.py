"""Convolutional encoder and decoder for square images whose side is divisible by 2**depth."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from genlab.nets import layers as L


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (B, out_dim): one stage per entry of `channels`, each halving the side,
    by a stride-2 4x4 conv or, with pooling=True, a 3x3 conv followed by 2x2 max pooling."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        out_dim: int,
        channels: Sequence[int] = (32, 64, 128),
        pooling: bool = False,
        norm: str | None = "batch",
        activation: str = "leaky_relu",
    ):
        super().__init__()
        side = _final_side(image_size, len(channels))
        stages, c_in = [], in_channels
        for i, c in enumerate(channels):
            # the first stage sees raw pixels: no norm there, as in DCGAN
            nrm = L.norm2d(None if i == 0 else norm, c)
            if pooling:
                stages += [nn.Conv2d(c_in, c, 3, 1, 1), nrm, L.activation(activation), nn.MaxPool2d(2)]
            else:
                stages += [nn.Conv2d(c_in, c, 4, 2, 1), nrm, L.activation(activation)]
            c_in = c
        self.features = nn.Sequential(*stages)
        self.head = nn.Linear(c_in * side * side, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(B, in_dim) -> (B, C, S, S): a linear map to (channels[0], S / 2**k, S / 2**k), then k
    stride-2 transposed convs through `channels` and out to `out_channels` (no activation
    at the end: the model maps the output to images according to its likelihood)."""

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: int,
        channels: Sequence[int] = (128, 64, 32),
        norm: str | None = "batch",
        activation: str = "relu",
        final_activation: str | None = None,
    ):
        super().__init__()
        self.side = _final_side(image_size, len(channels))
        self.c0 = channels[0]
        self.head = nn.Linear(in_dim, self.c0 * self.side * self.side)
        stages = [L.norm2d(norm, self.c0), L.activation(activation)]
        outs = list(channels[1:]) + [out_channels]
        for i, (c_in, c_out) in enumerate(zip(channels, outs)):
            stages.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            if i < len(outs) - 1:
                stages += [L.norm2d(norm, c_out), L.activation(activation)]
        stages.append(L.activation(final_activation))
        self.features = nn.Sequential(*stages)

    def forward(self, z: Tensor) -> Tensor:
        h = self.head(z.flatten(1)).view(z.shape[0], self.c0, self.side, self.side)
        return self.features(h)


def _final_side(image_size: int, depth: int) -> int:
    if image_size % (2**depth):
        raise ValueError(f"image_size {image_size} is not divisible by 2**{depth} (one halving per conv stage)")
    return image_size // 2**depth
