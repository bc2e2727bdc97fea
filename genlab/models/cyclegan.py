"""CycleGAN (Zhu et al. 2017): G: A -> B and F: B -> A, discriminators D_A and D_B; least
squares adversarial loss by default; cycle consistency L1 both ways (lambda = 10) and the
identity loss (0.5 * lambda); a history pool of 50 generated images per discriminator.
The losses are the reference code's (junyanz/pytorch-CycleGAN-and-pix2pix, cycle_gan_model.py):
G's adversarial terms are MSE(D(G(x)), 1) without the LSGAN paper's 1/2, and each
discriminator's loss is (MSE(D(real), 1) + MSE(D(fake), 0)) * 0.5.
The paper's ablations are switches: gan, cycle_forward (A -> B -> A), cycle_backward."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.images import interleave_rows, match_channels
from genlab.losses.adversarial import AdversarialLoss, LeastSquares
from genlab.models.base import AdversarialModel, Translates, check_direction
from genlab.models.phase import Phase


class ImagePool(nn.Module):
    """Shrivastava et al. 2017: once full, each new fake replaces a random stored one with
    probability 1/2 and the stored one is shown to the discriminator instead. Its images are
    module state (get_extra_state), so they travel in checkpoints and resume exactly."""

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor) -> Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(len(self.images), ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def get_extra_state(self) -> dict:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def set_extra_state(self, state: dict) -> None:
        self.images = [img for img in state["images"]] if state["images"].numel() else []


class CycleGAN(AdversarialModel, Translates):
    """Phases g (both generators; fakes to ctx) then d (both discriminators on pooled fakes).
    The adversarial part (objective, penalties, critic repeats, clipping, DiffAugment) is the
    component built from the loss config, one critic per domain."""

    ema_modules = ()
    monitor = None
    directions = ("AtoB", "BtoA")
    claimed_modes = ("translate",)
    claimed_metrics = ("translation",)
    example_overrides = ("experiment=cyclegan_digits2edges",)
    default_objective = LeastSquares
    d_scale = 0.5  # the reference's (real + fake) * 0.5
    generator_first = True

    def __init__(self, generator_AB: nn.Module, generator_BA: nn.Module, discriminator_A: nn.Module, discriminator_B: nn.Module,
                 loss: AdversarialLoss | dict, lambda_cycle: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50,
                 gan: bool = True, cycle_forward: bool = True, cycle_backward: bool = True, diffaugment: str | Sequence[str] | None = None):
        loss = AdversarialLoss.of(loss)
        if not gan and not loss.is_default:
            raise GenlabError("model.gan=false (the cycle-only ablation) trains no discriminator, so loss= has nothing to apply to; drop loss= and loss.*")
        if not gan and diffaugment:
            raise GenlabError("model.gan=false (the cycle-only ablation) trains no discriminator for model.diffaugment to augment; drop it")
        super().__init__(loss, diffaugment, discriminator_A=discriminator_A, discriminator_B=discriminator_B)
        if not gan:
            self.phases = (Phase("g", "g"),)
        self.G, self.F = generator_AB, generator_BA
        self.D_A, self.D_B = discriminator_A, discriminator_B
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.use_gan, self.cycle_forward, self.cycle_backward = gan, cycle_forward, cycle_backward
        self.pool_A, self.pool_B = ImagePool(pool_size), ImagePool(pool_size)

    def param_groups(self):
        return {"g": [*self.G.parameters(), *self.F.parameters()], "d": [*self.D_A.parameters(), *self.D_B.parameters()]}

    def discriminators(self) -> tuple[nn.Module, ...]:
        return (self.D_A, self.D_B)

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        check_direction(self, direction)
        return self.G(x) if direction == "AtoB" else self.F(x)

    def training_step(self, batch, phase, ctx):
        a, b = batch["A"], batch["B"]
        D_A, D_B = self.adversarial.critic(self.D_A), self.adversarial.critic(self.D_B)
        if phase == "g":
            fake_b, fake_a = self.G(a), self.F(b)
            ctx["fakes"] = (batch, fake_a.detach(), fake_b.detach())
            logs, loss = {}, torch.zeros((), device=a.device)
            if self.use_gan:
                logs["gan_AB"], logs["gan_BA"] = self.adversarial.g_loss(D_B, b, fake_b), self.adversarial.g_loss(D_A, a, fake_a)
                loss = loss + logs["gan_AB"] + logs["gan_BA"]
            if self.cycle_forward:
                logs["cycle_A"] = (self.F(fake_b) - a).abs().mean()
                loss = loss + self.lambda_cycle * logs["cycle_A"]
            if self.cycle_backward:
                logs["cycle_B"] = (self.G(fake_a) - b).abs().mean()
                loss = loss + self.lambda_cycle * logs["cycle_B"]
            if self.lambda_identity > 0 and a.shape[1] == b.shape[1]:
                logs["idt_A"], logs["idt_B"] = (self.F(a) - a).abs().mean(), (self.G(b) - b).abs().mean()
                loss = loss + self.lambda_cycle * self.lambda_identity * (logs["idt_A"] + logs["idt_B"])
            return loss, {**logs, "loss": loss}
        if phase == "d_reg":
            (loss_a, logs_a), (loss_b, logs_b) = self.adversarial.d_reg_loss(D_A, a), self.adversarial.d_reg_loss(D_B, b)
        else:
            made_from, fake_a, fake_b = ctx.get("fakes", (None, None, None))
            if made_from is not batch:  # a critic repeat on a fresh batch
                with torch.no_grad():
                    fake_a, fake_b = self.F(b), self.G(a)
            fake_b, fake_a = self.pool_B.query(fake_b), self.pool_A.query(fake_a)
            (loss_a, logs_a), (loss_b, logs_b) = self.adversarial.d_loss(D_A, a, fake_a), self.adversarial.d_loss(D_B, b, fake_b)
        loss = loss_a + loss_b  # two networks, each with its own (halved) loss, as the reference's backward_D_A and backward_D_B
        logs = {f"{k}_A": v for k, v in logs_a.items() if k != "loss"} | {f"{k}_B": v for k, v in logs_b.items() if k != "loss"}
        return loss, {"d_A": loss_a, "d_B": loss_b, **logs, "loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        a, b = batch["A"], batch["B"]
        return {"cycle_A": (self.F(self.G(a)) - a).abs().flatten(1).mean(1), "cycle_B": (self.G(self.F(b)) - b).abs().flatten(1).mean(1)}

    @torch.no_grad()
    def visuals(self, batch):
        a, b = batch["A"][:8], batch["B"][:8]
        fake_b, fake_a = self.G(a), self.F(b)
        return {"A_to_B": interleave_rows(match_channels(a, fake_b, self.F(fake_b)), 8), "B_to_A": interleave_rows(match_channels(b, fake_a, self.G(fake_a)), 8)}
