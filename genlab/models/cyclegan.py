"""CycleGAN (Zhu et al. 2017): G: A -> B and F: B -> A, discriminators D_A and D_B; least
squares adversarial loss by default; cycle consistency L1 both ways (lambda = 10) and the
identity loss (0.5 * lambda); a history pool of 50 generated images per discriminator.
The paper's ablations are switches: gan, cycle_forward (A -> B -> A), cycle_backward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.images import interleave_rows, match_channels
from genlab.losses.adversarial import LeastSquares
from genlab.models.base import GenerativeModel, Phase, Translates, check_direction


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


class CycleGAN(GenerativeModel, Translates):
    """Phases g (both generators; fakes to ctx) then d (both discriminators on pooled fakes)."""

    phases = (Phase("g", "g"), Phase("d", "d"))
    ema_modules = ()
    monitor = None
    directions = ("AtoB", "BtoA")

    def __init__(self, generator_AB: nn.Module, generator_BA: nn.Module, discriminator_A: nn.Module, discriminator_B: nn.Module,
                 loss: dict, lambda_cycle: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50,
                 gan: bool = True, cycle_forward: bool = True, cycle_backward: bool = True):
        super().__init__()
        self.G, self.F = generator_AB, generator_BA
        self.D_A, self.D_B = discriminator_A, discriminator_B
        self.objective = loss.get("objective") or LeastSquares()
        if not gan:  # the cycle-only ablation trains no discriminator
            self.phases = (Phase("g", "g"),)
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.use_gan, self.cycle_forward, self.cycle_backward = gan, cycle_forward, cycle_backward
        self.pool_A, self.pool_B = ImagePool(pool_size), ImagePool(pool_size)

    def param_groups(self):
        return {"g": [*self.G.parameters(), *self.F.parameters()], "d": [*self.D_A.parameters(), *self.D_B.parameters()]}

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        check_direction(self, direction)
        return self.G(x) if direction == "AtoB" else self.F(x)

    def training_step(self, batch, phase, ctx):
        a, b = batch["A"], batch["B"]
        if phase == "g":
            fake_b, fake_a = self.G(a), self.F(b)
            ctx["fake_A"], ctx["fake_B"] = fake_a.detach(), fake_b.detach()
            logs, loss = {}, torch.zeros((), device=a.device)
            if self.use_gan:
                logs["gan_AB"], logs["gan_BA"] = self.objective.g(self.D_B(fake_b)), self.objective.g(self.D_A(fake_a))
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
        fake_b, fake_a = self.pool_B.query(ctx["fake_B"]), self.pool_A.query(ctx["fake_A"])
        d_a = self.objective.d(self.D_A(a), self.D_A(fake_a))
        d_b = self.objective.d(self.D_B(b), self.D_B(fake_b))
        loss = 0.5 * (d_a + d_b)  # halved, as the reference does, to slow D relative to G
        return loss, {"d_A": d_a, "d_B": d_b, "loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        a, b = batch["A"], batch["B"]
        return {"cycle_A": (self.F(self.G(a)) - a).abs().flatten(1).mean(1), "cycle_B": (self.G(self.F(b)) - b).abs().flatten(1).mean(1)}

    @torch.no_grad()
    def visuals(self, batch):
        a, b = batch["A"][:8], batch["B"][:8]
        fake_b, fake_a = self.G(a), self.F(b)
        return {"A_to_B": interleave_rows(match_channels(a, fake_b, self.F(fake_b)), 8), "B_to_A": interleave_rows(match_channels(b, fake_a, self.G(fake_a)), 8)}
