"""pix2pix (Isola et al. 2017): a generator G: A -> B and a conditional discriminator on the
concatenated (input, output) pair; loss = cGAN loss + lambda_L1 * L1(G(A), B), lambda = 100.
The adversarial part (objective, penalties, critic repeats, clipping, DiffAugment) is the
component built from the loss config, as for every adversarial family.

As the reference code (junyanz/pytorch-CycleGAN-and-pix2pix, pix2pix_model.py): each step
makes G(A) once, steps D on it (loss (real + fake) * 0.5), then steps G against the updated
D on that same G(A); at test time the networks stay in train mode (test.py without --eval:
dropout on, batch norm on the test batch's statistics), model.test_mode=eval for PyTorch's
eval mode."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.images import interleave_rows, match_channels
from genlab.losses.adversarial import AdversarialLoss
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.metrics.ssim import ssim
from genlab.models.base import AdversarialModel, Translates, check_direction, replay


class Pix2Pix(AdversarialModel, Translates):
    """Phases d (on G(A), made with the RNG state kept in ctx; a critic repeat on a fresh
    batch makes its own) then g, which makes the same G(A) again from that state (the same
    dropout masks), now with gradients, against the updated D."""

    ema_modules = ("generator",)
    monitor = ("val/l1", "min")
    directions = ("AtoB",)
    claimed_modes = ("translate",)
    claimed_metrics = ("translation",)
    example_overrides = ("experiment=pix2pix_digit_edges",)
    d_scale = 0.5  # the reference's "vanilla" GAN loss (loss=default: non-saturating), its D loss halved

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss | dict, lambda_l1: float = 100.0,
                 diffaugment: str | Sequence[str] | None = None, test_mode: str = "train"):
        super().__init__(loss, diffaugment, test_mode, discriminator=discriminator)
        self.generator, self.discriminator = generator, discriminator
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
        if phase == "d":
            with torch.no_grad(), replay(self.generator) as snapshot:
                fake = self.generator(a)
            ctx.setdefault("fake_B", (batch, snapshot))  # the first repeat's batch is the step's batch
            return self.adversarial.d_loss(D, b, fake)
        if phase == "d_reg":
            return self.adversarial.d_reg_loss(D, b)
        made_from, snapshot = ctx.get("fake_B", (None, None))
        if made_from is batch:  # G(A) of phase d again, its dropout masks and all, now with gradients
            with replay(self.generator, snapshot):
                fake = self.generator(a)
        else:
            fake = self.generator(a)
        gan = self.adversarial.g_loss(D, b, fake)
        l1 = (fake - b).abs().mean()
        loss = gan + self.lambda_l1 * l1
        return loss, {"gan": gan, "l1": l1, "loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        """Paired metrics of G(A) against the target B: L1, PSNR, SSIM (on [0, 1] images)."""
        fake, b = self.generator(batch["A"]).clamp(-1, 1), batch["B"]
        return {"l1": (fake - b).abs().flatten(1).mean(1), "mse": per_image_mse(fake, b), "psnr": psnr(fake, b), "ssim": ssim((fake + 1) / 2, (b + 1) / 2)}

    @torch.no_grad()
    def visuals(self, batch):
        a, b = batch["A"][:8], batch["B"][:8]
        return {"translation": interleave_rows(match_channels(a, self.generator(a), b), 8)}
