"""Variational autoencoder (Kingma & Welling): a Gaussian encoder q(z|x), the standard normal
prior, and a decoder likelihood p(x|z) chosen by `likelihood` (bce, mse or l1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.images import interleave_rows
from genlab.losses.kl import gaussian_kl
from genlab.losses.reconstruction import check_kind, negative_log_likelihood, output_to_image
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.models.base import DecodesLatents, GaussianPosterior, GenerativeModel, Reconstructs, SamplesPrior, check_unconditional, output_shape

LOG_2PI = math.log(2 * math.pi)


class VAE(GenerativeModel, Reconstructs, DecodesLatents, SamplesPrior, GaussianPosterior):
    """loss = E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I)), one reparameterised sample per image.

    The logged `elbo` is the beta = 1 bound in nats per image (negative; higher is better),
    `recon_nll` and `kl` its two terms with their own positive signs: elbo = -(recon_nll + kl).
    """

    ema_modules = ("encoder", "decoder", "mu_head", "logvar_head")
    monitor = ("val/elbo", "max")
    claimed_modes = ("recon", "prior", "interp", "slerp", "arith", "traverse")
    claimed_metrics = ("recon", "nll", "modes", "stacked_modes")
    latents_from_images = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        likelihood: str = "bce",
        beta: float = 1.0,
        obs_scale: float = 1.0,
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.likelihood = check_kind(likelihood, "model.likelihood")
        self.beta, self.obs_scale = beta, obs_scale
        self.sample_shape = self.image_shape
        (feat,) = output_shape(encoder, torch.zeros(2, *self.image_shape))  # the encoder's feature size
        self.mu_head = nn.Linear(feat, latent_dim)
        self.logvar_head = nn.Linear(feat, latent_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean: the code used for interpolation and traversals."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor, labels: Sequence[int] | None = None) -> Tensor:
        check_unconditional(self, labels)
        return output_to_image(self.decoder(z), self.likelihood)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def latents(self, n: int, batch: dict | None = None) -> Tensor:
        """Posterior means of the batch's first n images, else draws from the prior."""
        if batch is None:
            return torch.randn(n, self.latent_dim, device=self.mu_head.weight.device)
        return self.encode(batch["image"][:n])

    def nll(self, out: Tensor, x: Tensor) -> Tensor:
        return negative_log_likelihood(out, x, self.likelihood, self.obs_scale)

    def terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-image ELBO terms, each (B,), from one sample z = mu + sigma * eps."""
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        nll = self.nll(self.decoder(z), x)
        kl = gaussian_kl(mu, logvar)
        return {"recon_nll": nll, "kl": kl, "elbo": -(nll + kl)}

    def training_step(self, batch, phase, ctx):
        t = {k: v.mean() for k, v in self.terms(batch["image"]).items()}
        loss = t["recon_nll"] + self.beta * t["kl"]
        return loss, {**t, "loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        x = batch["image"]
        rec = self.reconstruct(x)
        return {**self.terms(x), "mse": per_image_mse(rec, x), "psnr": psnr(rec, x)}

    @torch.no_grad()
    def log_likelihood_bound(self, x: Tensor, k: int = 100, chunk: int = 50) -> Tensor:
        """Importance-sampled bound log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)
        (Burda et al.), per image, shape (B,); tighter than the ELBO, exact as k -> inf."""
        mu, logvar = self.posterior(x)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn(m, *mu.shape, device=mu.device, dtype=mu.dtype)  # (m, B, D)
            z = mu + std * eps
            out = self.decoder(z.flatten(0, 1))
            log_px = -self.nll(out, x.repeat(m, *[1] * (x.dim() - 1))).view(m, -1)
            log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(-1)
            log_w.append(log_px + log_pz - log_qz)
        return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, labels: Sequence[int] | None = None) -> Tensor:
        return self.decode(self.latents(n), labels)

    @torch.no_grad()
    def visuals(self, batch):
        x = batch["image"][:16]
        return {"reconstruction": interleave_rows([x, self.reconstruct(x)], 8), "samples": self.sample(64)}
