"""The embedded default data set: scikit-learn's 1,797 real 8x8 handwritten digits (UCI
optdigits), upsampled to image_size, split 80/20 into train and test by a fixed permutation."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from genlab.data.splits import check_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) in 0..16, labels): sklearn.datasets.load_digits's file, read
    without importing scikit-learn (2 s of a 1-step run's start-up) and once per process."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():  # another layout: scikit-learn's own loader
        from sklearn.datasets import load_digits as sklearn_digits

        d = sklearn_digits()
        return d.images, d.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


class Digits(Dataset):
    domain = "digits"  # the labelled set a domain classifier knows (genlab/metrics/domain.py)

    def __init__(self, split: str = "train", image_size: int = 32):
        check_split(split, ("train", "test"))
        images, target = load_digits()
        order = np.random.RandomState(SPLIT_SEED).permutation(len(target))
        n_test = int(round(TEST_FRACTION * len(order)))
        idx = order[n_test:] if split == "train" else order[:n_test]
        pixels = torch.from_numpy(images[idx]).float().unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
        if image_size != 8:
            pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
        self.images = pixels.clamp(0, 1) * 2 - 1
        self.labels = torch.from_numpy(target[idx]).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}

    def arrays(self) -> dict:
        """Every item's fields as tensors, for whole-batch gathers."""
        return {"image": self.images, "label": self.labels}
