"""The model contract: a model says *what* to optimise, the trainer decides *how* to step."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.losses.adversarial import AdversarialLoss, NonSaturating, Objective
from genlab.models.phase import Phase

TEST_MODES = ("train", "eval")


def check_test_mode(mode: str) -> str:
    if mode not in TEST_MODES:
        raise GenlabError(f"model.test_mode={mode!r} is not one of {', '.join(TEST_MODES)}")
    return mode


class GenerativeModel(nn.Module):
    """Base of every model family. Subclasses set `phases` and implement the methods below."""

    phases: tuple[Phase, ...] = (Phase("main", "main"),)
    #: how the networks run when the model samples, translates or is evaluated (genlab sample,
    #: eval, export, the trainer's grids and validation): "eval" (PyTorch's eval mode: batch
    #: norm on its running statistics, no dropout) or "train" (batch norm on the statistics of
    #: the batch at hand and dropout on, as pix2pix's test.py without --eval and
    #: pytorch/examples' DCGAN samples); `in_test_mode(model)` applies it
    test_mode: str = "eval"
    #: names of submodules whose weights the trainer averages when trainer.ema_decay is set
    ema_modules: tuple[str, ...] = ()
    #: metric watched for best.pt when trainer.monitor is not set: (name, "min" | "max"), or None
    monitor: tuple[str, str] | None = ("val/loss", "min")
    #: what the family offers, as tests/test_capabilities.py checks against its capabilities for
    #: every config in configs/model/: the `genlab sample` modes, and the `genlab eval` model
    #: metrics it can be scored by on data that suits them (modes on the 2-D mixtures,
    #: stacked_modes on a stacked set, class_accuracy on a labelled set)
    claimed_modes: tuple[str, ...] = ()
    claimed_metrics: tuple[str, ...] = ()
    #: overrides that make a config of this family train offline, where the default data
    #: (digits) does not suit it; the generic tests over configs/model/ start from them
    example_overrides: tuple[str, ...] = ()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def optimizer_settings(self, group: str, settings: dict) -> dict:
        """The model's adjustment of a group's optimizer settings: none here."""
        return settings

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
    """An adversarial family (GAN, conditional GAN, pix2pix, CycleGAN, or one of a user's):
    it holds the adversarial component built from the loss config (`self.adversarial`, which
    gives its discriminator phases, losses and penalties) and names its discriminators, on
    which the component's after-step hook (WGAN clipping) runs after every critic step.

    A family declares its reference's choices as class attributes, and `__init__` does the
    set-up every family shares: the component bound to the family's default objective
    (loss=default), its DiffAugment policy and the scale of its discriminator loss; the
    discriminators checked against the penalties; the phases, in the family's order."""

    adversarial: AdversarialLoss
    #: the objective of loss=default: the family's paper objective
    default_objective: type[Objective] = NonSaturating
    #: what the objective's discriminator loss is multiplied by (pix2pix and CycleGAN: 0.5, their reference's (real + fake) * 0.5)
    d_scale: float = 1.0
    #: phase g before d (CycleGAN: its discriminators score the fakes g leaves in ctx); else d first
    generator_first: bool = False

    def __init__(self, loss: AdversarialLoss | dict, diffaugment: str | Sequence[str] | None = None, test_mode: str | None = None,
                 **discriminators: nn.Module):
        """loss: the configs/loss/ entry; discriminators: each discriminator by its config key
        (discriminator=net is model.discriminator), named in the penalties' refusals."""
        super().__init__()
        if test_mode is not None:
            self.test_mode = check_test_mode(test_mode)
        self.adversarial = AdversarialLoss.of(loss).bind(self.default_objective(), diffaugment, d_scale=self.d_scale)
        self.adversarial.check_discriminators(**{f"model.{key}": net for key, net in discriminators.items()})
        self.phases = self.adversarial.phases(generator_first=self.generator_first)

    def discriminators(self) -> tuple[nn.Module, ...]:
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        self.adversarial.after_step(phase, *self.discriminators())

    def optimizer_settings(self, group: str, settings: dict) -> dict:
        """lazy R1's Adam correction: AdversarialLoss.optimizer_settings."""
        return self.adversarial.optimizer_settings(group, settings)


# -- capabilities: what `genlab sample` and `genlab eval` may ask of a model ------------------
# A model declares each by inheriting it; a sample mode or a metric names the one it needs
# (genlab/sample.py MODES, genlab/metrics/registry.py METRICS) and checks it with isinstance, never by
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


@contextlib.contextmanager
def in_test_mode(model: GenerativeModel):
    """The model in its test mode (`test_mode`) for the block; afterwards its train/eval
    flags and its buffers (batch-norm running statistics, which a train-mode forward
    updates) are as before, so evaluating never changes the model."""
    flags = [m.training for m in model.modules()]
    buffers = [b.clone() for b in model.buffers()] if model.test_mode == "train" else []
    model.train(model.test_mode == "train")
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
        for m, flag in zip(model.modules(), flags):
            m.training = flag


def _rng_state(device: torch.device) -> Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@contextlib.contextmanager
def replay(module: nn.Module, snapshot: tuple | None = None):
    """Run a forward of `module` twice with the same randomness (dropout masks) and the same
    batch-norm bookkeeping: without `snapshot`, the block runs as usual and yields the RNG
    state and buffers it started from; with it, the module's buffers are put back as they
    were and the block runs from that RNG state on a forked RNG (the training RNG goes on
    untouched), so batch norm counts the batch once."""
    device = next(module.parameters()).device
    if snapshot is None:
        yield (_rng_state(device), [b.clone() for b in module.buffers()])
        return
    state, buffers = snapshot
    with torch.no_grad():
        for b, saved in zip(module.buffers(), buffers):
            b.copy_(saved)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        if device.type == "cuda":
            torch.cuda.set_rng_state(state, device)
        else:
            torch.set_rng_state(state)
        yield snapshot


@torch.no_grad()
def output_shape(net: nn.Module, *inputs: Tensor) -> tuple[int, ...]:
    """The per-sample output shape of `net` on `inputs`, by a dry run in eval mode."""
    was_training = net.training
    try:
        return tuple(net.eval()(*inputs).shape[1:])
    finally:
        net.train(was_training)
