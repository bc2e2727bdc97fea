"""`genlab classifier`: the domain classifiers (genlab/metrics/domain.py) trained by genlab's
own trainer, model=classifier with a fixed recipe per data set, and cached where
domain.domain_net finds them. It sits above the trainer, which may itself be computing a
metric through one of these classifiers: domain_net runs this verb in a process of its own
when a classifier is not cached yet."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.metrics.domain import CLASSIFIER_SETS, cached, check_set, classifier_dir, load_classifier, weights_sha256
from genlab.version import __version__

log = logging.getLogger(__name__)
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
            "test_accuracy": float(result["val"]["val/accuracy"]), "test_images": len(trainer.evaluator.loader.dataset), "weights_sha256": sha,
            "net": OmegaConf.to_container(cfg.model.net, resolve=True),
            "training": {"recipe": recipe, "steps": int(result["step"]), "batch_size": int(cfg.data.batch_size), "optim": cfg.optim._target_,
                         "lr": float(cfg.optim.lr), "seed": int(cfg.trainer.seed), "device": str(trainer.device),
                         "train_s": round(time.perf_counter() - start, 1), "torch": str(torch.__version__), "genlab": __version__}}
    path = classifier_dir() / f"{name}-{image_size}px-{sha[:12]}.pt"
    from genlab.atomic import atomic_write

    atomic_write(path, lambda f: torch.save({"weights": state, "meta": meta}, f))
    log.info("%s classifier: test accuracy %.4f on %d images, sha256 %s, %s", name, meta["test_accuracy"], meta["test_images"], sha, path)
    return path


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
        path = train_classifier(name, size, progress=sys.stderr.isatty(), device=args.get("device", "auto")) if args.get("retrain") == "true" or not files else files[0]
        net = load_classifier(path)
        print(f"{path}\n  test accuracy {net.accuracy:.4f}, sha256 {net.sha256}\n  training {net.training}")
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    return 0
