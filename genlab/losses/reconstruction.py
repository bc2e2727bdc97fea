"""Reconstruction losses, for decoder outputs `out` against images `x` in [-1, 1].

"mse" and "l1" compare `out` with x directly; "bce" treats `out` as Bernoulli logits of the
pixel intensities rescaled to [0, 1] (the decoder's output goes through a sigmoid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab import GenlabError

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
