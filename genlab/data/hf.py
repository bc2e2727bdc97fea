"""Hugging Face `datasets` data sets (data=hf, hf_pairs, hf_unpaired), by Hub id through
datasets.load_dataset and its cache as they are, or by local path: a save_to_disk folder, a
folder of data files (train-*.parquet, ...; what `hf download --local-dir` leaves) or one
parquet or arrow file. Images reach genlab's one decoder (load_image) as the encoded bytes or
the path each row holds (Image columns are read with decode=False), so EXIF orientation,
16-bit and transparency come out as from an image folder. genlab's splits map to the set's:
train_split, and test_split ("auto": test, validation, valid or val, whichever the set has;
null, or none of them: every 10th row of the training split is held out, as image folders do)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset

from genlab.errors import GenlabError
from genlab.data.image_folder import HOLDOUT_EVERY, usable_images
from genlab.data.splits import check_split
from genlab.data.transforms import load_image, prepare
from genlab.data.translation import PairedDomains, UnpairedDomains

TEST_NAMES = ("test", "validation", "valid", "val")  # test_split=auto takes the first the set has
FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow"}
log = logging.getLogger(__name__)
_held_out_said: set[str] = set()


def _datasets():
    try:
        import datasets
    except ImportError:
        raise GenlabError("the Hugging Face data sets (data=hf, hf_pairs, hf_unpaired) need the datasets package: pip install 'genlab[hf]'") from None
    return datasets


def _fetch_hint(source: str) -> str:
    return (f"on a connected machine run `hf download --repo-type dataset {source} --local-dir DIR` (huggingface_hub < 1.0: huggingface-cli download) "
            f"and pass data.id=DIR, or run this command once online to fill the cache")


def open_dataset(source: str, config_name: str | None = None, revision: str | None = None) -> dict:
    """{split name: datasets.Dataset} of a Hub id or a local path, or one line saying why not."""
    datasets = _datasets()
    path = Path(source).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            sets = datasets.load_from_disk(str(path))  # a save_to_disk folder
        elif path.is_file():
            if path.suffix not in FILE_BUILDERS:
                raise GenlabError(f"data.id={source} is a {path.suffix or 'suffix-less'} file; genlab reads {', '.join(FILE_BUILDERS)} files, "
                                  "save_to_disk folders, folders of data files and Hub ids")
            sets = datasets.load_dataset(FILE_BUILDERS[path.suffix], data_files={"train": str(path)})
        elif path.is_dir():
            sets = datasets.load_dataset(str(path), config_name, revision=revision)  # train-*.parquet, ... (a Hub snapshot)
        elif source.startswith((".", "/", "~")) or source.count("/") > 1:
            raise GenlabError(f"data.id={source}: no such file or folder; pass a Hub id (owner/name) or the path of a save_to_disk folder, "
                              "a folder of data files or a parquet file")
        else:
            sets = datasets.load_dataset(source, config_name, revision=revision)
    except GenlabError:
        raise
    except ConnectionError:  # offline, or the Hub unreachable, with nothing in the cache
        raise GenlabError(f"the Hugging Face data set {source} is not in this machine's cache and the Hub cannot be reached; {_fetch_hint(source)}") from None
    except Exception as e:  # unknown id, gated set, unknown configuration, unreadable files: the library's first line
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise GenlabError(f"cannot open the Hugging Face data set {source}: {first} (a private or gated set needs `hf auth login`)") from None
    return {"train": sets} if isinstance(sets, datasets.Dataset) else dict(sets)


def _columns(ds, source: str, wanted: dict[str, str]):
    """The set with only the wanted columns ({config key: column}), image columns as bytes or
    paths; a missing column is one line listing those the set has."""
    datasets = _datasets()
    for key, column in wanted.items():
        if column not in ds.column_names:
            raise GenlabError(f"the data set {source} has no column {column!r} (data.dataset.{key}); its columns: {', '.join(ds.column_names)}")
    ds = ds.select_columns(list(dict.fromkeys(wanted.values())))
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()
    for key, column in wanted.items():
        feature = ds.features[column]
        if key == "label_column":
            if not (isinstance(feature, datasets.ClassLabel) or (isinstance(feature, datasets.Value) and "int" in feature.dtype)):
                raise GenlabError(f"column {column!r} of {source} holds {feature}, not integer class labels; set data.dataset.label_column to one that does, or null")
        elif isinstance(feature, datasets.Image):
            ds = ds.cast_column(column, datasets.Image(decode=False))  # {"bytes", "path"}: load_image decodes them
        elif not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string", "binary", "large_binary")):
            raise GenlabError(f"column {column!r} of {source} holds {feature}, not images (an Image column, encoded bytes or file paths); "
                              f"set data.dataset.{key} to one that does (its columns: {', '.join(ds.column_names)})")
    return ds


def split_rows(sets: dict, source: str, split: str, train_split: str, test_split: str | None):
    """(the set's split, its row numbers) that serve as genlab's `split` (train or test)."""
    check_split(split, ("train", "test"))
    names = ", ".join(sets)
    if train_split not in sets:
        raise GenlabError(f"the data set {source} has no split {train_split!r} (data.dataset.train_split); its splits: {names}")
    if test_split == "auto":
        test_split = next((n for n in TEST_NAMES if n in sets and n != train_split), None)
    elif test_split is not None and test_split not in sets:
        raise GenlabError(f"the data set {source} has no split {test_split!r} (data.dataset.test_split); its splits: {names} "
                          f"(or data.dataset.test_split=null: every {HOLDOUT_EVERY}th row of {train_split!r} is held out)")
    if test_split is not None:
        name = train_split if split == "train" else test_split
        return sets[name], range(len(sets[name]))
    if split == "test" and source not in _held_out_said:
        _held_out_said.add(source)
        log.info("data: the test split is every %dth row of the data set's %r split (%s has no %s split)", HOLDOUT_EVERY, train_split, source, "/".join(TEST_NAMES))
    n = len(sets[train_split])
    return sets[train_split], [i for i in range(n) if (i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) == (split == "test")]


def cell_image(value, name: str):
    """A row's image as load_image decodes it: encoded bytes ({"bytes": ...} or raw), or a path."""
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None) if isinstance(value, bytes) else (None, value)
    if data is None and not path:
        raise GenlabError(f"{name} holds no image; remove the row, or set data.skip_bad_images=true")
    return load_image(io.BytesIO(data) if data is not None else path, name)


