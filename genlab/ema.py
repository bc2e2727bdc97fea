"""Exponential moving average of a model's weights, for sampling and evaluation."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class EMA:
    """A frozen copy of the model whose submodules named in `model.ema_modules` track
    shadow = beta * shadow + (1 - beta) * weights after each step, their floating-point
    buffers (batch-norm running statistics) too, so that a model sampled in eval mode
    normalises the averaged weights by averaged statistics rather than by the live
    weights' (timm's ModelEmaV2 averages buffers likewise). The other submodules are copied
    at every update, so the copy is a complete model to sample from.

    beta ramps up as StyleGAN2-ADA's (training_loop.py, ema_kimg with ema_rampup): the
    average's half-life is `decay`'s, ln 0.5 / ln decay steps, but at most `rampup` times
    the steps trained so far, so the random initialisation is forgotten early (with decay
    0.999 and no ramp-up it still holds 39% of the weight after 938 steps). rampup None is
    the plain EMA, beta = decay from the first step."""

    def __init__(self, model: nn.Module, decay: float, rampup: float | None = 0.05):
        self.decay, self.rampup = decay, None if rampup is None else float(rampup)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        prefixes = tuple(f"{name}." for name in model.ema_modules)
        self._averaged = {n for n, _ in model.named_parameters() if n.startswith(prefixes)}
        self._averaged_buffers = {n for n, b in model.named_buffers() if n.startswith(prefixes) and b.is_floating_point()}

    def beta(self, step: int) -> float:
        """The weight of the old average at the update after `step` completed steps."""
        if self.rampup is None:
            return self.decay
        half_life = math.log(0.5) / math.log(self.decay) if self.decay > 0 else 0.0
        half_life = min(half_life, step * self.rampup)
        return 0.5 ** (1.0 / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        beta = self.beta(step)
        averaged, live, copies, sources = self._pairs(model)
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - beta)
        if copies:
            torch._foreach_copy_(copies, sources)

    def _pairs(self, model: nn.Module) -> tuple[list, list, list, list]:
        """(shadows, live tensors) averaged and (shadows, live tensors) copied, found once per
        model (walking the modules' names at every step cost more than the update itself)."""
        if getattr(self, "_pairs_of", None) is not model:
            averaged, live, copies, sources = [], [], [], []
            for shadows, named, names in ((dict(self.module.named_parameters()), model.named_parameters(), self._averaged),
                                          (dict(self.module.named_buffers()), model.named_buffers(), self._averaged_buffers)):
                for name, value in named:
                    if name in names:
                        averaged.append(shadows[name]), live.append(value.detach())
                    else:
                        copies.append(shadows[name]), sources.append(value.detach())
            self._pairs_cache, self._pairs_of = (averaged, live, copies, sources), model
        return self._pairs_cache

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
