"""The embedded default data set: scikit-learn's 1,797 real 8x8 handwritten digits (UCI
optdigits), upsampled to image_size, split 80/20 into train and test by a fixed permutation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from genlab.data.splits import check_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0


class Digits(Dataset):
    def __init__(self, split: str = "train", image_size: int = 32):
        from sklearn.datasets import load_digits  # ships the data: no download

        check_split(split, ("train", "test"))
        digits = load_digits()
        order = np.random.RandomState(SPLIT_SEED).permutation(len(digits.target))
        n_test = int(round(TEST_FRACTION * len(order)))
        idx = order[n_test:] if split == "train" else order[:n_test]
        pixels = torch.from_numpy(digits.images[idx]).float().unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
        if image_size != 8:
            pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
        self.images = pixels.clamp(0, 1) * 2 - 1
        self.labels = torch.from_numpy(digits.target[idx]).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}

    def arrays(self) -> dict:
        """Every item's fields as tensors, for whole-batch gathers."""
        return {"image": self.images, "label": self.labels}