class HubSplit:
    """The rows of one split of a Hugging Face data set with the wanted columns; row(i) is
    a dict of them, image cells as bytes or paths."""

    def __init__(self, id: str, split: str, columns: dict[str, str], train_split: str, test_split: str | None,
                 config_name: str | None, revision: str | None):
        sets = {name: _columns(ds, id, columns) for name, ds in open_dataset(id, config_name, revision).items()}
        self.ds, self.rows = split_rows(sets, id, split, train_split, test_split)
        self.id, self.split_name = id, next(n for n, ds in sets.items() if ds is self.ds)

    def present(self, column: str, rows) -> list[int]:
        """Of `rows`, those whose `column` is not empty (an unpaired set's shorter domain)."""
        valid = self.ds.data.column(column).is_valid().to_numpy(zero_copy_only=False)
        return [r for r in rows if valid[r]]

    def image(self, row: int, column: str):
        return cell_image(self.ds[int(row)][column], f"{self.id} {self.split_name} row {row}, column {column}")


class HFImages(Dataset):
    """One domain of images (data=hf), with class labels from label_column (0 without one)."""

    def __init__(self, id: str, split: str = "train", image_column: str = "image", label_column: str | None = None, train_split: str = "train",
                 test_split: str | None = "auto", config_name: str | None = None, revision: str | None = None, image_size: int = 64,
                 channels: int = 3, center_crop: int | None = None, num_classes: int = 0, skip_bad_images: bool = False):
        columns = {"image_column": image_column} | ({"label_column": label_column} if label_column else {})
        self.source = HubSplit(id, split, columns, train_split, test_split, config_name, revision)
        self.column = image_column
        check = lambda r: self.source.image(r, image_column)  # noqa: E731
        self.rows = usable_images(list(self.source.rows), skip_bad_images, check, f"of {id} split {self.source.split_name!r}")
        if not self.rows:
            raise GenlabError(f"the data set {id} has no images for split {split!r} (its {self.source.split_name!r} rows)")
        self.labels = [0] * len(self.rows)
        if label_column:
            values = self.source.ds.data.column(label_column).to_pylist()
            self.labels = [values[r] for r in self.rows]
            bad = [v for v in self.labels if v is None or v < 0 or (num_classes and v >= num_classes)]
            if bad:
                fix = (f"set data.num_classes={max(v for v in self.labels if v is not None) + 1}" if bad[0] is not None and bad[0] >= 0
                       else "remove such rows, or set data.dataset.label_column=null")
                raise GenlabError(f"column {label_column!r} of {id} holds the label {bad[0]}, outside 0..{num_classes - 1 if num_classes else 'n'}; {fix}")
        self.prepare = prepare(image_size, channels, center_crop)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.prepare(self.source.image(self.rows[i], self.column)), "label": torch.tensor(self.labels[i])}


