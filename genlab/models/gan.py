"""Generative adversarial networks, unconditional and conditional (Mirza & Osindero 2014),
for every objective in configs/loss/: the adversarial component (genlab.losses.adversarial)
gives the phases (the discriminator's, n_critic repeats; an optional lazy R1; then the
generator's), the losses with their penalties, and the clipping after a critic step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.images import scatter_image
from genlab.losses.adversarial import AdversarialLoss
from genlab.models.base import AdversarialModel, Conditional, DecodesLatents, SamplesPrior, check_unconditional, output_shape


class GAN(AdversarialModel, DecodesLatents, SamplesPrior):
    """generator(z, y) -> samples; discriminator(x, y, features=False) -> logits (B,).

    loss: the adversarial component (a configs/loss/ entry; loss=default: non-saturating).
    num_classes > 0 makes it the conditional GAN: y = the batch's labels in training, and
    `sample(n, labels=...)` picks the classes. diffaugment: DiffAugment policies of what the
    discriminator sees. The EMA of the generator (trainer.ema_decay) is what `genlab sample`
    and `genlab eval` use."""

    ema_modules = ("generator",)
    monitor = None
    claimed_modes = ("prior", "interp", "slerp", "arith")
    claimed_metrics = ("modes", "stacked_modes")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss | dict, z_dim: int, num_classes: int = 0,
                 diffaugment: str | Sequence[str] | None = None, test_mode: str = "train"):
        if num_classes and not isinstance(self, Conditional):
            raise GenlabError(f"num_classes={num_classes} makes it the conditional GAN: use model=cgan (genlab.models.gan.ConditionalGAN)")
        super().__init__(loss, diffaugment, test_mode, discriminator=discriminator)
        self.generator, self.discriminator = generator, discriminator
        self.z_dim, self.latent_dim, self.num_classes = z_dim, z_dim, num_classes
        if self.adversarial.augment is not None and len(self.sample_shape) != 3:
            raise GenlabError(f"model.diffaugment augments images; this model makes samples of shape {self.sample_shape}; drop it")

    def param_groups(self):
        return {"d": list(self.discriminator.parameters()), "g": list(self.generator.parameters())}

    def discriminators(self) -> tuple[nn.Module, ...]:
        return (self.discriminator,)

    def _labels(self, batch: dict) -> Tensor | None:
        return batch["label"] if self.num_classes else None

    def _z(self, n: int, device) -> Tensor:
        return torch.randn(n, self.z_dim, device=device)

    def training_step(self, batch, phase, ctx):
        real, y = batch["image"], self._labels(batch)
        D = self.adversarial.critic(self.discriminator, y)
        if phase == "d_reg":
            return self.adversarial.d_reg_loss(D, real)
        if phase == "d":
            with torch.no_grad():
                fake = self.generator(self._z(real.shape[0], real.device), y)
            return self.adversarial.d_loss(D, real, fake)
        loss = self.adversarial.g_loss(D, real, self.generator(self._z(real.shape[0], real.device), y))
        return loss, {"loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        real, y = batch["image"], self._labels(batch)
        fake = self.generator(self._z(real.shape[0], real.device), y)
        return {"d_real": self.discriminator(real, y), "d_fake": self.discriminator(fake, y)}

    def _device(self):
        return next(self.generator.parameters()).device

    def class_labels(self, n: int, labels: Sequence[int] | None = None) -> Tensor | None:
        """n labels: the given ones repeated, or every class in turn; None if unconditional."""
        if not self.num_classes:
            check_unconditional(self, labels)
            return None
        base = torch.as_tensor(list(labels) if labels else range(self.num_classes), device=self._device())
        if base.min() < 0 or base.max() >= self.num_classes:
            raise GenlabError(f"labels must lie in 0..{self.num_classes - 1}")
        return base.repeat((n + len(base) - 1) // len(base))[:n]

    # -- the latent interface of genlab sample ---------------------------------------------
    def latents(self, n: int, batch: dict | None = None) -> Tensor:
        return self._z(n, self._device())

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Sequence[int] | Tensor | None = None) -> Tensor:
        if not torch.is_tensor(labels) and (labels or self.num_classes):  # len(z) only here: it would fix an export's batch
            labels = self.class_labels(len(z), labels)
        return self.generator(z, labels)

    @torch.no_grad()
    def sample(self, n: int, labels: Sequence[int] | None = None) -> Tensor:
        return self.decode(self.latents(n), labels)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return output_shape(self.generator, self._z(2, self._device()), self.class_labels(2))

    @torch.no_grad()
    def visuals(self, batch):
        real = batch["image"]
        if real.dim() == 2:  # points of a 2-D benchmark: real (green) and generated (red) densities
            return {"samples": scatter_image(real, self.sample(max(1000, len(real))))}
        if self.num_classes:  # one row per class, the same noise down each column
            rows = min(self.num_classes, 10)
            z = self.latents(8).repeat(rows, 1)
            y = torch.arange(rows, device=z.device).repeat_interleave(8)
            return {"samples": self.generator(z, y)}
        return {"samples": self.sample(64)}


class ConditionalGAN(GAN, Conditional):
    """The conditional GAN (Mirza & Osindero 2014): G and D see the class label."""

    claimed_modes = (*GAN.claimed_modes, "classes", "fixed_z")
    claimed_metrics = (*GAN.claimed_metrics, "class_accuracy", "ifid")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss | dict, z_dim: int, num_classes: int,
                 diffaugment: str | Sequence[str] | None = None, test_mode: str = "train"):
        if num_classes < 2:
            raise GenlabError(f"model.num_classes={num_classes}: a conditional GAN needs a data set with classes (data.num_classes >= 2)")
        super().__init__(generator, discriminator, loss, z_dim, num_classes, diffaugment, test_mode)
