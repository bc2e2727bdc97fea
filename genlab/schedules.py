"""Learning-rate schedules as pure factor functions of the step (nanoGPT's get_lr), wrapped
in LambdaLR so that their state lives in the checkpoint. Each factory takes the optimizer
and the run's total number of steps, which the trainer supplies."""

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


def constant_then_linear_factor(step: int, total_steps: int, decay_start: float = 0.5) -> float:
    """1 until decay_start (a fraction of the run, or a step count when > 1), then linearly
    to 0 at the last step: the CycleGAN schedule (100 epochs constant + 100 decaying)."""
    start = decay_start * total_steps if decay_start <= 1 else decay_start
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(1.0, total_steps - start))


def step_factor(step: int, total_steps: int, step_size: int = 1000, gamma: float = 0.1) -> float:
    """Multiply by gamma every step_size steps."""
    return gamma ** (step // step_size)


def warmup_cosine(optimizer: Optimizer, total_steps: int, **kw) -> LambdaLR:
    return LambdaLR(optimizer, partial(warmup_cosine_factor, total_steps=total_steps, **kw))


def constant_then_linear(optimizer: Optimizer, total_steps: int, **kw) -> LambdaLR:
    return LambdaLR(optimizer, partial(constant_then_linear_factor, total_steps=total_steps, **kw))


def step_decay(optimizer: Optimizer, total_steps: int, **kw) -> LambdaLR:
    return LambdaLR(optimizer, partial(step_factor, total_steps=total_steps, **kw))
