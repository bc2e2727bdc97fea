"""2-D mixtures of Gaussians, the standard mode-collapse benchmarks (Metz et al. 2017,
unrolled GANs): ring8, 8 modes on a circle of radius 2 with std 0.02; grid25, a 5 x 5 grid
at {-4, -2, 0, 2, 4}^2 with std 0.05. Items are points (2,) with their mode as label."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from genlab.errors import GenlabError
from genlab.data.splits import check_split

KINDS = {"ring8": 0.02, "grid25": 0.05}


def mode_centers(kind: str) -> torch.Tensor:
    if kind == "ring8":
        angles = torch.arange(8) * 2 * math.pi / 8
        return torch.stack([2 * torch.cos(angles), 2 * torch.sin(angles)], 1)
    if kind == "grid25":
        g = torch.arange(-4.0, 5.0, 2.0)
        return torch.cartesian_prod(g, g)
    raise GenlabError(f"data.dataset.kind={kind!r} is not one of {', '.join(KINDS)}")


class GaussianMixture(Dataset):
    def __init__(self, kind: str = "ring8", split: str = "train", size: int = 50_000, seed: int = 0):
        check_split(split, ("train", "test"))
        self.kind, self.centers, self.std = kind, mode_centers(kind), KINDS[kind]
        g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
        n = size if split == "train" else max(size // 10, 1000)
        self.labels = torch.randint(len(self.centers), (n,), generator=g)
        self.points = self.centers[self.labels] + self.std * torch.randn(n, 2, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.points[i], "label": self.labels[i]}

    def arrays(self) -> dict:
        """Every item's fields as tensors, for whole-batch gathers."""
        return {"image": self.points, "label": self.labels}
