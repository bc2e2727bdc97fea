"""Domain networks: one small classifier per labelled data set genlab knows (digits,
fashion_mnist, mnist, cifar10), trained by genlab's own trainer (model=classifier, one
phase) on first use or ahead with `genlab classifier data=<set>`, and cached as
`<cache>/classifiers/<set>-<size>px-<sha256[:12]>.pt`: the weights, the sha256 of the
weights (over every tensor's name, dtype, shape and bytes), the test accuracy and the
training recipe. Loaded with weights_only=True and checked against its sha256.

They give class_accuracy (conditional models), the features and IS logits of
`features=<set>` for FID/KID/PR/IS and IFID, and the per-channel classes of stacked_modes."""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.version import __version__
from genlab.errors import GenlabError

log = logging.getLogger(__name__)
CLASSIFIER_SETS = ("digits", "fashion_mnist", "mnist", "cifar10")
# each set's recipe on top of model=classifier (Adam, a cosine schedule to 0, seed 0)
RECIPES = {
    "digits": ["trainer.max_steps=1500", "data.batch_size=64", "optim.lr=2e-3"],            # 67 epochs of 1,438 images
    # 5 epochs of the wider net: 92.00% (3 epochs of 16/32/64 channels gave 90.44%)
    "fashion_mnist": ["trainer.max_steps=2345", "data.batch_size=128", "optim.lr=2e-3", "model.net.channels=[32,64,128]"],
    "mnist": ["trainer.max_steps=940", "data.batch_size=128", "optim.lr=2e-3"],             # 2 epochs
    "cifar10": ["trainer.max_steps=7800", "data.batch_size=128", "optim.lr=2e-3", "data.augment.hflip=true"],  # 20 epochs
}
COMMON = ["model=classifier", "scheduler=cosine", "logger=jsonl", "trainer.seed=0", "trainer.eval_every=0", "trainer.sample_every=0",
          "trainer.ckpt_every=0", "trainer.log_every=100", "trainer.keep_last=0"]


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


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import genlab.config  # noqa: F401  (the resolvers the configs use)

    if GlobalHydra.instance().is_initialized():  # inside genlab eval's Hydra app
        return compose(config_name="train", overrides=overrides)
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose(config_name="train", overrides=overrides)


def train_classifier(name: str, image_size: int = 32, overrides: list[str] = (), progress: bool = True, device: str = "auto") -> Path:
    """Train the classifier of a data set through genlab's trainer and cache it; the training
    leaves every random generator of the process as it found it."""
    from genlab import checkpoint
    from genlab.config import build, seed_everything
    from genlab.train import build_trainer

    check_set(name, "data")
    recipe = [*COMMON, *RECIPES[name], f"data={name}", f"data.image_size={image_size}", f"trainer.device={device}",
              f"trainer.progress_bar={str(progress).lower()}", *overrides]
    cfg = _compose(recipe)
    log.info("training the %s classifier at %dpx (%d steps; once: it is cached in %s)", name, image_size, cfg.trainer.max_steps, classifier_dir())
    rng = checkpoint.rng_state()
    start = time.perf_counter()
    try:
        seed_everything(int(cfg.trainer.seed))
        model = build(cfg.model, "model")
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = build_trainer(cfg, model, run_dir)
            result = trainer.fit()
    finally:
        checkpoint.set_rng_state(rng)
    if result["interrupted"]:
        raise GenlabError(f"training the {name} classifier was stopped by {result['interrupted']}; nothing was cached")
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    sha = weights_sha256(state)
    from omegaconf import OmegaConf

    meta = {"data": name, "image_size": image_size, "channels": int(cfg.data.channels), "num_classes": int(cfg.data.num_classes),
            "test_accuracy": float(result["val"]["val/accuracy"]), "test_images": len(trainer.val_loader.dataset), "weights_sha256": sha,
            "net": OmegaConf.to_container(cfg.model.net, resolve=True),
            "training": {"recipe": recipe, "steps": int(result["step"]), "batch_size": int(cfg.data.batch_size), "optim": cfg.optim._target_,
                         "lr": float(cfg.optim.lr), "seed": int(cfg.trainer.seed), "device": str(trainer.device),
                         "train_s": round(time.perf_counter() - start, 1), "torch": str(torch.__version__), "genlab": __version__}}
    path = classifier_dir() / f"{name}-{image_size}px-{sha[:12]}.pt"
    from genlab.atomic import atomic_write

    atomic_write(path, lambda f: torch.save({"weights": state, "meta": meta}, f))
    log.info("%s classifier: test accuracy %.4f on %d images, sha256 %s, %s", name, meta["test_accuracy"], meta["test_images"], sha, path)
    return path


def cached(name: str, image_size: int) -> list[Path]:
    """The cached classifiers of a set at a size, newest first."""
    files = classifier_dir().glob(f"{name}-{image_size}px-*.pt")
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def load_classifier(path: Path, device: torch.device | str = "cpu") -> DomainNet:
    from genlab.components import check_stored_config
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


@functools.lru_cache(maxsize=8)
def _domain_net(name: str, image_size: int, device: str) -> DomainNet:
    files = cached(name, image_size)
    path = files[0] if files else train_classifier(name, image_size, progress=sys.stderr.isatty())
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


def main(argv: list[str]) -> int:
    """genlab classifier data=<set> [image_size=32] [retrain=true] [device=auto]: train (or show)
    the cached classifier of a set; without data=, list the cached ones."""
    logging.basicConfig(level=logging.INFO, format="genlab classifier: %(message)s")
    try:
        args = dict(a.split("=", 1) for a in argv if "=" in a)
        bad = [a for a in argv if "=" not in a] + [k for k in args if k not in ("data", "image_size", "retrain", "device")]
        if bad:
            raise GenlabError(f"genlab classifier takes data=<{'|'.join(CLASSIFIER_SETS)}>, image_size=, retrain=true and device=; not {bad[0]}")
        if "data" not in args:
            files = sorted(classifier_dir().glob("*.pt"))
            for f in files:
                net = load_classifier(f)
                print(f"{f}  test accuracy {net.accuracy:.4f}  sha256 {net.sha256}  trained in {net.training.get('train_s')} s")
            print(f"{len(files)} classifier(s) in {classifier_dir()}; genlab classifier data=<{'|'.join(CLASSIFIER_SETS)}> trains one")
            return 0
        name, size = check_set(args["data"], "data"), int(args.get("image_size", 32))
        files = cached(name, size)
        path = train_classifier(name, size, device=args.get("device", "auto")) if args.get("retrain") == "true" or not files else files[0]
        net = load_classifier(path)
        print(f"{path}\n  test accuracy {net.accuracy:.4f}, sha256 {net.sha256}\n  training {net.training}")
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    return 0
