"""Per-image reconstruction metrics for images in [-1, 1]."""

import torch
from torch import Tensor

DATA_RANGE = 2.0  # images live in [-1, 1]


def per_image_mse(rec: Tensor, x: Tensor) -> Tensor:
    """Mean squared error per image, shape (B,), in the [-1, 1] units of the images."""
    return ((rec.float() - x.float()) ** 2).flatten(1).mean(1)


def psnr(rec: Tensor, x: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, shape (B,), peak = the [-1, 1] range;
    averaged over images by the caller (the usual convention). Capped at 100 dB for exact copies."""
    mse = per_image_mse(rec, x).clamp_min(DATA_RANGE**2 * 1e-10)
    return 10 * torch.log10(DATA_RANGE**2 / mse)
