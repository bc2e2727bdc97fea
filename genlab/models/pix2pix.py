"""pix2pix (Isola et al. 2017): a generator G: A -> B and a conditional discriminator on the
concatenated (input, output) pair; loss = cGAN loss + lambda_L1 * L1(G(A), B), lambda = 100.
The adversarial part (objective, penalties, critic repeats, clipping, DiffAugment) is the
component built from the loss config, as for every adversarial family."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.images import interleave_rows, match_channels
from genlab.losses.adversarial import AdversarialLoss, NonSaturating
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.metrics.ssim import ssim
from genlab.models.base import AdversarialModel, Translates, check_direction


class Pix2Pix(AdversarialModel, Translates):
    """Phases g (its fakes go to ctx) then d, which scores the same fakes, detached (a critic
    repeat on a fresh batch makes its own)."""

    ema_modules = ("generator",)
    monitor = ("val/l1", "min")
    directions = ("AtoB",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss | dict, lambda_l1: float = 100.0,
                 diffaugment: str | Sequence[str] | None = None):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.adversarial = AdversarialLoss.of(loss).bind(NonSaturating(), diffaugment)  # the reference's "vanilla" GAN loss
        self.adversarial.check_discriminators(**{"model.discriminator": discriminator})
        self.phases = self.adversarial.phases(generator_first=True)
        self.lambda_l1 = lambda_l1

    def param_groups(self):
        return {"g": list(self.generator.parameters()), "d": list(self.discriminator.parameters())}

    def discriminators(self) -> tuple[nn.Module, ...]:
        return (self.discriminator,)

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        check_direction(self, direction)
        return self.generator(x)

    def training_step(self, batch, phase, ctx):
        a, b = batch["A"], batch["B"]
        D = self.adversarial.critic(self.discriminator, pair=a)  # D sees (input, output) pairs
        if phase == "g":
            fake = self.generator(a)
            ctx["fake_B"] = (batch, fake.detach())
            gan = self.adversarial.g_loss(D, b, fake)
            l1 = (fake - b).abs().mean()
            loss = gan + self.lambda_l1 * l1
            return loss, {"gan": gan, "l1": l1, "loss": loss}
        if phase == "d_reg":
            return self.adversarial.d_reg_loss(D, b)
        made_from, fake = ctx.get("fake_B", (None, None))
        if made_from is not batch:  # a critic repeat on a fresh batch
            with torch.no_grad():
                fake = self.generator(a)
        return self.adversarial.d_loss(D, b, fake)

    @torch.no_grad()
    def evaluate_batch(self, batch):
        """Paired metrics of G(A) against the target B: L1, PSNR, SSIM (on [0, 1] images)."""
        fake, b = self.generator(batch["A"]).clamp(-1, 1), batch["B"]
        return {"l1": (fake - b).abs().flatten(1).mean(1), "mse": per_image_mse(fake, b), "psnr": psnr(fake, b), "ssim": ssim((fake + 1) / 2, (b + 1) / 2)}

    @torch.no_grad()
    def visuals(self, batch):
        a, b = batch["A"][:8], batch["B"][:8]
        return {"translation": interleave_rows(match_channels(a, self.generator(a), b), 8)}
