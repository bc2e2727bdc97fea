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

from genlab.errors import GenlabError
from genlab.atomic import atomic_write
from genlab.data.image_folder import list_images
from genlab.data.transforms import load_image
from genlab.device import cores
from genlab.images import to_uint8
from genlab.metrics.features import InceptionExtractor, prepare
from genlab.metrics.scores import GaussianStats
from genlab.metrics.image_metrics import Compared
from genlab.metrics.inception import find_weights, load_inception
from genlab.metrics.registry import image_metrics
from genlab.metrics.vgg16 import VGG16Extractor

PR_FEATURES = ("vgg16", "inception")  # vgg16: torch-fidelity's and the original's; inception: the FID network's pool features
log = logging.getLogger(__name__)
FEATURE_DIM = 2048


def cache_dir() -> Path:
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "fid_stats"


@dataclass
class Source:
    """Where images come from: `batches()` yields uint8 (B, C, H, W) (or, with prepared_mode,
    float (B, 3, 299, 299) Inception inputs, and `batches(extra)` pairs of them with
    extra(image), e.g. VGG16 inputs, from one decode of each file); `key` names it for the
    cache (None: never cached, e.g. a model's samples)."""

    name: str
    count: int
    batches: Callable[[], Iterator[torch.Tensor]]
    key: dict | None = None
    prepared_mode: str | None = None  # set: batches are float Inception inputs, prepared in this mode


@dataclass
class Features:
    stats: GaussianStats = field(default_factory=lambda: GaussianStats(FEATURE_DIM))
    pool: list = field(default_factory=list)
    logits: list = field(default_factory=list)
    pr: list = field(default_factory=list)  # the precision/recall network's features, where it is not Inception


def model_source(model, n: int, batch_size: int, labels=None, seed: int | None = None) -> Source:
    """n samples of a model, quantised to uint8 as image files are; with a seed, the random
    state is seeded as the samples start, so they are the ones `genlab sample grid=false
    seed=<seed> batch_size=<batch_size>` writes."""

    def batches():
        if seed is not None:
            from genlab.config import seed_everything

            seed_everything(seed)
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


def decode_rgb(path: Path) -> torch.Tensor:
    """uint8 (3, H, W) of an image file through genlab's one decoder (load_image: EXIF
    orientation, 16-bit, transparency on white), grey repeated to three channels."""
    return torch.from_numpy(np.asarray(load_image(path).convert("RGB")).copy()).permute(2, 0, 1)


