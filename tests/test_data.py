"""Data sets, splits, the resumable sampler and per-sample augmentation seeds."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import GenlabError
from genlab.data.digits import Digits
from genlab.data.image_folder import ImageFolder
from genlab.data.loading import EpochBatchSampler, TrainStream
from genlab.data.torchvision_sets import SYSTEM_IDX, TorchvisionDataset, find_idx, read_idx


def test_digits_split_is_deterministic_disjoint_and_complete():
    train, test = Digits("train"), Digits("test")
    assert (len(train), len(test)) == (1438, 359)
    assert train.images.shape == (1438, 1, 32, 32) and train.images.min() >= -1 and train.images.max() <= 1
    assert torch.equal(Digits("test").images, test.images)
    assert sorted(torch.cat([train.labels, test.labels]).bincount().tolist()) == sorted(np.bincount(__import__("sklearn.datasets").datasets.load_digits().target).tolist())
    flat_train = {tuple(x.flatten().tolist()) for x in Digits("train", image_size=8).images}
    assert not any(tuple(x.flatten().tolist()) in flat_train for x in Digits("test", image_size=8).images[:50])


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_round_trips_and_rejects_truncation(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, (5, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5))
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), images)
    assert find_idx(tmp_path, "train") is not None and find_idx(tmp_path, "test") is None
    raw = gzip.open(tmp_path / "train-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "cut.gz", "wb") as f:
        f.write(raw[:-10])
    with pytest.raises(GenlabError, match="truncated"):
        read_idx(tmp_path / "cut.gz")


def test_mnist_family_reads_idx_files_from_its_root(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.full((3, 28, 28), 255))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.array([7, 1, 2]))
    ds = TorchvisionDataset("mnist", "test", root=str(tmp_path), image_size=32, channels=1)
    item = ds[0]
    assert len(ds) == 3 and item["image"].shape == (1, 32, 32) and item["label"] == 7
    assert torch.allclose(item["image"], torch.ones(1, 32, 32))


@pytest.mark.skipif(not Path(SYSTEM_IDX["fashion_mnist"]).is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_system_copy_has_all_70000_images():
    train = TorchvisionDataset("fashion_mnist", "train", image_size=32, channels=1)
    test = TorchvisionDataset("fashion_mnist", "test", image_size=32, channels=1)
    assert (len(train), len(test)) == (60000, 10000)
    assert train[0]["image"].shape == (1, 32, 32) and int(train[0]["label"]) == 9  # the first image is an ankle boot


def test_missing_torchvision_data_names_the_fix(tmp_path):
    with pytest.raises(GenlabError, match=f"not under {tmp_path}; run with data.dataset.download=true"):
        TorchvisionDataset("cifar10", "train", root=str(tmp_path))


def make_folder(root: Path, n: int, classes=("cats", "dogs")):
    rng = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.randint(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i:03d}.png")


def test_image_folder_classes_sizes_and_holdout(tmp_path):
    make_folder(tmp_path, 10)
    train, test = ImageFolder(str(tmp_path), "train", image_size=16), ImageFolder(str(tmp_path), "test", image_size=16)
    assert (len(train), len(test)) == (18, 2) and train.classes == ["cats", "dogs"]
    assert train[0]["image"].shape == (3, 16, 16) and train[0]["image"].min() >= -1
    assert sorted({int(train[i]["label"]) for i in range(len(train))}) == [0, 1]
    assert not set(train.files) & set(test.files)


def test_corrupt_image_names_the_file(tmp_path):
    make_folder(tmp_path, 3, classes=("a",))
    (tmp_path / "a" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = ImageFolder(str(tmp_path), "train", image_size=16)
    with pytest.raises(GenlabError, match="cannot read image .*001.png"):
        [ds[i] for i in range(len(ds))]


def test_sampler_is_a_permutation_per_epoch_and_starts_anywhere():
    s = EpochBatchSampler(10, 3, seed=1)
    first = [i for batch in s for i, _ in batch]
    assert len(first) == 9 and len(set(first)) == 9
    s.epoch = 1
    assert [i for batch in s for i, _ in batch] != first
    s.epoch, s.position = 0, 2
    assert [i for batch in s for i, _ in batch] == first[6:]


def test_augmentation_is_the_same_whatever_the_number_of_workers(make_cfg):
    batches = []
    for workers in (0, 2):
        cfg = make_cfg("train", ["data.augment.hflip=true", "data.augment.crop_padding=3", f"data.num_workers={workers}"])
        stream = TrainStream(cfg.data, seed=0)
        batches.append(torch.cat([next(stream)["image"] for _ in range(3)]))
    assert torch.equal(*batches)
    plain = TrainStream(make_cfg("train").data, seed=0)
    assert not torch.equal(torch.cat([next(plain)["image"] for _ in range(3)]), batches[0])


def test_digits_are_read_as_scikit_learn_loads_them():
    from sklearn.datasets import load_digits as sklearn_digits

    from genlab.data.digits import load_digits

    images, labels = load_digits()
    reference = sklearn_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_train_images_draws_only_the_first_n_images(make_cfg):
    stream = TrainStream(make_cfg("train", ["data.train_images=100", "data.batch_size=16"]).data, seed=0)
    assert stream.batches_per_epoch == 100 // 16
    seen = torch.cat([next(stream)["index"] for _ in range(2 * stream.batches_per_epoch)])
    assert seen.max() < 100 and len(set(seen[:96].tolist())) == 96 and stream.epoch == 1
    with pytest.raises(GenlabError, match="data.train_images=5000: the training split has only 1438 images"):
        TrainStream(make_cfg("train", ["data.train_images=5000"]).data, seed=0)
