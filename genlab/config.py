"""Config helpers: OmegaConf resolvers used by configs/, instantiation with one clear error,
and the config of a resumed run."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab import GenlabError

GROUPS = ("model", "data", "optim", "scheduler", "trainer", "logger", "experiment")


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


def resume_config(saved: dict, saved_choices: dict, overrides: list[str]) -> DictConfig:
    """The config of a resumed run: the one saved in the checkpoint, with the command line's
    plain key=value overrides on top (e.g. trainer.max_steps=4000). Config-group choices
    (model=, data=, ...) are part of the run and cannot change on resume."""
    cfg = OmegaConf.create(saved)
    for ov in overrides:
        key, _, value = ov.partition("=")
        key = key.lstrip("+")
        if key == "resume" or key.startswith("hydra"):
            continue
        if key.startswith("~"):
            raise GenlabError(f"cannot delete {key[1:]} when resuming; resume with the run's config")
        if key in GROUPS:
            if str(saved_choices.get(key)) != value:
                raise GenlabError(f"this run was trained with {key}={saved_choices.get(key)}; drop the override {ov} to resume it")
            continue
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{key}={value}"]))
    return cfg
