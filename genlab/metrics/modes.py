"""Mode coverage on the 2-D mixture benchmarks (Metz et al. 2017; the counting rule of
PacGAN, Lin et al. 2018): each sample goes to its nearest mode and is of high quality within
3 standard deviations of it; a mode is covered when it receives at least `min_count` high-
quality samples."""

from __future__ import annotations

import torch
from torch import Tensor


def mode_coverage(samples: Tensor, centers: Tensor, std: float, min_count: int = 20) -> dict[str, float]:
    dist = torch.cdist(samples.double(), centers.double())  # (N, modes)
    nearest, which = dist.min(1)
    good = nearest <= 3 * std
    counts = torch.bincount(which[good], minlength=len(centers))
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "modes_total": len(centers),
        "high_quality": good.double().mean().item(),
    }
