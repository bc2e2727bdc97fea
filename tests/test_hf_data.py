"""Hugging Face data sets (data=hf, hf_pairs, hf_unpaired), built here with `datasets` (no
network): the pixels equal load_image's of the same files whatever holds them (bytes or
paths, a save_to_disk folder or a parquet file), 2 training steps through the real trainer
for a single-domain, a paired and an unpaired set, and the one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

datasets = pytest.importorskip("datasets", reason="the Hugging Face data tests need the datasets package: pip install 'genlab[hf]'")

from test_adversarial import TINY, optimizer_steps  # noqa: E402
from test_decoding import H, make_folder  # noqa: E402

from genlab import GenlabError  # noqa: E402
from genlab.config import build  # noqa: E402
from genlab.data.hf import HFImages, HFPairs, HFUnpaired  # noqa: E402
from genlab.data.transforms import load_image, prepare  # noqa: E402
from genlab.train import build_trainer  # noqa: E402


@pytest.fixture(autouse=True)
def _own_datasets_cache(tmp_path, monkeypatch):
    """load_dataset of a parquet file writes an Arrow copy into the datasets cache: keep it in tmp_path."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def store(sets, tmp_path, storage: str) -> str:
    """A DatasetDict as a save_to_disk folder, or its train split as one parquet file."""
    if storage == "save_to_disk":
        sets.save_to_disk(str(tmp_path / "set"))
        return str(tmp_path / "set")
    sets["train"].to_parquet(str(tmp_path / "set.parquet"))
    return str(tmp_path / "set.parquet")


def noise_images(n: int, seed: int, size=(20, 24)) -> list:
    rng = np.random.RandomState(seed)
    return [Image.fromarray(rng.randint(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("cells", ["bytes", "paths"])
@pytest.mark.parametrize("storage", ["save_to_disk", "parquet"])
def test_every_kind_of_file_decodes_as_load_image_decodes_it(cells, storage, tmp_path):
    """16-bit, EXIF-rotated, CMYK, palette, transparent, animated, ... files: the tensor of
    each row is prepare(load_image(file)), as an image folder gives it, bytes or path alike."""
    refs = make_folder(tmp_path / "files")
    files = [tmp_path / "files" / name for name in sorted(refs)]
    column = [{"bytes": f.read_bytes(), "path": None} for f in files] if cells == "bytes" else [str(f) for f in files]
    ds = datasets.Dataset.from_dict({"image": column}, features=datasets.Features({"image": datasets.Image()}))
    source = store(datasets.DatasetDict({"train": ds}), tmp_path, storage)
    hf = HFImages(source, "train", test_split=None, image_size=H, channels=3)
    held_out = HFImages(source, "test", test_split=None, image_size=H, channels=3)
    assert sorted(hf.rows + held_out.rows) == list(range(len(files))) and held_out.rows == [9]  # every 10th row
    to_tensor = prepare(H, 3)
    for k, row in enumerate(hf.rows):
        assert torch.equal(hf[k]["image"], to_tensor(load_image(files[row]))), files[row].name


def test_labels_come_from_the_label_column_and_are_checked_against_num_classes(tmp_path):
    ds = datasets.Dataset.from_dict({"img": noise_images(6, 0), "digit": [3, 1, 4, 1, 5, 2]},
                                    features=datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(num_classes=6)}))
    source = store(datasets.DatasetDict({"train": ds, "test": ds.select(range(2))}), tmp_path, "save_to_disk")
    hf = HFImages(source, "train", image_column="img", label_column="digit", image_size=16, num_classes=6)
    assert [int(hf[i]["label"]) for i in range(6)] == [3, 1, 4, 1, 5, 2]
    assert len(HFImages(source, "test", image_column="img", image_size=16)) == 2  # test_split=auto: the set's test split
    with pytest.raises(GenlabError, match=r"holds the label 4, outside 0\.\.3; set data.num_classes=6$"):
        HFImages(source, "train", image_column="img", label_column="digit", image_size=16, num_classes=4)


def test_a_missing_column_or_split_is_one_line_listing_what_the_set_has(tmp_path):
    ds = datasets.Dataset.from_dict({"picture": noise_images(3, 0), "caption": ["a", "b", "c"]})
    source = store(datasets.DatasetDict({"train": ds, "validation": ds}), tmp_path, "save_to_disk")
    with pytest.raises(GenlabError, match=r"has no column 'image' \(data.dataset.image_column\); its columns: picture, caption$"):
        HFImages(source, "train")
    with pytest.raises(GenlabError, match=r"has no column 'imageB' \(data.dataset.column_B\); its columns: picture, caption$"):
        HFPairs(source, "train", column_A="picture")
    with pytest.raises(GenlabError, match=r"column 'caption' of .* holds Value\('string'\), not integer class labels"):
        HFImages(source, "train", image_column="picture", label_column="caption")
    with pytest.raises(GenlabError, match=r"has no split 'test' \(data.dataset.test_split\); its splits: train, validation"):
        HFImages(source, "test", image_column="picture", test_split="test")
    assert len(HFImages(source, "test", image_column="picture", image_size=8)) == 3  # auto: the validation split


def test_unpaired_domains_leave_out_empty_cells_and_pairs_share_their_crop(tmp_path):
    a, b = noise_images(5, 0), noise_images(3, 1)
    ds = datasets.Dataset.from_dict({"imageA": a, "imageB": [*b, None, None]})
    source = store(datasets.DatasetDict({"train": ds}), tmp_path, "save_to_disk")
    unpaired = HFUnpaired(source, "train", load_size=20, crop_size=16)
    assert (unpaired.n_A, unpaired.n_B, len(unpaired)) == (5, 3, 5)
    # a pair whose halves are equal stays equal after its one random crop and flip
    same = datasets.Dataset.from_dict({"imageA": a, "imageB": a})
    pairs = HFPairs(store(datasets.DatasetDict({"train": same}), tmp_path / "pairs", "save_to_disk"), "train", load_size=20, crop_size=16)
    for i in range(len(pairs)):
        item = pairs[i]
        assert item["A"].shape == (3, 16, 16) and torch.equal(item["A"], item["B"])


def test_a_row_that_does_not_decode_is_one_line_naming_it_or_is_skipped(tmp_path):
    good = tmp_path / "good.png"
    noise_images(1, 0)[0].save(good)
    cells = [{"bytes": good.read_bytes(), "path": None}, {"bytes": b"not an image", "path": None}, None]
    ds = datasets.Dataset.from_dict({"image": cells}, features=datasets.Features({"image": datasets.Image()}))
    source = store(datasets.DatasetDict({"train": ds}), tmp_path, "save_to_disk")
    hf = HFImages(source, "train", test_split=None, image_size=8)
    with pytest.raises(GenlabError, match=r"^cannot read image .*set train row 1, column image: cannot identify image file; .*skip_bad_images=true$"):
        hf[1]
    with pytest.raises(GenlabError, match=r"set train row 2, column image holds no image"):
        hf[2]
    skipping = HFImages(source, "train", test_split=None, image_size=8, skip_bad_images=True)
    assert skipping.rows == [0] and torch.equal(skipping[0]["image"], prepare(8, 3)(load_image(good)))


def train_two_steps(make_cfg, tmp_path, overrides: list[str], groups: tuple[str, ...]) -> set[str]:
    """Two steps of the real trainer; each optimizer stepped twice; the keys it logged."""
    cfg = make_cfg("train", [*overrides, *TINY, "data.num_workers=0"])
    trainer = build_trainer(cfg, build(cfg.model, "model"), tmp_path / "run")
    trainer.fit()
    assert {g: optimizer_steps(trainer, g) for g in groups} == {g: 2 for g in groups}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if any(k.startswith("train/") for k in r)] == [1, 2]
    return set().union(*logged)


