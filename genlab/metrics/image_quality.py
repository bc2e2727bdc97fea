"""FID, IS, KID and precision/recall between two image sources, with the protocol recorded.

A source is a model (its samples), a data set split, or a folder of images; reference
statistics (mu, sigma) of data sets and folders are cached per (source, split, count, image
size, weights sha256, resize mode) and written atomically, in pytorch-fid's .npz format."""

from __future__ import annotations

import hashlib
import json
import os
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genlab import GenlabError
from genlab.atomic import atomic_write
from genlab.data.image_folder import list_images
from genlab.data.transforms import load_image
from genlab.images import to_uint8
from genlab.metrics.features import InceptionExtractor
from genlab.metrics.fid import GaussianStats, frechet_distance, inception_score, kernel_inception_distance, precision_recall
from genlab.metrics.inception import find_weights, load_inception

IMAGE_METRICS = ("fid", "is", "kid", "pr")
log = logging.getLogger(__name__)
FEATURE_DIM = 2048


def cache_dir() -> Path:
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "fid_stats"


@dataclass
class Source:
    """Where images come from: `batches()` yields uint8 (B, C, H, W); `key` names it for the cache
    (None: never cached, e.g. a model's samples)."""

    name: str
    count: int
    batches: Callable[[], Iterator[torch.Tensor]]
    key: dict | None = None


@dataclass
class Features:
    stats: GaussianStats = field(default_factory=lambda: GaussianStats(FEATURE_DIM))
    pool: list = field(default_factory=list)
    logits: list = field(default_factory=list)


def model_source(model, n: int, batch_size: int, labels=None) -> Source:
    """n samples of a model, quantised to uint8 as image files are."""

    def batches():
        for start in range(0, n, batch_size):
            kw = {"labels": labels} if labels else {}
            yield to_uint8(model.sample(min(batch_size, n - start), **kw)).cpu()

    return Source(f"samples of {type(model).__name__}", n, batches)


def loader_source(loader, n: int | None, name: str, key: dict, field: str = "image", transform=None) -> Source:
    """Images of a data set split (field "B" of a two-domain set), or transform(images):
    an image-to-image model's translations of them, which are never cached."""
    total = len(loader.dataset) if n is None else min(n, len(loader.dataset))

    def batches():
        seen = 0
        for batch in loader:
            x = batch[field][: total - seen]
            x = to_uint8(transform(x) if transform else x)
            seen += len(x)
            yield x
            if seen >= total:
                return

    return Source(name, total, batches, None if transform else {**key, "field": field, "count": total})


def data_key(data_cfg, split: str) -> dict:
    """What identifies a data set split for the statistics cache."""
    from omegaconf import OmegaConf

    return {"dataset": OmegaConf.to_container(data_cfg.dataset, resolve=True), "split": split, "shape": list(data_cfg.shape)}


