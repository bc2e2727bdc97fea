"""Learning-rate schedules as pure factor functions of the step (nanoGPT's get_lr), wrapped
in LambdaLR so that their state lives in the checkpoint. Each factory takes the optimizer
and the run's total number of steps, which the trainer supplies (and the steps per epoch,
to a factory that asks for them)."""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Linear warm-up from 0 to 1 over warmup_steps, then a half cosine from 1 to min_factor."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def constant_then_linear_factor(step: int, total_steps: int, decay_start: float = 0.5, steps_per_epoch: int | None = None) -> float:
    """The CycleGAN/pix2pix schedule as the reference computes it (networks.py, get_scheduler's
    lambda_rule, stepped once per epoch): 1 for the first n epochs, then in each of the
    n_decay epochs after 1 - k / (n_decay + 1), k = 1, ..., n_decay, so the last epoch runs at
    lr / (n_decay + 1). decay_start is n as a fraction of the run, or a count of epochs when
    > 1. steps_per_epoch None counts in steps instead of epochs (the same rule per step)."""
    unit = steps_per_epoch or 1
    units = max(1, math.ceil(total_steps / unit))
    start = decay_start * units if decay_start <= 1 else decay_start
    return 1.0 - max(0.0, step // unit + 1 - start) / (units - start + 1)


def step_factor(step: int, total_steps: int, step_size: int = 1000, gamma: float = 0.1) -> float:
    """Multiply by gamma every step_size steps."""
    return gamma ** (step // step_size)


def warmup_cosine(optimizer: Optimizer, total_steps: int, **kw) -> LambdaLR:
    return LambdaLR(optimizer, partial(warmup_cosine_factor, total_steps=total_steps, **kw))


def constant_then_linear(optimizer: Optimizer, total_steps: int, steps_per_epoch: int | None = None, per_epoch: bool = True, **kw) -> LambdaLR:
    """per_epoch (the reference's): the rate changes once per epoch; false: at every step."""
    return LambdaLR(optimizer, partial(constant_then_linear_factor, total_steps=total_steps, steps_per_epoch=steps_per_epoch if per_epoch else None, **kw))


def step_decay(optimizer: Optimizer, total_steps: int, **kw) -> LambdaLR:
    return LambdaLR(optimizer, partial(step_factor, total_steps=total_steps, **kw))
