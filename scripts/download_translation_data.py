"""Download the standard image-to-image data sets into the layouts genlab reads.

    python scripts/download_translation_data.py horse2zebra             # into $GENLAB_DATA or ~/.cache/genlab/data
    python scripts/download_translation_data.py facades --root /data

CycleGAN sets (unaligned: trainA/ trainB/ testA/ testB/): horse2zebra, monet2photo,
summer2winter_yosemite, apple2orange, vangogh2photo, maps (also aligned, below), cityscapes
(not public here: build it with the CycleGAN repository's prepare_cityscapes_dataset.py
from the Cityscapes site, which needs a login). pix2pix sets (aligned A|B images in train/
val/ test/): facades, edges2shoes, edges2handbags, maps, night2day. The URLs are those of
the papers' reference code."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
SETS = {
    **{n: CYCLEGAN for n in ("horse2zebra", "monet2photo", "summer2winter_yosemite", "apple2orange", "vangogh2photo")},
    **{n: PIX2PIX for n in ("facades", "edges2shoes", "edges2handbags", "maps", "night2day")},
}


def default_root() -> Path:
    return Path(os.environ.get("GENLAB_DATA", Path.home() / ".cache" / "genlab" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(SETS) + ["cityscapes"])
    ap.add_argument("--root", type=Path, default=default_root())
    args = ap.parse_args()
    if args.name == "cityscapes":
        sys.exit("cityscapes needs a login at cityscapes-dataset.com: download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip "
                 "there, build the A|B images with the pix2pix repository's datasets/prepare_cityscapes_dataset.py, and put them in "
                 f"{args.root / 'cityscapes'}/train, val, test")
    url = SETS[args.name].format(name=args.name)
    target = args.root / args.name
    if target.exists():
        print(f"{target} exists; remove it to download again")
        return
    args.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        archive = Path(tmp) / Path(url).name
        print(f"downloading {url}")
        try:
            urllib.request.urlretrieve(url, archive)
        except OSError as e:
            sys.exit(f"download of {url} failed ({e}); fetch it by hand and unpack it to {target}")
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        shutil.move(str(Path(tmp) / args.name), target)  # written whole, then moved into place
    print(f"{args.name} is in {target}: genlab train data={args.name} data.dataset.root={target}")


if __name__ == "__main__":
    main()
