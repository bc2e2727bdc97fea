"""Any folder of images, searched recursively. Subfolders of the split folder (or of root) name
the classes; with no split subfolders (root/train, root/test), every 10th file in sorted
order is held out as the test split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import Dataset

from genlab.errors import GenlabError
from genlab.data.splits import check_split
from genlab.data.transforms import load_image, prepare

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
HOLDOUT_EVERY = 10
log = logging.getLogger(__name__)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def usable_images(files: list[Path], skip_bad: bool, check: Callable[[Path], None] | None = None, where: str = "") -> list[Path]:
    """`files` as they are (a bad one then fails when it is read, naming itself), or, with
    skip_bad, the ones that decode and pass `check`, after one pass over all of them; the
    number skipped is logged with the first bad file and why."""
    if not skip_bad:
        return files

    def bad(path: Path) -> str | None:
        try:
            (check or load_image)(path)
        except GenlabError as e:
            return str(e).split("; remove or replace", 1)[0]
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:  # decoding releases the GIL
        problems = list(pool.map(bad, files))
    good = [f for f, problem in zip(files, problems) if problem is None]
    skipped = [p for p in problems if p is not None]
    if skipped:
        log.warning("skipped %d of %d images %s that cannot be used (data.skip_bad_images=true); first: %s", len(skipped), len(files), where, skipped[0])
    return good


class ImageFolder(Dataset):
    def __init__(self, root: str, split: str = "train", image_size: int = 64, channels: int = 3, center_crop: int | None = None,
                 skip_bad_images: bool = False):
        check_split(split, ("train", "test"))
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise GenlabError(f"data.dataset.root={root} is not a folder; point it at a folder of images")
        folder = root_path / split
        files = list_images(folder) if folder.is_dir() else None
        if files is None:
            folder, all_files = root_path, list_images(root_path)
            files = [f for i, f in enumerate(all_files) if (i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) == (split == "test")]
        files = usable_images(files or [], skip_bad_images, where=f"of split {split!r} under {root_path}")
        if not files:
            raise GenlabError(f"no images ({', '.join(sorted(EXTENSIONS))}) for split {split!r} under {root_path}")
        self.files = files
        classes = sorted({f.relative_to(folder).parts[0] for f in files if len(f.relative_to(folder).parts) > 1})
        self.classes = classes
        index = {c: i for i, c in enumerate(classes)}
        self.labels = [index.get(f.relative_to(folder).parts[0], 0) if classes else 0 for f in files]
        self.prepare = prepare(image_size, channels, center_crop)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.prepare(load_image(self.files[i])), "label": torch.tensor(self.labels[i])}
