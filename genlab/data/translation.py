"""Two-domain data for image-to-image translation, in the layouts users already have.

Unaligned (CycleGAN): root/trainA, trainB, testA, testB; each A image gets a B image drawn
at random (or in turn, serial=true); the lengths are independent.
Aligned (pix2pix): root/<split>/ with A and B side by side in each image, or root/A/<split>/
and root/B/<split>/ with matching file names; direction AtoB or BtoA.
Preprocessing (the reference code's --preprocess): resize_and_crop resizes to load_size (a
side or [height, width]); scale_width_and_crop scales the width to load_size keeping the
aspect ratio (the height at least the crop's); both then crop to crop_size (a side or
[height, width]) at random with a random flip for training, at the center for testing, the
same crop and flip on both halves of a pair. scale_width scales the width and keeps the
whole image (for sets whose images share one aspect ratio, or data.batch_size=1).
Items are {"A": (C_A, H, W), "B": (C_B, H, W)} in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from genlab.errors import GenlabError
from genlab.data.digits import Digits
from genlab.data.image_folder import list_images, usable_images
from genlab.data.splits import check_split
from genlab.data.transforms import load_image


PREPROCESS = ("resize_and_crop", "scale_width_and_crop", "scale_width")


def pair(size) -> tuple[int, int]:
    """A side or [height, width] -> (height, width)."""
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def unit_image(image, channels: int) -> Tensor:
    """PIL image -> (channels, H, W) in [0, 1] at its own size (grey for one channel)."""
    image = image.convert("L" if channels == 1 else "RGB")
    return v2.functional.to_dtype(v2.functional.to_image(image), torch.float32, scale=True)


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(C, H, W) in [0, 1] -> (C, *size) in [0, 1], bicubic with antialiasing as the reference code."""
    return v2.functional.resize(x, list(size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)


def scale_width(x: Tensor, width: int, min_height: int = 0) -> Tensor:
    """(C, H, W) in [0, 1]: the width to `width`, the height in proportion (at least
    min_height), as the reference code's __scale_width."""
    h, w = x.shape[-2:]
    return x if (w == width and h >= min_height) else resize(x, (int(max(width * h / w, min_height)), width))


def domain_image(image, channels: int, load_size) -> Tensor:
    """PIL image -> (channels, *load_size) in [-1, 1] (load_size a side or [height, width])."""
    return resize(unit_image(image, channels), pair(load_size)) * 2 - 1


def crop_and_flip(x: Tensor, crop_size, train: bool) -> Tensor:
    """Random crop and horizontal flip (global torch RNG) for training, center crop otherwise;
    crop_size a side or [height, width]."""
    (h, w), (ch, cw) = x.shape[-2:], pair(crop_size)
    if ch > h or cw > w:
        raise GenlabError(f"data.crop_size={[ch, cw]} is larger than a loaded image ({h}x{w}); raise data.dataset.load_size")
    if train:
        top, left = (int(torch.randint(0, n - c + 1, ())) for n, c in ((h, ch), (w, cw)))
    else:
        top, left = (h - ch) // 2, (w - cw) // 2
    x = x[..., top : top + ch, left : left + cw]
    return x.flip(-1) if train and torch.rand(()) < 0.5 else x


class Preprocess:
    """One domain image as the data sets load it: PIL -> (C, H, W) in [-1, 1], crop and flip
    excepted (a pair shares them)."""

    def __init__(self, preprocess: str, load_size, crop_size):
        if preprocess not in PREPROCESS:
            raise GenlabError(f"data.dataset.preprocess={preprocess!r} is not one of {', '.join(PREPROCESS)}")
        (ch, cw) = pair(crop_size)
        if preprocess == "resize_and_crop" and (ch > pair(load_size)[0] or cw > pair(load_size)[1]):
            raise GenlabError(f"data.crop_size={[ch, cw]} is larger than data.dataset.load_size={load_size}; "
                              "raise load_size (a side or [height, width]) or lower the crop")
        if preprocess != "resize_and_crop":
            if not isinstance(load_size, int):
                raise GenlabError(f"data.dataset.preprocess={preprocess} scales the width to data.dataset.load_size, a single number, not {load_size}")
            if cw > load_size:
                raise GenlabError(f"data.crop_size={[ch, cw]} is wider than data.dataset.load_size={load_size} (the width {preprocess} scales to)")
        self.preprocess, self.load_size, self.crop_height = preprocess, load_size, ch
        self.crops = preprocess.endswith("crop")

    def __call__(self, image, channels: int) -> Tensor:
        if self.preprocess == "resize_and_crop":
            return domain_image(image, channels, self.load_size)
        return scale_width(unit_image(image, channels), self.load_size, self.crop_height) * 2 - 1


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


class TwoDomains(Dataset):
    """What every two-domain set shares, whatever holds its images (folders, a Hugging Face
    data set): the preprocessing of each domain image, and training's random crops and flips."""

    random = True  # B partners, crops and flips come from the (per-sample seeded) torch RNG

    def _prepare_domains(self, split: str, load_size, crop_size, channels_A: int, channels_B: int, preprocess: str) -> None:
        self.train = split == "train"
        self.prepare, self.crop_size, self.channels = Preprocess(preprocess, load_size, crop_size), crop_size, (channels_A, channels_B)


class UnpairedDomains(TwoDomains):
    """Unpaired (CycleGAN): each A image with a B image drawn at random for training (in
    turn with serial=true, and for testing); each with its own crop and flip. A subclass
    sets n_A, n_B and serial and gives image_A(i), image_B(j) as PIL images."""

    n_A: int
    n_B: int
    serial: bool

    def __len__(self) -> int:
        return max(self.n_A, self.n_B)

    def __getitem__(self, i: int) -> dict:
        j = i % self.n_B if self.serial or not self.train else int(torch.randint(self.n_B, ()))
        a = self.prepare(self.image_A(i % self.n_A), self.channels[0])
        b = self.prepare(self.image_B(j), self.channels[1])
        return {"A": self._crop_and_flip(a), "B": self._crop_and_flip(b)}

    def _crop_and_flip(self, x: Tensor) -> Tensor:
        if self.prepare.crops:
            return crop_and_flip(x, self.crop_size, self.train)
        return x.flip(-1) if self.train and torch.rand(()) < 0.5 else x


class PairedDomains(TwoDomains):
    """Paired (pix2pix): item i is a pair, both halves with one crop and flip; direction
    AtoB or BtoA. A subclass gives __len__ and pair(i) -> (A, B) as PIL images."""

    direction: str

    @staticmethod
    def _check_direction(direction: str) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise GenlabError(f"data.dataset.direction={direction!r} is not one of AtoB, BtoA")

    def __getitem__(self, i: int) -> dict:
        a_img, b_img = self.pair(i)
        a, b = self.prepare(a_img, self.channels[0]), self.prepare(b_img, self.channels[1])
        if a.shape[-2:] != b.shape[-2:]:  # scale_width of A and B images of different aspect ratios
            b = resize((b + 1) / 2, tuple(a.shape[-2:])) * 2 - 1
        both = torch.cat([a, b])
        if self.prepare.crops:
            both = crop_and_flip(both, self.crop_size, self.train)  # one crop and flip for both
        elif self.train and torch.rand(()) < 0.5:
            both = both.flip(-1)
        a, b = both[: len(a)], both[len(a) :]
        return {"A": a, "B": b} if self.direction == "AtoB" else {"A": b, "B": a}


class UnalignedFolders(UnpairedDomains):
    def __init__(self, root: str, split: str = "train", load_size: int | list[int] = 286, crop_size: int | list[int] = 256, channels_A: int = 3,
                 channels_B: int = 3, serial: bool = False, name: str = "unaligned", preprocess: str = "resize_and_crop",
                 skip_bad_images: bool = False):
        check_split(split, ("train", "test"))
        root_path = Path(root).expanduser()
        folders = [root_path / f"{split}{d}" for d in "AB"]
        if not all(f.is_dir() for f in folders):
            raise _missing(root_path, f"{split}A/ and {split}B/ folders of images", name)
        self.files_A, self.files_B = (usable_images(list_images(f), skip_bad_images, where=f"in {f}") for f in folders)
        if not self.files_A or not self.files_B:
            raise _missing(root_path, f"images in {split}A/ and {split}B/", name)
        self.n_A, self.n_B, self.serial = len(self.files_A), len(self.files_B), serial
        self._prepare_domains(split, load_size, crop_size, channels_A, channels_B, preprocess)

    def image_A(self, i: int):
        return load_image(self.files_A[i])

    def image_B(self, j: int):
        return load_image(self.files_B[j])


class AlignedFolders(PairedDomains):
    def __init__(self, root: str, split: str = "train", load_size: int | list[int] = 286, crop_size: int | list[int] = 256, channels_A: int = 3,
                 channels_B: int = 3, direction: str = "AtoB", name: str = "aligned", preprocess: str = "resize_and_crop",
                 skip_bad_images: bool = False):
        self._check_direction(direction)
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
        self.direction = direction
        self._prepare_domains(split, load_size, crop_size, channels_A, channels_B, preprocess)

    def __len__(self) -> int:
        return len(self.files)

    def pair(self, i: int):
        if self.separate:
            return load_image(self.files[i]), load_image(self.partners[i])
        return split_pair(self.files[i])


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
