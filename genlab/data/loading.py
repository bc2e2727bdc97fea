"""Data sets from config, and the resumable training stream.

Exact resume needs the data position and the augmentation randomness to be functions of
(seed, epoch, position) alone: the batch sampler draws each epoch's permutation from its own
generator and starts at any batch, and each sample's augmentation runs under a seed derived
from its place in the stream, whatever the number of loader workers."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from genlab.errors import GenlabError
from genlab.config import build
from genlab.data.transforms import augment


def build_dataset(data_cfg: DictConfig, split: str) -> Dataset:
    if data_cfg.get("crop_size") is not None and "crop_size" not in data_cfg.dataset:
        raise GenlabError(f"data.crop_size={data_cfg.crop_size} applies to the two-domain folder sets (pix2pix, CycleGAN) only; "
                          "this data set gives square images of data.image_size to nets built for that size (DCGAN, MLP, conv)")
    return build(data_cfg.dataset, "data.dataset", split=split)


class EpochBatchSampler(Sampler):
    """Batches of (index, augmentation seed) pairs: a fresh permutation each epoch (or the
    identity when shuffle=False), dropping the last partial batch, starting at `position`.
    With several ranks, global batch b is order[b * B * W : (b + 1) * B * W] and rank r
    takes its r-th slice of B, so W ranks see what one process with batch B * W would."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if n < batch_size * world_size:
            raise GenlabError(f"the data set has {n} images, fewer than data.batch_size={batch_size} x {world_size} ranks; lower data.batch_size")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def __iter__(self):
        epoch, start = self.epoch, self.position
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        else:
            order = torch.arange(self.n)
        base = (self.seed * 1_000_003 + epoch) * self.n
        for b in range(start, len(self)):
            first = (b * self.world_size + self.rank) * self.batch_size
            ids = order[first : first + self.batch_size].tolist()
            yield [(i, (base + first + j) % 2**62) for j, i in enumerate(ids)]


class Augmented(Dataset):
    """Adds each item's "index" (GLO's codes are per training image) and applies the
    configured augmentation under the per-sample seed the sampler hands out."""

    def __init__(self, dataset: Dataset, hflip: bool = False, crop_padding: int = 0):
        self.dataset, self.hflip, self.crop_padding = dataset, hflip, crop_padding

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item if isinstance(item, tuple) else (item, None)
        if getattr(self.dataset, "random", False):  # its own draws: seeded per sample, never the global RNG
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(index if seed is None else seed)
                sample = {**self.dataset[index], "index": index}
        else:
            sample = {**self.dataset[index], "index": index}
        if seed is not None and (self.hflip or self.crop_padding):
            sample["image"] = self._augment(sample["image"], seed)
        return sample

    def __getitems__(self, items: list):
        """A whole batch at once from data sets held in memory as tensors (digits, the 2-D
        mixtures): one gather instead of a Python call and a collate per sample."""
        if not hasattr(self.dataset, "arrays") or getattr(self.dataset, "random", False):
            return [self[item] for item in items]
        pairs = [item if isinstance(item, tuple) else (item, None) for item in items]
        index = torch.tensor([i for i, _ in pairs])
        batch = {k: v[index] for k, v in self.dataset.arrays().items()} | {"index": index}
        if self.hflip or self.crop_padding:
            batch["image"] = torch.stack([self._augment(x, s) if s is not None else x for x, (_, s) in zip(batch["image"], pairs)])
        return batch

    def _augment(self, image, seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return augment(image, self.hflip, self.crop_padding)


def collate(samples):
    """Batches that __getitems__ already assembled pass through; lists of samples are stacked."""
    if isinstance(samples, dict):
        return samples
    sizes = {k: {tuple(s[k].shape) for s in samples} for k, v in samples[0].items() if torch.is_tensor(v)}
    mixed = {k: sorted(v) for k, v in sizes.items() if len(v) > 1}
    if mixed:  # whole images of several aspect ratios (data.dataset.preprocess=scale_width)
        k, shapes = next(iter(mixed.items()))
        raise GenlabError(f"one batch holds {k} images of sizes {shapes[0]} and {shapes[1]}; set data.batch_size=1 (genlab eval: "
                          "batch_size=1) or crop them to one size (data.dataset.preprocess=scale_width_and_crop)")
    return default_collate(samples)


class TrainStream:
    """An endless iterator of training batches that knows its (epoch, batch) position."""

    def __init__(self, data_cfg: DictConfig, seed: int, rank: int = 0, world_size: int = 1):
        dataset = build_dataset(data_cfg, "train")
        n = len(dataset)
        if data_cfg.get("train_images"):  # only the first N images are drawn: a small data set of a big one
            if int(data_cfg.train_images) > n:
                raise GenlabError(f"data.train_images={data_cfg.train_images}: the training split has only {n} images")
            n = int(data_cfg.train_images)
        aug = data_cfg.get("augment") or {}
        self.sampler = EpochBatchSampler(n, data_cfg.batch_size, seed, rank=rank, world_size=world_size)
        self.loader = DataLoader(
            Augmented(dataset, bool(aug.get("hflip", False)), int(aug.get("crop_padding", 0))),
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=data_cfg.get("num_workers", 0),
            # kept across epochs: a small data set (data.train_images) would otherwise start its
            # workers again every few steps
            persistent_workers=int(data_cfg.get("num_workers", 0)) > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator(),  # workers' base seed must not draw from the global RNG
        )
        self._iter = None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.sampler)

    @property
    def batch_size(self) -> int:
        """Images in each batch of this rank."""
        return self.sampler.batch_size

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "position": self.sampler.position}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch, self.sampler.position = int(state["epoch"]), int(state["position"])
        self._iter = None

    def __next__(self) -> dict:
        while True:
            if self._iter is None:
                self._iter = iter(self.loader)
            try:
                batch = next(self._iter)
            except StopIteration:
                self.sampler.epoch, self.sampler.position, self._iter = self.sampler.epoch + 1, 0, None
                continue
            self.sampler.position += 1
            return batch


def eval_loader(data_cfg: DictConfig, split: str = "test", batch_size: int | None = None, max_images: int | None = None) -> DataLoader:
    """Deterministic, unshuffled, unaugmented batches of a split (its first max_images
    images when given), the last batch partial."""
    dataset = Augmented(build_dataset(data_cfg, split))
    if max_images:
        dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
    return DataLoader(
        dataset,
        batch_size=batch_size or data_cfg.batch_size,
        shuffle=False,
        collate_fn=collate,
        num_workers=data_cfg.get("num_workers", 0),
        pin_memory=torch.cuda.is_available(),  # to_device's non_blocking copies then overlap
        generator=torch.Generator(),
    )