def folder_source(folder: str, n: int | None, batch_size: int) -> Source:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise GenlabError(f"{folder} is not a folder of images")
    files = list_images(root)[: n or None]
    if not files:
        raise GenlabError(f"no images under {folder}")

    def batches():
        group: list[torch.Tensor] = []
        for f in files:
            arr = np.asarray(load_image(f).convert("RGB"))
            x = torch.from_numpy(arr.copy()).permute(2, 0, 1)
            if group and x.shape != group[0].shape:  # images of another size start a new batch
                yield torch.stack(group)
                group = []
            group.append(x)
            if len(group) == batch_size:
                yield torch.stack(group)
                group = []
        if group:
            yield torch.stack(group)

    stamp = [(str(f.relative_to(root)), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return Source(str(root), len(files), batches, {"folder": str(root.resolve()), "files": hashlib.sha1(json.dumps(stamp).encode()).hexdigest()})


class ImageQuality:
    """The Inception network once, for any number of source pairs."""

    def __init__(self, weights: str | None, mode: str, device: torch.device, batch_size: int = 50, download: bool = True, progress: bool = True):
        path = find_weights(weights, download=download)
        net, self.has_logits, self.weights_sha256 = load_inception(path)
        self.weights_path = str(path)
        self.extractor = InceptionExtractor(net, mode, device, self.has_logits)
        self.mode, self.batch_size, self.progress = mode, batch_size, progress

    def features(self, source: Source, keep_pool: bool, keep_logits: bool) -> Features:
        out = Features()
        with tqdm(total=source.count, desc=f"inception features: {source.name}", unit="img", disable=not self.progress, leave=False) as bar:
            for batch in source.batches():
                for start in range(0, len(batch), self.batch_size):
                    pool, logits = self.extractor(batch[start : start + self.batch_size])
                    out.stats.update(pool.numpy())
                    if keep_pool:
                        out.pool.append(pool.float())
                    if keep_logits:
                        out.logits.append(logits)
                    bar.update(len(pool))
        return out

    def reference_stats(self, source: Source) -> tuple[np.ndarray, np.ndarray, int]:
        """mu, sigma, n of a data source, from the cache when the same protocol computed them."""
        key = {**source.key, "weights_sha256": self.weights_sha256, "mode": self.mode} if source.key else None
        path = cache_dir() / (hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest() + ".npz") if key else None
        if path and path.is_file():
            with np.load(path) as f:
                return f["mu"], f["sigma"], int(f["n"])
        feats = self.features(source, False, False)
        if path:
            save_stats(path, feats.stats.mu, feats.stats.sigma, feats.stats.n)
        return feats.stats.mu, feats.stats.sigma, feats.stats.n

    def compare(self, fake: Source, real: Source | str, metrics: list[str], splits: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3) -> dict:
        """The requested metrics of fake against real (a source, or a .npz of mu and sigma)."""
        if "is" in metrics and not self.has_logits:
            raise GenlabError(f"IS needs the Inception classifier, which {self.weights_path} lacks (a features-only "
                              "TorchScript); give inception.weights a pytorch-fid .pth for IS, or drop is from metrics")
        need_real_features = bool({"kid", "pr"} & set(metrics))
        if need_real_features and isinstance(real, str):
            raise GenlabError("kid and pr need real images, not a .npz of statistics")
        fake_f = self.features(fake, need_real_features, "is" in metrics)
        results: dict[str, float] = {}
        if "fid" in metrics or need_real_features:
            if isinstance(real, str):
                mu, sigma, n_real = load_stats(real)
                real_f = None
            elif need_real_features:
                real_f = self.features(real, True, False)
                mu, sigma, n_real = real_f.stats.mu, real_f.stats.sigma, real_f.stats.n
            else:
                mu, sigma, n_real = self.reference_stats(real)
            for label, n in (("generated", fake_f.stats.n), ("reference", n_real)):
                if n < FEATURE_DIM:
                    log.warning("FID from %d %s images: fewer than the %d feature dimensions, the covariance is singular and FID is "
                                "strongly biased upwards; compare only numbers with the same counts (50,000 is the standard)", n, label, FEATURE_DIM)
            if "fid" in metrics:
                results["fid"] = frechet_distance(fake_f.stats.mu, fake_f.stats.sigma, mu, sigma)
            results["n_reference"] = n_real
        results["n_generated"] = fake_f.stats.n
        if "is" in metrics:
            results["is_mean"], results["is_std"] = inception_score(torch.cat(fake_f.logits), splits)
        if "kid" in metrics:
            results["kid_mean"], results["kid_std"] = kernel_inception_distance(torch.cat(real_f.pool), torch.cat(fake_f.pool), kid_subsets, kid_subset_size)
        if "pr" in metrics:
            results["precision"], results["recall"] = precision_recall(torch.cat(real_f.pool), torch.cat(fake_f.pool), pr_k)
        return results

    @property
    def protocol(self) -> dict:
        return {"feature_network": "FID Inception-v3 (TF 2015-12-05 port)", "weights": self.weights_path,
                "weights_sha256": self.weights_sha256, "resize_mode": self.mode}


def save_stats(path: Path, mu: np.ndarray, sigma: np.ndarray, n: int) -> None:
    """pytorch-fid's .npz format (mu, sigma) plus the count, written atomically."""
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma, n=n))


def load_stats(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        with np.load(Path(path).expanduser()) as f:
            return f["mu"], f["sigma"], int(f["n"]) if "n" in f else -1
    except (OSError, KeyError, ValueError) as e:
        raise GenlabError(f"{path} is not a statistics file with mu and sigma ({e})") from None
