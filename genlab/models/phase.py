"""One optimisation phase of a training step: what the model, the adversarial component and
the trainer all speak of, kept apart so that none of them imports another for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a training step.

    name: "main", "d", "g", "d_reg", ...; group: the parameter group it steps, a key into
    `param_groups()` (and so the optimizer built for that group);
    every: run on steps where step % every == 0 (lazy R1: 16); repeats: run k times per
    step, each repeat after the first on a fresh batch (WGAN n_critic: 5), or a function of
    the step giving k (WGAN's 100 critic steps early on and every 500th step);
    start/stop: the half-open range of steps in which the phase runs (greedy layer-wise
    pretraining runs one phase per layer, one after the other).
    """

    name: str
    group: str
    every: int = 1
    repeats: int | Callable[[int], int] = 1
    start: int = 0
    stop: int | None = None

    def repeats_at(self, step: int) -> int:
        return self.repeats(step) if callable(self.repeats) else self.repeats

    def active(self, step: int) -> bool:
        in_range = step >= self.start and (self.stop is None or step < self.stop)
        return in_range and step % self.every == 0
