"""Config helpers: OmegaConf resolvers used by configs/, instantiation with one clear error,
and the config of a resumed run."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab.errors import GenlabError

GROUPS = ("model", "data", "loss", "optim", "scheduler", "trainer", "logger", "experiment", "experiment_loss")
log = logging.getLogger(__name__)


def _run_dir_of(resume, default: str) -> str:
    """Where a run writes: a resumed run goes on writing into its own run directory."""
    if resume in (None, "", "null"):
        return default
    p = Path(str(resume)).expanduser().resolve()
    if p.is_file():
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return str(p)


OmegaConf.register_new_resolver("prod", lambda *xs: math.prod(int(x) for x in xs), replace=True)
OmegaConf.register_new_resolver("sum", lambda *xs: sum(int(x) for x in xs), replace=True)
OmegaConf.register_new_resolver("genlab_run_dir", _run_dir_of, replace=True)
# [C, H, W] of a channel count and a side or [height, width] (data.crop_size of the two-domain sets)
OmegaConf.register_new_resolver("image_shape", lambda c, size: [int(c), *([int(size)] * 2 if isinstance(size, (int, str)) else map(int, size))], replace=True)
# a resumed run keeps its original .hydra/ (the config it started with)
OmegaConf.register_new_resolver("genlab_output_subdir", lambda resume: ".hydra" if resume in (None, "", "null") else None, replace=True)


def applied_choices(choices: dict) -> dict:
    """The config-group choices as they applied: Hydra records the optional
    experiment_loss it looked up (${experiment}/${loss}, configs/train.yaml) even where no
    such config exists; it is kept only where one does, so a run's record names the per-loss
    settings it got."""
    from importlib.resources import files

    value = choices.get("experiment_loss")
    if value is None or files("genlab.configs").joinpath("experiment_loss", *f"{value}.yaml".split("/")).is_file():
        return dict(choices)
    return {k: v for k, v in choices.items() if k != "experiment_loss"}


def model_class(model_cfg) -> type | None:
    """The class a model config's _target_ names; None where it names none that imports
    (building the model then says why in one line)."""
    import importlib

    module, _, name = str(model_cfg.get("_target_")).rpartition(".")
    try:  # not hydra.utils.get_class: it logs an error of its own before raising
        cls = getattr(importlib.import_module(module), name)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def adversarial_model_configs() -> list[str]:
    """The shipped model configs (configs/model/) whose class is an AdversarialModel: the
    families loss= applies to, read from the configs and their classes."""
    from importlib.resources import files

    import yaml

    from genlab.models.base import AdversarialModel

    names = []
    for p in sorted(files("genlab.configs").joinpath("model").iterdir(), key=lambda p: p.name):
        if p.name.endswith(".yaml"):
            cls = model_class(yaml.safe_load(p.read_text()))
            if cls is not None and issubclass(cls, AdversarialModel):
                names.append(p.name.removesuffix(".yaml"))
    return names


def build(node: DictConfig, what: str, **kwargs):
    """hydra.utils.instantiate, with a GenlabError raised inside surfacing as itself and any
    other failure as one line naming the config node."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, GenlabError):
            raise cause from None
        detail = str(cause or e).strip().splitlines()[-1]
        raise GenlabError(f"cannot build {what} from its config ({detail}); check the {what}.* keys") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# keys a resumed run cannot take from the command line, and why
FIXED_ON_RESUME = {
    "trainer.seed": "the random state continues from the checkpoint",
    "data.batch_size": "the data position is counted in batches of the original size",
}


def resume_config(saved: dict, saved_choices: dict, overrides: list[str]) -> DictConfig:
    """The config of a resumed run: the one saved in the checkpoint, with the command line's
    plain key=value overrides applied on top (each logged), or refused in one line where a
    resume cannot honour them: config-group choices (model=, data=, ...) and the keys in
    FIXED_ON_RESUME are part of the run."""
    cfg = OmegaConf.create(saved)
    OmegaConf.set_struct(cfg, True)  # a key the run does not have is an error, not a new key
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key.lstrip("+") == "resume" or key.lstrip("+~").startswith("hydra"):
            continue
        if key.startswith("~"):
            raise GenlabError(f"cannot delete {key[1:]} when resuming; resume with the run's config")
        key = key.lstrip("+")
        if key in GROUPS:
            if str(saved_choices.get(key)) != value:
                raise GenlabError(f"this run was trained with {key}={saved_choices.get(key)}; drop the override {ov} to resume it, "
                                  "or start a new run")
            continue
        before = OmegaConf.select(cfg, key, default=None)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{key}={value}"]))
        except Exception:  # a key this run's config does not have
            raise GenlabError(f"{key} is not a key of the resumed run's config; drop {ov}") from None
        after = OmegaConf.select(cfg, key, default=None)
        if key in FIXED_ON_RESUME and after != before:
            raise GenlabError(f"{key} cannot change when resuming ({FIXED_ON_RESUME[key]}): the run has {key}={before}; drop {ov}")
        if after != before:
            log.info("resume: applying %s=%s (the run had %s)", key, after, before)
    return cfg
