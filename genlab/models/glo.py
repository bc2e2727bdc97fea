"""Generative Latent Optimization (Bojanowski et al. 2018): a learnable code per training
image, kept on the unit sphere, optimised jointly with the generator on a reconstruction
loss (L1, or the Laplacian-pyramid L1 of the paper); no discriminator. Samples come from a
full-covariance Gaussian fitted to the learned codes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.losses.reconstruction import laplacian_pyramid_l1
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.models.base import DecodesLatents, GenerativeModel, SamplesPrior, check_unconditional, output_shape

LOSSES = ("l1", "lap1")


class GLO(GenerativeModel, DecodesLatents, SamplesPrior):
    ema_modules = ("generator",)
    monitor = ("val/mse", "min")
    claimed_modes = ("prior", "interp", "slerp", "arith")
    claimed_metrics = ("modes", "stacked_modes")
    latents_from_images = True
    latent_split = "train"  # its latents are the codes of training images

    def __init__(self, generator: nn.Module, num_codes: int, z_dim: int, loss: str = "lap1", levels: int = 4, fit_steps: int = 50):
        super().__init__()
        if loss not in LOSSES:
            raise GenlabError(f"model.loss={loss!r} is not one of {', '.join(LOSSES)}")
        self.generator, self.z_dim, self.loss, self.levels, self.fit_steps = generator, z_dim, loss, levels, fit_steps
        self.latent_dim = z_dim
        self.sample_shape = output_shape(generator, torch.zeros(2, z_dim))
        self.codes = nn.Embedding(num_codes, z_dim)
        with torch.no_grad():
            self.codes.weight.copy_(F.normalize(torch.randn(num_codes, z_dim), dim=1))

    def reconstruction_loss(self, out: Tensor, x: Tensor) -> Tensor:
        """Per-image loss, shape (B,)."""
        if self.loss == "l1":
            return (out - x).abs().flatten(1).mean(1)
        return laplacian_pyramid_l1(out, x, self.levels)

    def training_step(self, batch, phase, ctx):
        index = batch["index"]
        if int(index.max()) >= self.codes.num_embeddings:
            raise GenlabError(f"GLO has {self.codes.num_embeddings} codes but the data set has more images; set model.num_codes to its size")
        loss = self.reconstruction_loss(self.generator(self.codes(index)), batch["image"]).mean()
        return loss, {"loss": loss}

    @torch.no_grad()
    def after_step(self, phase: str) -> None:
        self.codes.weight.copy_(F.normalize(self.codes.weight, dim=1))  # back onto the unit sphere

    def fit_codes(self, x: Tensor, steps: int | None = None, lr: float = 0.1) -> Tensor:
        """Codes for images outside the training set, by gradient descent on the loss
        with the generator fixed, from the mean code, projected onto the sphere each step."""
        z = self.codes.weight.mean(0, keepdim=True).repeat(len(x), 1).detach().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        with torch.enable_grad():
            for _ in range(self.fit_steps if steps is None else steps):
                loss = self.reconstruction_loss(self.generator(F.normalize(z, dim=1)), x).sum()
                opt.zero_grad()
                loss.backward(inputs=[z])
                opt.step()
        return F.normalize(z.detach(), dim=1)

    @torch.no_grad()
    def evaluate_batch(self, batch):
        """Reconstruction of held-out images through fitted codes."""
        x = batch["image"]
        rec = self.generator(self.fit_codes(x))
        return {"mse": per_image_mse(rec, x), "psnr": psnr(rec, x), "loss": self.reconstruction_loss(rec, x)}

    def latent_prior(self) -> dict:
        dist = self.code_distribution()
        return {"prior": "gaussian fitted to the training codes", "mean": dist.mean.float().tolist(), "covariance": dist.covariance_matrix.float().tolist()}

    def code_distribution(self) -> torch.distributions.MultivariateNormal:
        codes = self.codes.weight.double()
        cov = torch.cov(codes.T) + 1e-6 * torch.eye(self.z_dim, dtype=codes.dtype, device=codes.device)
        return torch.distributions.MultivariateNormal(codes.mean(0), covariance_matrix=cov)

    # -- the latent interface of genlab sample ---------------------------------------------
    def latents(self, n: int, batch: dict | None = None) -> Tensor:
        """Codes of the batch's training images (the first n), else draws from the fitted Gaussian."""
        if batch is not None:
            return self.codes(batch["index"][:n].to(self.codes.weight.device))
        return self.code_distribution().sample((n,)).float()

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Sequence[int] | None = None) -> Tensor:
        check_unconditional(self, labels)
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, labels: Sequence[int] | None = None) -> Tensor:
        return self.decode(self.latents(n), labels)

    @torch.no_grad()
    def visuals(self, batch):
        return {"samples": self.sample(64)}