class PreparedImages(torch.utils.data.Dataset):
    """Files -> Inception inputs (3, 299, 299), decoded and resized in loader workers so the
    network never waits; with `extra`, also extra(image) (another network's input); a file
    that fails comes back as its one-line error, raised in the main process."""

    def __init__(self, files: list[Path], mode: str, extra: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.files, self.mode, self.extra = files, mode, extra

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        try:
            image = decode_rgb(self.files[i])[None]
            x = prepare(image, self.mode)[0] if self.mode else image[0]  # no mode: uint8 for a domain classifier
            return x, self.extra(image)[0] if self.extra else torch.zeros(0), ""
        except GenlabError as e:
            return torch.zeros(0), torch.zeros(0), str(e)

    @staticmethod
    def collate(items: list[tuple[torch.Tensor, torch.Tensor, str]]) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
        errors = [e for _, _, e in items if e]
        sizes = sorted({tuple(x.shape) for x, _, e in items if not e})
        if not errors and len(sizes) > 1:
            errors = [f"the folder holds images of sizes {sizes[0][1:]} and {sizes[1][1:]}; features=<data set> needs images of one size"]
        if errors:
            return None, None, errors[0]
        return torch.stack([x for x, _, _ in items]), torch.stack([x for _, x, _ in items]), ""


def loader_workers(workers: int | None) -> int:
    """null: one per core up to 4 (decoding costs a few percent of the network's time)."""
    return min(4, cores()) if workers is None else int(workers)


def folder_source(folder: str, n: int | None, batch_size: int, mode: str = "tf", workers: int | None = None) -> Source:
    """The images of a folder (recursively, sorted), as prepared Inception inputs."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise GenlabError(f"{folder} is not a folder of images")
    files = list_images(root)[: n or None]
    if not files:
        raise GenlabError(f"no images under {folder}")

    def batches(extra=None):
        w = loader_workers(workers)
        loader = torch.utils.data.DataLoader(PreparedImages(files, mode, extra), batch_size=batch_size, num_workers=w,
                                             collate_fn=PreparedImages.collate, prefetch_factor=4 if w else None)
        for x, x_extra, error in loader:
            if error:
                raise GenlabError(error)
            yield (x, x_extra) if extra else x

    stamp = [(str(f.relative_to(root)), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return Source(str(root), len(files), batches, {"folder": str(root.resolve()), "files": hashlib.sha1(json.dumps(stamp).encode()).hexdigest()},
                  prepared_mode=mode)


class ImageQuality:
    """The Inception network, prepared once (runtime, precision), for any number of source
    pairs; reference statistics are kept in memory as well as in the disk cache. Precision and
    recall use `pr_features`: VGG16 (built at the first pr, from pr_weights) or Inception's pool.
    `extractor` replaces Inception for every metric, pr included (features=<data set>:
    genlab.metrics.domain.DomainExtractor, with name, dim, weights_sha256, weights_path and
    protocol; uint8 images in, features and logits out)."""

    def __init__(self, weights: str | None, mode: str, device: torch.device, batch_size: int = 50, download: bool = True, progress: bool = True,
                 runtime: str = "auto", precision: str = "32", workers: int | None = None, pr_features: str = "vgg16",
                 pr_weights: str | None = None, pr_download: bool = True, extractor=None):
        if pr_features not in PR_FEATURES:
            raise GenlabError(f"pr_features={pr_features!r} is not one of {', '.join(PR_FEATURES)}")
        self.pr_features, self.pr_weights, self.pr_download, self.device = pr_features, pr_weights, pr_download, device
        self._pr_extractor: VGG16Extractor | None = None
        self._metric_protocols: dict[str, dict] = {}
        self.domain, self.dim = extractor, extractor.dim if extractor else FEATURE_DIM
        if extractor:
            self.extractor, self.has_logits, self.weights_sha256, self.weights_path = extractor, True, extractor.weights_sha256, extractor.weights_path
            mode = None  # uint8 images go to the extractor as they are
        else:
            path = find_weights(weights, download=download)
            net, self.has_logits, self.weights_sha256 = load_inception(path)
            self.weights_path = str(path)
            self.extractor = InceptionExtractor(net, mode, device, self.has_logits, runtime=runtime, precision=str(precision))
        self.mode, self.batch_size, self.progress, self.workers = mode, batch_size, progress, workers
        self._reference: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def folder(self, folder: str, n: int | None = None) -> Source:
        """A folder of images, decoded and resized in loader workers for this protocol."""
        return folder_source(folder, n, self.batch_size, self.mode, self.workers)

    def pr_extractor(self) -> VGG16Extractor | None:
        """The precision/recall network where it is not the main one (Inception, or a data set's
        classifier, whose features pr then uses too), built on first use."""
        if self.domain or self.pr_features != "vgg16":
            return None
        if self._pr_extractor is None:
            self._pr_extractor = VGG16Extractor(self.pr_weights, self.device, self.pr_download)
        return self._pr_extractor

    def features(self, source: Source, keep_pool: bool, keep_logits: bool, pr: VGG16Extractor | None = None) -> Features:
        """Inception features of a source and, with `pr`, that network's features of the same images."""
        if source.prepared_mode not in (None, self.mode):
            raise ValueError(f"{source.name} was prepared for mode {source.prepared_mode}, not {self.mode}")
        prepared = source.prepared_mode is not None
        extract = self.extractor.forward if prepared else self.extractor
        out = Features(GaussianStats(self.dim))
        with tqdm(total=source.count, desc=f"{self.domain.name if self.domain else 'inception'} features: {source.name}", unit="img", disable=not self.progress, leave=False) as bar:
            for batch in source.batches(pr.prepare) if prepared and pr else source.batches():
                batch, pr_batch = batch if prepared and pr else (batch, batch)
                for start in range(0, len(batch), self.batch_size):
                    pool, logits = extract(batch[start : start + self.batch_size])
                    out.stats.update(pool.numpy())
                    if keep_pool:
                        out.pool.append(pool.float())
                    if keep_logits:
                        out.logits.append(logits)
                    if pr:
                        chunk = pr_batch[start : start + self.batch_size]
                        out.pr.append(pr.forward(chunk) if prepared else pr(chunk))
                    bar.update(len(pool))
        return out

    def reference_stats(self, source: Source) -> tuple[np.ndarray, np.ndarray, int]:
        """mu, sigma, n of a data source, from memory or the disk cache when the same protocol computed them."""
        precision = {} if self.extractor.precision == "32" else {"precision": self.extractor.precision}  # fp32 runtimes agree to rounding
        key = {**source.key, "weights_sha256": self.weights_sha256, "mode": self.mode, **precision} if source.key else None
        name = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest() if key else None
        if name in self._reference:
            return self._reference[name]
        path = cache_dir() / (name + ".npz") if name else None
        if path and path.is_file():
            with np.load(path) as f:
                stats = f["mu"], f["sigma"], int(f["n"])
        else:
            feats = self.features(source, False, False)
            stats = feats.stats.mu, feats.stats.sigma, feats.stats.n
            if path:
                save_stats(path, *stats)
        if name:
            self._reference[name] = stats
        return stats

    def compare(self, fake: Source, real: Source | str, metrics: list[str], splits: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3) -> dict:
        """The requested metrics of fake against real (a source, or a .npz of mu and sigma)."""
        if "is" in metrics and not self.has_logits:
            raise GenlabError(f"IS needs the Inception classifier, which {self.weights_path} lacks (a features-only "
                              "TorchScript); give inception.weights a pytorch-fid .pth for IS, or drop is from metrics")
        need_real_features = bool({"kid", "pr"} & set(metrics))
        if need_real_features and isinstance(real, str):
            raise GenlabError("kid and pr need real images, not a .npz of statistics")
        pr_net = self.pr_extractor() if "pr" in metrics else None  # before any image: missing weights stop it at once
        keep_pool = "kid" in metrics or "pr" in metrics and pr_net is None
        fake_f = self.features(fake, keep_pool, "is" in metrics, pr_net)
        mu = sigma = n_real = real_f = None
        if "fid" in metrics or need_real_features:
            if isinstance(real, str):
                mu, sigma, n_real = load_stats(real)
            elif need_real_features:
                real_f = self.features(real, keep_pool, False, pr_net)
                mu, sigma, n_real = real_f.stats.mu, real_f.stats.sigma, real_f.stats.n
            else:
                mu, sigma, n_real = self.reference_stats(real)
            for label, n in (("generated", fake_f.stats.n), ("reference", n_real)):
                if n < self.dim:
                    log.warning("FID from %d %s images: fewer than the %d feature dimensions, the covariance is singular and FID is "
                                "strongly biased upwards; compare only numbers with the same counts (50,000 is the standard)", n, label, self.dim)
        compared = Compared(fake_f, real_f, mu, sigma, splits, kid_subsets, kid_subset_size, pr_k)
        scores = {k: v for name, m in image_metrics().items() if name in metrics for k, v in m.compute(compared).items()}
        counts = ({} if n_real is None else {"n_reference": n_real}) | {"n_generated": fake_f.stats.n}
        results = {"fid": scores.pop("fid")} | counts | scores if "fid" in scores else counts | scores  # the order genlab eval prints
        if "pr" in metrics:
            features = (pr_net.protocol if pr_net else {"features": self.domain.name, "dim": self.dim, "weights": self.weights_path,
                                                        "weights_sha256": self.weights_sha256} if self.domain else
                        {"features": "inception", "layer": "pool3", "dim": FEATURE_DIM, "weights": self.weights_path,
                         "weights_sha256": self.weights_sha256, "resize": self.mode})
            entry = self._metric_protocols.setdefault("pr", {**features, "k": pr_k, "samples": {}})
            entry["samples"][fake.name] = {"generated": fake_f.stats.n, "reference": real_f.stats.n}
        return results

    @property
    def protocol(self) -> dict:
        """The Inception network's protocol, and per metric that uses other features (pr) its
        own: network, layer, weights sha256, resize, k, and the sample counts of each comparison;
        with a domain classifier, its protocol instead of Inception's."""
        per_metric = {name: {**entry, "samples": dict(entry["samples"])} for name, entry in self._metric_protocols.items()}
        if self.domain:
            return {**self.domain.protocol, **per_metric}
        return {"feature_network": "FID Inception-v3 (TF 2015-12-05 port)", "weights": self.weights_path,
                "weights_sha256": self.weights_sha256, "resize_mode": self.mode,
                "inception_runtime": self.extractor.runtime, "inception_precision": self.extractor.precision,
                **per_metric}


def save_stats(path: Path, mu: np.ndarray, sigma: np.ndarray, n: int) -> None:
    """pytorch-fid's .npz format (mu, sigma) plus the count, written atomically."""
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma, n=n))


def load_stats(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        with np.load(Path(path).expanduser()) as f:
            return f["mu"], f["sigma"], int(f["n"]) if "n" in f else -1
    except (OSError, KeyError, ValueError) as e:
        raise GenlabError(f"{path} is not a statistics file with mu and sigma ({e})") from None
