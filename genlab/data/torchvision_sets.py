"""MNIST, Fashion-MNIST, CIFAR-10 and CelebA through torchvision, with its download code and
a clear error when the files are missing; Fashion-MNIST and MNIST also read a system copy
of the IDX files (Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from genlab.errors import GenlabError
from genlab.data.splits import check_split
from genlab.data.transforms import prepare

CLASSES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "celeba": "CelebA"}
SYSTEM_IDX = {"fashion_mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def default_root() -> Path:
    return Path(os.environ.get("GENLAB_DATA", Path.home() / ".cache" / "genlab" / "data"))


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not, as a numpy array of its dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise GenlabError(f"{path} is not an unsigned-byte IDX file (bad magic number); download it again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise GenlabError(f"{path} is truncated ({arr.size} values for shape {shape}); download it again")
    return arr.reshape(shape)


def find_idx(folder: str | Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of a split in `folder`, gzipped or not, if both are there."""
    found = []
    for stem in IDX_FILES[split]:
        hits = [Path(folder) / (stem + ext) for ext in (".gz", "")]
        hits = [p for p in hits if p.is_file()]
        if not hits:
            return None
        found.append(hits[0])
    return found[0], found[1]


class TorchvisionDataset(Dataset):
    """name: mnist | fashion_mnist | cifar10 | celeba. Looks for a system IDX copy first (MNIST
    family), then torchvision's layout under `root` (downloading there when download=true)."""

    def __init__(
        self,
        name: str,
        split: str = "train",
        root: str | None = None,
        download: bool = False,
        image_size: int = 32,
        channels: int = 1,
        center_crop: int | None = None,
    ):
        if name not in CLASSES:
            raise GenlabError(f"data.dataset.name={name!r} is not one of {', '.join(CLASSES)}")
        self.prepare = prepare(image_size, channels, center_crop)
        self.domain, self.split = name, split  # the labelled set a domain classifier knows (genlab/metrics/domain.py)
        root = Path(root).expanduser() if root else default_root()
        self.images, self.labels, self.tv = None, None, None
        if name in SYSTEM_IDX:
            check_split(split, ("train", "test"))
            files = find_idx(SYSTEM_IDX[name], split) or find_idx(root / name, split)
            if files:
                self.images, self.labels = read_idx(files[0]), torch.from_numpy(read_idx(files[1]).astype(np.int64))
                return
        self.tv = _torchvision(name, split, root, download)

    def __len__(self) -> int:
        return len(self.labels) if self.tv is None else len(self.tv)

    def __getitem__(self, i: int) -> dict:
        if self.tv is None:
            image, label = Image.fromarray(self.images[i]), self.labels[i]
        else:
            image, label = self.tv[i]
            label = torch.as_tensor(label).flatten()[0].long() if not isinstance(label, int) else torch.tensor(label)
        return {"image": self.prepare(image), "label": label}


def _torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, CLASSES[name])
    if name == "celeba":
        kwargs = {"split": check_split(split, ("train", "valid", "test", "all")), "target_type": "attr"}
    else:
        kwargs = {"train": check_split(split, ("train", "test")) == "train"}
    hint = (
        f"data set {name!r} is not under {root}; run with data.dataset.download=true (needs internet), "
        f"or put torchvision's {CLASSES[name]} files there, or point data.dataset.root at them"
    )
    if name in SYSTEM_IDX:
        hint += f" (the raw IDX .gz files in {root / name} work too)"
    try:
        return cls(root=str(root), download=download, **kwargs)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise GenlabError(f"{hint} ({e})") from None
    except OSError as e:  # URLError and friends when offline
        raise GenlabError(f"downloading {name!r} failed ({e}); {hint}") from None
