"""pix2pix (Isola et al. 2017): a generator G: A -> B and a conditional discriminator on the
concatenated (input, output) pair; loss = cGAN loss + lambda_L1 * L1(G(A), B), lambda = 100."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.images import interleave_rows, match_channels
from genlab.losses.adversarial import NonSaturating
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.metrics.ssim import ssim
from genlab.models.base import GenerativeModel, Phase, Translates, check_direction


class Pix2Pix(GenerativeModel, Translates):
    """Phases g (its fakes go to ctx) then d, which scores the same fakes, detached."""

    phases = (Phase("g", "g"), Phase("d", "d"))
    ema_modules = ("generator",)
    monitor = ("val/l1", "min")
    directions = ("AtoB",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: dict, lambda_l1: float = 100.0):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.objective = loss.get("objective") or NonSaturating()  # the reference's "vanilla" GAN loss
        self.lambda_l1 = lambda_l1

    def param_groups(self):
        return {"g": list(self.generator.parameters()), "d": list(self.discriminator.parameters())}

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        check_direction(self, direction)
        return self.generator(x)

    def training_step(self, batch, phase, ctx):
        a, b = batch["A"], batch["B"]
        if phase == "g":
            fake = self.generator(a)
            ctx["fake_B"] = fake.detach()
            gan = self.objective.g(self.discriminator(torch.cat([a, fake], 1)))
            l1 = (fake - b).abs().mean()
            loss = gan + self.lambda_l1 * l1
            return loss, {"gan": gan, "l1": l1, "loss": loss}
        real = self.discriminator(torch.cat([a, b], 1))
        fake = self.discriminator(torch.cat([a, ctx["fake_B"]], 1))
        loss = self.objective.d(real, fake)
        return loss, {"d_real": real.mean(), "d_fake": fake.mean(), "loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        """Paired metrics of G(A) against the target B: L1, PSNR, SSIM (on [0, 1] images)."""
        fake, b = self.generator(batch["A"]).clamp(-1, 1), batch["B"]
        return {"l1": (fake - b).abs().flatten(1).mean(1), "mse": per_image_mse(fake, b), "psnr": psnr(fake, b), "ssim": ssim((fake + 1) / 2, (b + 1) / 2)}

    @torch.no_grad()
    def visuals(self, batch):
        a, b = batch["A"][:8], batch["B"][:8]
        return {"translation": interleave_rows(match_channels(a, self.generator(a), b), 8)}
