"""Stacked data sets for counting modes on real images (Metz et al. 2017, VEEGAN, PacGAN):
each sample is three images of a 10-class set drawn at random into the R, G and B channels,
so the set has 1,000 modes; its label is the mode id 100 * r + 10 * g + b. The three images
of sample i are a pure function of (seed, split, i)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from genlab.errors import GenlabError

BASES = ("fashion_mnist", "digits", "mnist")


class StackedDataset(Dataset):
    """base: fashion_mnist | digits | mnist (its grey images at image_size); size: samples in
    the split (null: as many as the base split has images)."""

    modes = 1000

    def __init__(self, base: str, split: str = "train", image_size: int = 32, seed: int = 0, size: int | None = None, root: str | None = None):
        if base not in BASES:
            raise GenlabError(f"data.dataset.base={base!r} is not one of {', '.join(BASES)}")
        if base == "digits":
            from genlab.data.digits import Digits

            self.base = Digits(split, image_size)
        else:
            from genlab.data.torchvision_sets import TorchvisionDataset

            self.base = TorchvisionDataset(base, split, root, image_size=image_size, channels=1)
        self.stacked_of, self.split, self.image_size = base, split, image_size
        n = len(self.base) if size is None else int(size)
        if n < 1:
            raise GenlabError(f"data.dataset.size={size} must be at least 1")
        self.picks = np.random.RandomState([int(seed), 0 if split == "train" else 1]).randint(0, len(self.base), size=(n, 3))
        base_labels = self.base.labels.numpy() if torch.is_tensor(self.base.labels) else np.asarray(self.base.labels)
        self.channel_labels = torch.from_numpy(base_labels[self.picks].astype(np.int64))  # (n, 3): r, g, b classes
        self.labels = self.channel_labels @ torch.tensor([100, 10, 1])
        if hasattr(self.base, "arrays"):  # the digits, held as tensors: whole-batch gathers
            self.arrays = self._gathers

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, i: int) -> dict:
        image = torch.cat([self.base[int(j)]["image"] for j in self.picks[i]])
        return {"image": image, "label": self.labels[i]}

    def _gathers(self) -> dict:
        images = self.base.arrays()["image"][:, 0]
        return {"image": _Stacker(images, torch.from_numpy(self.picks)), "label": self.labels}


class _Stacker:
    """Indexable like a tensor of the stacked images, built per gather."""

    def __init__(self, images: torch.Tensor, picks: torch.Tensor):
        self.images, self.picks = images, picks

    def __getitem__(self, index) -> torch.Tensor:
        return self.images[self.picks[index]]  # (B, 3, H, W)
