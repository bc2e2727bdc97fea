"""The model contract: a model says *what* to optimise, the trainer decides *how* to step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab import GenlabError


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a training step.

    name: "main", "d", "g", "d_reg", ...; optimizer: key into `param_groups()`;
    every: run on steps where step % every == 0 (lazy R1: 16); repeats: run k times per
    step, each repeat after the first on a fresh batch (WGAN n_critic: 5);
    start/stop: the half-open range of steps in which the phase runs (greedy layer-wise
    pretraining runs one phase per layer, one after the other).
    """

    name: str
    optimizer: str
    every: int = 1
    repeats: int = 1
    start: int = 0
    stop: int | None = None

    def active(self, step: int) -> bool:
        in_range = step >= self.start and (self.stop is None or step < self.stop)
        return in_range and step % self.every == 0


class GenerativeModel(nn.Module):
    """Base of every model family. Subclasses set `phases` and implement the methods below."""

    phases: tuple[Phase, ...] = (Phase("main", "main"),)
    #: names of submodules whose weights the trainer averages when trainer.ema_decay is set
    ema_modules: tuple[str, ...] = ()
    #: metric watched for best.pt when trainer.monitor is not set: (name, "min" | "max"), or None
    monitor: tuple[str, str] | None = ("val/loss", "min")
    #: whether `sample(n)` can draw new images (a plain autoencoder has no prior)
    can_sample: bool = False

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def training_step(self, batch: dict, phase: str, ctx: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss for this phase, and named scalars to log. ctx is per-step scratch shared by phases."""
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Called by the trainer after each optimizer step of a phase (WGAN weight clipping,
        GLO's projection of its codes onto the sphere)."""

    @torch.no_grad()
    def evaluate_batch(self, batch: dict) -> dict[str, Tensor]:
        """Per-sample metrics, each a (B,) tensor, averaged over a split by the caller."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, **cond) -> Tensor:
        """n new images in [-1, 1], shape (n, C, H, W)."""
        raise GenlabError(
            f"{type(self).__name__} has no prior to sample from; use model=vae or model=dae, "
            "or the sample modes recon/interp"
        )

    @torch.no_grad()
    def visuals(self, batch: dict) -> dict[str, Tensor]:
        """Image batches in [-1, 1] to show in TensorBoard and samples/ during training."""
        return {}
