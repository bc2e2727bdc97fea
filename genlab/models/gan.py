"""Generative adversarial networks, unconditional and conditional (Mirza & Osindero 2014),
for every objective in configs/loss/: a discriminator phase (n_critic repeats, with a gradient
penalty, R1 or weight clipping as configured), an optional lazy R1 phase, then the generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab import GenlabError
from genlab.images import scatter_image
from genlab.losses.adversarial import NonSaturating
from genlab.losses.penalties import gradient_penalty, r1_penalty
from genlab.models.base import Conditional, DecodesLatents, GenerativeModel, Phase, SamplesPrior, check_unconditional, output_shape


class GAN(GenerativeModel, DecodesLatents, SamplesPrior):
    """generator(z, y) -> samples; discriminator(x, y, features=False) -> logits (B,).

    loss: {objective, n_critic, gp_weight, r1_gamma, r1_every, clip} (a configs/loss/ entry).
    num_classes > 0 makes it the conditional GAN: y = the batch's labels in training, and
    `sample(n, labels=...)` picks the classes. The EMA of the generator (trainer.ema_decay)
    is what `genlab sample` and `genlab eval` use."""

    ema_modules = ("generator",)
    monitor = None

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: dict, z_dim: int, num_classes: int = 0):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.objective = loss.get("objective") or NonSaturating()
        self.n_critic = int(loss.get("n_critic", 1))
        self.gp_weight = float(loss.get("gp_weight") or 0.0)
        self.r1_gamma, self.r1_every = float(loss.get("r1_gamma") or 0.0), int(loss.get("r1_every") or 1)
        self.clip = loss.get("clip")
        self.z_dim, self.latent_dim, self.num_classes = z_dim, z_dim, num_classes
        if num_classes and not isinstance(self, Conditional):
            raise GenlabError(f"num_classes={num_classes} makes it the conditional GAN: use model=cgan (genlab.models.gan.ConditionalGAN)")
        if self.objective.uses_features and not hasattr(discriminator, "features"):
            raise GenlabError("feature matching needs a discriminator that returns features (DCGANDiscriminator, MLPDiscriminator)")
        phases = [Phase("d", "d", repeats=self.n_critic)]
        if self.r1_gamma and self.r1_every > 1:
            phases.append(Phase("d_reg", "d", every=self.r1_every))
        self.phases = (*phases, Phase("g", "g"))

    def param_groups(self):
        return {"d": list(self.discriminator.parameters()), "g": list(self.generator.parameters())}

    def _labels(self, batch: dict) -> Tensor | None:
        return batch["label"] if self.num_classes else None

    def _z(self, n: int, device) -> Tensor:
        return torch.randn(n, self.z_dim, device=device)

    def training_step(self, batch, phase, ctx):
        real, y = batch["image"], self._labels(batch)
        d = lambda x: self.discriminator(x, y)  # noqa: E731
        if phase == "d":
            with torch.no_grad():
                fake = self.generator(self._z(real.shape[0], real.device), y)
            r, f = d(real), d(fake)
            loss = self.objective.d(r, f)
            logs = {"d_real": r.mean(), "d_fake": f.mean()}
            if self.gp_weight:
                gp = gradient_penalty(d, real, fake)
                loss, logs["gp"] = loss + self.gp_weight * gp, gp
            if self.r1_gamma and self.r1_every == 1:
                r1 = r1_penalty(d, real)
                loss, logs["r1"] = loss + 0.5 * self.r1_gamma * r1, r1
            return loss, {**logs, "loss": loss}
        if phase == "d_reg":  # lazy R1, scaled by its interval (Karras et al. 2020)
            r1 = r1_penalty(d, real)
            loss = 0.5 * self.r1_gamma * self.r1_every * r1
            return loss, {"r1": r1, "loss": loss}
        fake = self.generator(self._z(real.shape[0], real.device), y)
        if self.objective.uses_features:
            _, fake_feat = self.discriminator(fake, y, features=True)
            with torch.no_grad():
                _, real_feat = self.discriminator(real, y, features=True)
            loss = self.objective.g_features(real_feat, fake_feat)
        else:
            loss = self.objective.g(d(fake))
        return loss, {"loss": loss}

    @torch.no_grad()
    def after_step(self, phase: str) -> None:
        if phase == "d" and self.clip:  # WGAN's Lipschitz constraint by weight clipping
            for p in self.discriminator.parameters():
                p.clamp_(-self.clip, self.clip)

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
    def decode(self, z: Tensor, labels: Sequence[int] | None = None) -> Tensor:
        return self.generator(z, self.class_labels(len(z), labels))

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

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: dict, z_dim: int, num_classes: int):
        if num_classes < 2:
            raise GenlabError(f"model.num_classes={num_classes}: a conditional GAN needs a data set with classes (data.num_classes >= 2)")
        super().__init__(generator, discriminator, loss, z_dim, num_classes)
