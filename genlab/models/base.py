"""The model contract: a model says *what* to optimise, the trainer decides *how* to step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from genlab import GenlabError

if TYPE_CHECKING:
    from genlab.losses.adversarial import AdversarialLoss


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
    def visuals(self, batch: dict) -> dict[str, Tensor]:
        """Image batches in [-1, 1] to show in TensorBoard and samples/ during training."""
        return {}


class AdversarialModel(GenerativeModel):
    """An adversarial family (GAN, conditional GAN, pix2pix, CycleGAN): it holds the
    adversarial component built from the loss config (`self.adversarial`, which gives its
    discriminator phases, losses and penalties) and names its discriminators, on which the
    component's after-step hook (WGAN clipping) runs after every critic step."""

    adversarial: AdversarialLoss

    def discriminators(self) -> tuple[nn.Module, ...]:
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        self.adversarial.after_step(phase, *self.discriminators())


# -- capabilities: what `genlab sample` and `genlab eval` may ask of a model ------------------
# A model declares each by inheriting it; a sample mode or a metric names the one it needs
# (genlab/sample.py MODES, genlab/metrics METRICS) and checks it with isinstance, never by
# attribute names. One signature each; the abstract methods make a model that claims a
# capability implement all of it.
class Reconstructs(ABC):
    """Maps images to codes and back: encode(x) -> (B, D) codes, reconstruct(x) -> images."""

    @abstractmethod
    def encode(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def reconstruct(self, x: Tensor) -> Tensor: ...


class DecodesLatents(ABC):
    """Has a latent space to decode: latents(n, batch) gives n codes (of the batch's images
    where latents_from_images, else drawn from the prior; batch=None draws from the prior),
    decode(z, labels) gives images in [-1, 1]; a conditional model's labels are a list of
    classes (repeated over the batch) or one (B,) tensor, as an exported decoder takes them."""

    latent_dim: int
    #: latents come from images (encoders, GLO's codes), indexed by data set position
    latents_from_images: bool = False
    #: the split whose images have latents, if only one has them (GLO: the training images)
    latent_split: str | None = None
    #: latents(n) without a batch draws from a prior (else latents come only from images)
    has_latent_prior: bool = True

    def latent_prior(self) -> dict:
        """How latents(n) draws codes, as exported decoders' contracts state it."""
        return {"prior": "standard normal"}

    @abstractmethod
    def latents(self, n: int, batch: dict | None = None) -> Tensor: ...

    @abstractmethod
    def decode(self, z: Tensor, labels: Sequence[int] | Tensor | None = None) -> Tensor: ...


class SamplesPrior(ABC):
    """Draws new samples: sample(n, labels) -> (n, *sample_shape), images in [-1, 1] or points."""

    sample_shape: tuple[int, ...]

    @abstractmethod
    def sample(self, n: int, labels: Sequence[int] | None = None) -> Tensor: ...

    @property
    def samples_images(self) -> bool:
        return len(self.sample_shape) == 3


class GaussianPosterior(ABC):
    """q(z|x) = N(mu, diag(exp(logvar))): posterior(x) -> (mu, logvar), each (B, D), and the
    importance-sampled bound on log p(x) per image."""

    @abstractmethod
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def log_likelihood_bound(self, x: Tensor, k: int = 100) -> Tensor: ...


class Translates(ABC):
    """Image-to-image: translate(x, direction) for each of `directions` ("AtoB", "BtoA")."""

    directions: tuple[str, ...] = ("AtoB",)

    @abstractmethod
    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor: ...


class Conditional(ABC):
    """Conditioned on a class: class_labels(n, labels) -> (n,) labels to sample, from the
    given ones repeated or every class in turn."""

    num_classes: int

    @abstractmethod
    def class_labels(self, n: int, labels: Sequence[int] | None = None) -> Tensor: ...


class MarkovChain(ABC):
    """Samples by a Markov chain from noise: chain(x0, steps) -> every state, x0 first."""

    @abstractmethod
    def chain(self, x: Tensor, steps: int) -> list[Tensor]: ...


def check_direction(model: Translates, direction: str) -> None:
    if direction not in model.directions:
        raise GenlabError(f"direction={direction}: {type(model).__name__} translates {', '.join(model.directions)}")


def check_unconditional(model, labels) -> None:
    if labels:
        raise GenlabError(f"labels= needs a conditional model (model=cgan); {type(model).__name__} is not")


@torch.no_grad()
def output_shape(net: nn.Module, *inputs: Tensor) -> tuple[int, ...]:
    """The per-sample output shape of `net` on `inputs`, by a dry run in eval mode."""
    was_training = net.training
    try:
        return tuple(net.eval()(*inputs).shape[1:])
    finally:
        net.train(was_training)
