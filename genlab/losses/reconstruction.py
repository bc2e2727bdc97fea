"""Reconstruction losses, for decoder outputs `out` against images `x` in [-1, 1].

"mse" and "l1" compare `out` with x directly; "bce" treats `out` as Bernoulli logits of the
pixel intensities rescaled to [0, 1] (the decoder's output goes through a sigmoid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError

KINDS = ("mse", "bce", "l1")


def check_kind(kind: str, key: str = "model.recon_loss") -> str:
    if kind not in KINDS:
        raise GenlabError(f"{key}={kind!r} is not one of {', '.join(KINDS)}")
    return kind


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], the Bernoulli targets."""
    return (x + 1) / 2


def _check_shapes(out: Tensor, x: Tensor) -> None:
    if out.shape != x.shape:  # a silent broadcast here would train on garbage
        raise ValueError(f"decoder output {tuple(out.shape)} does not match the images {tuple(x.shape)}; set the decoder's out_shape")


def reconstruction_error(out: Tensor, x: Tensor, kind: str) -> Tensor:
    """Per-sample error averaged over pixels, shape (B,): the autoencoders' training loss."""
    _check_shapes(out, x)
    if kind == "mse":
        err = (out - x) ** 2
    elif kind == "l1":
        err = (out - x).abs()
    else:
        err = F.binary_cross_entropy_with_logits(out, to_unit(x), reduction="none")
    return err.flatten(1).mean(1)


def negative_log_likelihood(out: Tensor, x: Tensor, kind: str, scale: float = 1.0) -> Tensor:
    """-log p(x | decoder output) in nats per sample, shape (B,), summed over pixels.

    mse: Gaussian N(x; out, scale^2); l1: Laplace(x; out, scale); bce: Bernoulli(x01; sigmoid(out)).
    """
    _check_shapes(out, x)
    d = x[0].numel()
    if kind == "mse":
        sq = ((out - x) ** 2).flatten(1).sum(1)
        return 0.5 * sq / scale**2 + d * (math.log(scale) + 0.5 * math.log(2 * math.pi))
    if kind == "l1":
        return (out - x).abs().flatten(1).sum(1) / scale + d * math.log(2 * scale)
    return F.binary_cross_entropy_with_logits(out, to_unit(x), reduction="none").flatten(1).sum(1)


def output_to_image(out: Tensor, kind: str) -> Tensor:
    """Decoder output -> image in [-1, 1] (the Bernoulli mean for bce)."""
    if kind == "bce":
        return torch.sigmoid(out) * 2 - 1
    return out.clamp(-1, 1)


def _gaussian_blur(x: Tensor) -> Tensor:
    """5x5 binomial (approximately Gaussian) blur per channel, reflection padded."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16
    kernel = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), kernel, groups=x.shape[1])


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """Band-pass levels (finest first) and the final low-pass image: levels + 1 tensors."""
    bands = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 4:
            break
        low = _gaussian_blur(x)
        bands.append(x - low)
        x = F.avg_pool2d(low, 2)
    return bands + [x]


def laplacian_pyramid_l1(out: Tensor, x: Tensor, levels: int = 4) -> Tensor:
    """Lap1 of GLO: sum_j 2^(-2j) |L^j(out) - L^j(x)|_1 over pyramid levels j (finest j = 0),
    per image, shape (B,), divided by the pixel count of the finest level."""
    _check_shapes(out, x)
    total = 0
    for j, (a, b) in enumerate(zip(laplacian_pyramid(out, levels), laplacian_pyramid(x, levels))):
        total = total + 2.0 ** (-2 * j) * (a - b).abs().flatten(1).sum(1)
    return total / x[0].numel()
