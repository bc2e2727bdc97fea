"""Exponential moving average of a model's weights, for sampling and evaluation."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of the model whose submodules named in `model.ema_modules` track
    shadow = decay * shadow + (1 - decay) * weights after each step; their buffers
    (batch-norm statistics) are copied. The other submodules are copied at every update, so
    the copy is a complete model to sample from."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        prefixes = tuple(f"{name}." for name in model.ema_modules)
        self._averaged = {n for n, _ in model.named_parameters() if n.startswith(prefixes)}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        shadow = dict(self.module.named_parameters())
        averaged, live = [], []
        for name, p in model.named_parameters():
            if name in self._averaged:
                averaged.append(shadow[name]), live.append(p.detach())
            else:
                shadow[name].copy_(p)
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - self.decay)
        for b_shadow, b in zip(self.module.buffers(), model.buffers()):
            b_shadow.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
