"""Two-domain data for image-to-image translation, in the layouts users already have.

Unaligned (CycleGAN): root/trainA, trainB, testA, testB; each A image gets a B image drawn
at random (or in turn, serial=true); the lengths are independent.
Aligned (pix2pix): root/<split>/ with A and B side by side in each image, or root/A/<split>/
and root/B/<split>/ with matching file names; direction AtoB or BtoA.
Preprocessing: resize to load_size, then a random crop to crop_size and a random flip for
training (a center crop for testing); the same crop and flip on both halves of a pair.
Items are {"A": (C_A, S, S), "B": (C_B, S, S)} in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from genlab import GenlabError
from genlab.data.digits import Digits
from genlab.data.image_folder import list_images, usable_images
from genlab.data.splits import check_split
from genlab.data.transforms import load_image


def domain_image(image, channels: int, load_size: int) -> Tensor:
    """PIL image -> (channels, load_size, load_size) in [-1, 1], bicubic as the reference code."""
    image = image.convert("L" if channels == 1 else "RGB")
    x = v2.functional.to_dtype(v2.functional.to_image(image), torch.float32, scale=True)
    return v2.functional.resize(x, [load_size, load_size], interpolation=v2.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1) * 2 - 1


def crop_and_flip(x: Tensor, crop_size: int, train: bool) -> Tensor:
    """Random crop and horizontal flip (global torch RNG) for training, center crop otherwise."""
    h, w = x.shape[-2:]
    if train:
        top, left = (int(torch.randint(0, n - crop_size + 1, ())) for n in (h, w))
    else:
        top, left = (h - crop_size) // 2, (w - crop_size) // 2
    x = x[..., top : top + crop_size, left : left + crop_size]
    return x.flip(-1) if train and torch.rand(()) < 0.5 else x


def _missing(root: Path, layout: str, name: str) -> GenlabError:
    return GenlabError(f"no {name} data under {root}: expected {layout}; download it with "
                       f"python scripts/download_translation_data.py {name} --root {root.parent}, or set data.dataset.root")


def split_pair(path: Path):
    """An A|B side-by-side image -> (A, B) halves of equal size, or one line naming the file."""
    ab = load_image(path)
    w, h = ab.size
    if w % 2 or w < 4:
        raise GenlabError(f"image {path} is {w} pixels wide: an A|B pair needs an even width of two equal halves; "
                          "remove or replace the file, or set data.skip_bad_images=true")
    return ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))


class UnalignedFolders(Dataset):
    random = True  # B partners and crops come from the (per-sample seeded) torch RNG

    def __init__(self, root: str, split: str = "train", load_size: int = 286, crop_size: int = 256, channels_A: int = 3,
                 channels_B: int = 3, serial: bool = False, name: str = "unaligned", skip_bad_images: bool = False):
        check_split(split, ("train", "test"))
        root_path = Path(root).expanduser()
        folders = [root_path / f"{split}{d}" for d in "AB"]
        if not all(f.is_dir() for f in folders):
            raise _missing(root_path, f"{split}A/ and {split}B/ folders of images", name)
        self.files_A, self.files_B = (usable_images(list_images(f), skip_bad_images, where=f"in {f}") for f in folders)
        if not self.files_A or not self.files_B:
            raise _missing(root_path, f"images in {split}A/ and {split}B/", name)
        self.train, self.serial = split == "train", serial
        self.load_size, self.crop_size, self.channels = load_size, crop_size, (channels_A, channels_B)

    def __len__(self) -> int:
        return max(len(self.files_A), len(self.files_B))

    def __getitem__(self, i: int) -> dict:
        j = i % len(self.files_B) if self.serial or not self.train else int(torch.randint(len(self.files_B), ()))
        a = domain_image(load_image(self.files_A[i % len(self.files_A)]), self.channels[0], self.load_size)
        b = domain_image(load_image(self.files_B[j]), self.channels[1], self.load_size)
        return {"A": crop_and_flip(a, self.crop_size, self.train), "B": crop_and_flip(b, self.crop_size, self.train)}


class AlignedFolders(Dataset):
    random = True

    def __init__(self, root: str, split: str = "train", load_size: int = 286, crop_size: int = 256, channels_A: int = 3,
                 channels_B: int = 3, direction: str = "AtoB", name: str = "aligned", skip_bad_images: bool = False):
        if direction not in ("AtoB", "BtoA"):
            raise GenlabError(f"data.dataset.direction={direction!r} is not one of AtoB, BtoA")
        root_path = Path(root).expanduser()
        self.separate = (root_path / "A").is_dir()
        partner = lambda f: root_path / "B" / split / f.name  # noqa: E731
        if self.separate:
            files = list_images(root_path / "A" / split)
            missing = [partner(f) for f in files if not partner(f).is_file()]
            if missing:
                raise GenlabError(f"{missing[0]} is missing: A/{split}/ and B/{split}/ need matching file names")
            check = lambda f: (load_image(f), load_image(partner(f)))  # noqa: E731
        else:
            files = list_images(root_path / split) if (root_path / split).is_dir() else []
            check = split_pair
        self.files = usable_images(files, skip_bad_images, check, f"of split {split!r} under {root_path}")
        self.partners = [partner(f) for f in self.files] if self.separate else []
        if not self.files:
            raise _missing(root_path, f"{split}/ with A|B side-by-side images, or A/{split}/ and B/{split}/", name)
        self.train, self.direction = split == "train", direction
        self.load_size, self.crop_size, self.channels = load_size, crop_size, (channels_A, channels_B)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        if self.separate:
            a_img, b_img = load_image(self.files[i]), load_image(self.partners[i])
        else:
            a_img, b_img = split_pair(self.files[i])
        a = domain_image(a_img, self.channels[0], self.load_size)
        b = domain_image(b_img, self.channels[1], self.load_size)
        pair = crop_and_flip(torch.cat([a, b]), self.crop_size, self.train)  # one crop and flip for both
        a, b = pair[: len(a)], pair[len(a) :]
        return {"A": a, "B": b} if self.direction == "AtoB" else {"A": b, "B": a}


def edge_map(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of images in [-1, 1], thresholded to black lines on white."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    k = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    g = F.conv2d(F.pad((x + 1) / 2, [1, 1, 1, 1], mode="replicate"), k)
    mag = g.pow(2).sum(1, keepdim=True).sqrt()
    return torch.where(mag > 0.5, -1.0, 1.0)


class DigitEdges(Dataset):
    """The offline two-domain sets, from scikit-learn's digits: A = edge maps, B = the digits.
    aligned=True pairs each digit with its own edges (pix2pix); aligned=False pairs each
    edge map with a random other digit (CycleGAN)."""

    def __init__(self, split: str = "train", image_size: int = 32, aligned: bool = True):
        digits = Digits(split, image_size)
        self.B = digits.images
        self.A = edge_map(digits.images)
        self.aligned = aligned
        self.random = not aligned

    def __len__(self) -> int:
        return len(self.A)

    def __getitem__(self, i: int) -> dict:
        j = i if self.aligned else int(torch.randint(len(self.B), ()))
        return {"A": self.A[i], "B": self.B[j]}