class HFPairs(PairedDomains):
    """Paired two-domain rows (data=hf_pairs, pix2pix): row i holds A and B (huggan's imageA, imageB)."""

    def __init__(self, id: str, split: str = "train", column_A: str = "imageA", column_B: str = "imageB", train_split: str = "train",
                 test_split: str | None = "auto", config_name: str | None = None, revision: str | None = None, load_size: int | list[int] = 286,
                 crop_size: int | list[int] = 256, channels_A: int = 3, channels_B: int = 3, direction: str = "AtoB",
                 preprocess: str = "resize_and_crop", skip_bad_images: bool = False):
        self._check_direction(direction)
        self.source = HubSplit(id, split, {"column_A": column_A, "column_B": column_B}, train_split, test_split, config_name, revision)
        self.columns = (column_A, column_B)
        check = lambda r: self._row_pair(r)  # noqa: E731
        self.rows = usable_images(list(self.source.rows), skip_bad_images, check, f"of {id} split {self.source.split_name!r}")
        if not self.rows:
            raise GenlabError(f"the data set {id} has no pairs for split {split!r} (its {self.source.split_name!r} rows)")
        self.direction = direction
        self._prepare_domains(split, load_size, crop_size, channels_A, channels_B, preprocess)

    def _row_pair(self, row: int):
        return tuple(self.source.image(row, c) for c in self.columns)

    def __len__(self) -> int:
        return len(self.rows)

    def pair(self, i: int):
        return self._row_pair(self.rows[i])


class HFUnpaired(UnpairedDomains):
    """Unpaired two-domain sets (data=hf_unpaired, CycleGAN): the A images of column_A and the
    B images of column_B, each column's empty cells left out, so the domains' sizes may differ."""

    def __init__(self, id: str, split: str = "train", column_A: str = "imageA", column_B: str = "imageB", train_split: str = "train",
                 test_split: str | None = "auto", config_name: str | None = None, revision: str | None = None, load_size: int | list[int] = 286,
                 crop_size: int | list[int] = 256, channels_A: int = 3, channels_B: int = 3, serial: bool = False,
                 preprocess: str = "resize_and_crop", skip_bad_images: bool = False):
        self.source = HubSplit(id, split, {"column_A": column_A, "column_B": column_B}, train_split, test_split, config_name, revision)
        self.columns = (column_A, column_B)
        where = f"of {id} split {self.source.split_name!r}, column"
        self.rows_A, self.rows_B = (usable_images(self.source.present(c, self.source.rows), skip_bad_images,
                                                  lambda r, c=c: self.source.image(r, c), f"{where} {c}") for c in self.columns)
        if not self.rows_A or not self.rows_B:
            raise GenlabError(f"the data set {id} has no images in column {column_A if not self.rows_A else column_B} for split {split!r}")
        self.n_A, self.n_B, self.serial = len(self.rows_A), len(self.rows_B), serial
        self._prepare_domains(split, load_size, crop_size, channels_A, channels_B, preprocess)

    def image_A(self, i: int):
        return self.source.image(self.rows_A[i], self.columns[0])

    def image_B(self, j: int):
        return self.source.image(self.rows_B[j], self.columns[1])
