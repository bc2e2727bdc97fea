"""Domain networks: one small classifier per labelled data set genlab knows (digits,
fashion_mnist, mnist, cifar10), trained by genlab's own trainer (model=classifier, one
phase; genlab/classifier.py) on first use or ahead with `genlab classifier data=<set>`, and cached as
`<cache>/classifiers/<set>-<size>px-<sha256[:12]>.pt`: the weights, the sha256 of the
weights (over every tensor's name, dtype, shape and bytes), the test accuracy and the
training recipe. Loaded with weights_only=True and checked against its sha256.

They give class_accuracy (conditional models), the features and IS logits of
`features=<set>` for FID/KID/PR/IS and IFID, and the per-channel classes of stacked_modes."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError

log = logging.getLogger(__name__)
CLASSIFIER_SETS = ("digits", "fashion_mnist", "mnist", "cifar10")
# torchrun's environment: a classifier trained on first use runs as one process of its own
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR",
                      "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS")


def classifier_dir() -> Path:
    from genlab.metrics.image_quality import cache_dir

    return cache_dir().parent / "classifiers"


def weights_sha256(state: dict) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in name order: the same for the
    same weights however the file was pickled."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_set(name: str, key: str = "features") -> str:
    if name not in CLASSIFIER_SETS:
        raise GenlabError(f"{key}={name}: genlab has domain classifiers for {', '.join(CLASSIFIER_SETS)}")
    return name


@dataclass
class DomainNet:
    """A loaded domain classifier. Images go in as floats in [-1, 1] (B, C, H, W); grey images
    are repeated to RGB for an RGB set and RGB ones averaged to grey for a grey set, and other
    sizes are resized (bilinear, antialiased) to the classifier's."""

    name: str
    image_size: int
    channels: int
    net: torch.nn.Module
    sha256: str
    accuracy: float
    path: Path
    training: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.net.head[-1].in_features

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _input(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32)
        if x.shape[1] != self.channels:
            x = x.mean(1, keepdim=True) if self.channels == 1 else x.expand(-1, self.channels, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        return x

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        return self.net(self._input(x))

    @torch.no_grad()
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.net.features(self._input(x))
        return f, self.net.head(f)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.logits(x).argmax(1)

    @property
    def info(self) -> dict:
        """What every number computed with it records."""
        return {"classifier": f"{self.name} SmallCNN at {self.image_size}px", "classifier_weights": str(self.path),
                "classifier_sha256": self.sha256, "classifier_test_accuracy": self.accuracy, "classifier_training": self.training}


class DomainExtractor:
    """The domain network as ImageQuality's feature extractor: uint8 (B, C, H, W) -> (its
    penultimate features, its logits), float64 on the CPU; images scaled to [-1, 1] as the
    classifier was trained."""

    runtime, precision, mode = "torch", "32", None

    def __init__(self, domain: DomainNet):
        self.domain = domain
        self.name, self.dim, self.weights_sha256, self.weights_path = f"{domain.name} classifier", domain.feature_dim, domain.sha256, str(domain.path)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        f, logits = self.domain.features_and_logits(images.float() / 127.5 - 1)
        return f.double().cpu(), logits.double().cpu()

    forward = __call__

    @property
    def protocol(self) -> dict:
        return {"feature_network": f"genlab {self.domain.name} classifier (SmallCNN penultimate layer, {self.dim}-d; IS on its softmax)",
                "weights": self.weights_path, "weights_sha256": self.weights_sha256, **self.domain.info}


def cached(name: str, image_size: int) -> list[Path]:
    """The cached classifiers of a set at a size, newest first."""
    files = classifier_dir().glob(f"{name}-{image_size}px-*.pt")
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def load_classifier(path: Path, device: torch.device | str = "cpu") -> DomainNet:
    from genlab.allowlist import check_stored_config
    from genlab.config import build
    from omegaconf import OmegaConf

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["weights"]
    except Exception as e:  # noqa: BLE001  (any unreadable file is the same one line)
        raise GenlabError(f"cannot read the classifier {path} ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else e}); delete it, it is trained again on next use") from None
    sha = weights_sha256(state)
    if sha != meta.get("weights_sha256") or not path.stem.endswith(sha[:12]):
        raise GenlabError(f"the classifier {path} does not match its sha256 ({sha[:12]}); delete it, it is trained again on next use")
    check_stored_config(meta["net"], str(path))
    net = build(OmegaConf.create(meta["net"]), "classifier net")
    net.load_state_dict(state)
    net.eval().to(device)
    return DomainNet(meta["data"], int(meta["image_size"]), int(meta["channels"]), net, sha, float(meta["test_accuracy"]), path, meta["training"])


def train_on_first_use(name: str, image_size: int) -> Path:
    """Train and cache the classifier of a set with `genlab classifier` (genlab/classifier.py),
    in a process of its own: the caller (a trainer computing class_accuracy, say) keeps its
    random state, its device memory and its torchrun group; the new process logs to stderr."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    command = [sys.executable, "-m", "genlab.cli", "classifier", f"data={name}", f"image_size={image_size}"]
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
    files = cached(name, image_size)
    if done.returncode != 0 or not files:
        raise GenlabError(f"training the {name} classifier failed (genlab classifier data={name} image_size={image_size} exited with "
                          f"{done.returncode}; its error is above); nothing was cached")
    return files[0]


@functools.lru_cache(maxsize=8)
def _domain_net(name: str, image_size: int, device: str) -> DomainNet:
    files = cached(name, image_size)
    path = files[0] if files else train_on_first_use(name, image_size)
    net = load_classifier(path, device)
    log.info("%s classifier %s: test accuracy %.4f, sha256 %s", name, path, net.accuracy, net.sha256)
    return net


def domain_net(name: str, image_size: int, device: torch.device | str = "cpu") -> DomainNet:
    """The cached classifier of a data set at a size (the newest), trained first if there is none."""
    return _domain_net(check_set(name), int(image_size), str(device))


def extractor(features: str | None, image_size: int, device) -> DomainExtractor | None:
    """features=inception -> None (ImageQuality's Inception network), features=<set> -> its domain network."""
    if features in (None, "inception"):
        return None
    if features not in CLASSIFIER_SETS:
        raise GenlabError(f"features={features} is not inception or a data set with a classifier ({', '.join(CLASSIFIER_SETS)})")
    return DomainExtractor(domain_net(features, image_size, device))