def test_a_single_domain_parquet_set_trains_a_vae(make_cfg, tmp_path):
    ds = datasets.Dataset.from_dict({"image": noise_images(24, 0), "label": [i % 3 for i in range(24)]})
    source = store(datasets.DatasetDict({"train": ds}), tmp_path, "parquet")
    logged = train_two_steps(make_cfg, tmp_path, ["model=vae", "data=hf", f"data.id={source}", "data.image_size=16", "data.channels=1"], ("main",))
    assert {"train/elbo", "val/elbo"} <= logged  # validated on the held-out rows (every 10th: the parquet file has only a train split)


def test_a_paired_set_trains_pix2pix(make_cfg, tmp_path):
    a, b = noise_images(8, 0, (40, 40)), noise_images(8, 1, (40, 40))
    sets = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"imageA": a, "imageB": b}),
                                 "test": datasets.Dataset.from_dict({"imageA": a[:4], "imageB": b[:4]})})
    source = store(sets, tmp_path, "save_to_disk")
    logged = train_two_steps(make_cfg, tmp_path, ["experiment=pix2pix_digit_edges", "data=hf_pairs", f"data.id={source}", "data.image_size=32",
                                                  "data.dataset.load_size=36", "model.generator.base_channels=8", "model.discriminator.base_channels=8"],
                             ("g", "d"))
    assert {"train/g/l1", "train/d/loss", "val/l1", "val/ssim"} <= logged


def test_an_unpaired_set_trains_cyclegan(make_cfg, tmp_path):
    ds = datasets.Dataset.from_dict({"imageA": noise_images(6, 0, (36, 36)), "imageB": [*noise_images(4, 1, (36, 36)), None, None]})
    source = store(datasets.DatasetDict({"train": ds, "test": ds}), tmp_path, "save_to_disk")
    logged = train_two_steps(make_cfg, tmp_path, ["experiment=cyclegan_digits2edges", "data=hf_unpaired", f"data.id={source}", "data.image_size=32",
                                                  "data.dataset.load_size=32", "data.channels_A=3", "data.channels_B=3",
                                                  "model.generator_AB.base_channels=8", "model.generator_AB.n_blocks=1", "model.discriminator_A.base_channels=8"],
                             ("g", "d"))
    assert any(k.startswith("train/g/") for k in logged) and any(k.startswith("val/") for k in logged)


def test_an_id_neither_cached_nor_reachable_is_one_line_naming_it_and_how_to_fetch_it(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "train", "data=hf", "data.id=nobody-here/made-up-set", "trainer.progress_bar=false",
                           "logger=jsonl", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("genlab: error: the Hugging Face data set nobody-here/made-up-set is not in this machine's cache"), line
    assert "hf download --repo-type dataset nobody-here/made-up-set --local-dir DIR" in line and "data.id=DIR" in line
