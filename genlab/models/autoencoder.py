"""Autoencoders: undercomplete, sparse, convolutional and stacked (with optional greedy
layer-wise pretraining), a matter of networks and options in the YAML; and the denoising
autoencoder, which also samples, by its Markov chain."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.images import interleave_rows
from genlab.losses.reconstruction import check_kind, output_to_image, reconstruction_error
from genlab.losses.sparsity import KINDS as SPARSITY_KINDS
from genlab.losses.sparsity import sparsity_penalty
from genlab.metrics.reconstruction import per_image_mse, psnr
from genlab.models.base import DecodesLatents, GenerativeModel, MarkovChain, Reconstructs, SamplesPrior, check_unconditional, output_shape
from genlab.models.phase import Phase
from genlab.nets.mlp import MLP

CORRUPTIONS = ("gaussian", "mask", "salt_pepper")


def corrupt(x: Tensor, kind: str, level: float) -> Tensor:
    """Denoising corruption of images in [-1, 1]: additive Gaussian noise of std `level`;
    masking a `level` share of pixels to 0 (mid-grey); or salt-and-pepper, setting a
    `level` share of pixels to -1 or 1 at random."""
    if kind == "gaussian":
        return x + level * torch.randn_like(x)
    if kind == "mask":
        return torch.where(torch.rand_like(x) < level, torch.zeros_like(x), x)
    if kind == "salt_pepper":
        hit = torch.rand_like(x) < level
        salt = torch.where(torch.rand_like(x) < 0.5, 1.0, -1.0).to(x.dtype)
        return torch.where(hit, salt, x)
    raise GenlabError(f"model.corruption.kind={kind!r} is not one of {', '.join(CORRUPTIONS)}")


class Autoencoder(GenerativeModel, Reconstructs, DecodesLatents):
    """x -> code = encoder(x) -> decoder(code), trained on a reconstruction loss.

    sparsity: {kind: l1 | kl, weight, rho} penalises the *code activations*.
    greedy_pretrain_steps > 0 (MLP encoder/decoder only): pretrain each encoder layer with its
    mirror decoder layer on the previous layer's codes for that many steps, one layer after
    the other, then fine-tune the whole stack.
    """

    ema_modules = ("encoder", "decoder")
    monitor = ("val/mse", "min")
    claimed_modes = ("recon", "interp", "slerp", "arith")
    claimed_metrics = ("recon",)
    latents_from_images = True
    has_latent_prior = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        image_shape: tuple[int, int, int],
        recon_loss: str = "mse",
        sparsity: dict | None = None,
        greedy_pretrain_steps: int = 0,
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.image_shape = tuple(image_shape)
        self.recon_loss = check_kind(recon_loss)
        self.sparsity = dict(sparsity) if sparsity else None
        if self.sparsity and self.sparsity.get("kind") not in SPARSITY_KINDS:
            raise GenlabError(f"model.sparsity.kind={self.sparsity.get('kind')!r} is not one of {', '.join(SPARSITY_KINDS)}")
        self.latent_dim = output_shape(encoder, torch.zeros(2, *self.image_shape))[0]
        self.greedy_pretrain_steps = greedy_pretrain_steps
        if greedy_pretrain_steps > 0:
            self._check_stackable()
            n, s = len(self.encoder.layers), greedy_pretrain_steps
            self.phases = tuple(Phase(f"layer{k + 1}", f"layer{k + 1}", start=k * s, stop=(k + 1) * s) for k in range(n))
            self.phases += (Phase("main", "main", start=n * s),)

    def _check_stackable(self):
        enc, dec = self.encoder, self.decoder
        if not (isinstance(enc, MLP) and isinstance(dec, MLP) and len(enc.layers) == len(dec.layers)):
            raise GenlabError("model.greedy_pretrain_steps needs MLP encoder and decoder with the same number of layers")
        n = len(enc.layers)
        for k in range(n):
            e, d = enc.layers[k][0], dec.layers[n - 1 - k][0]
            if (e.in_features, e.out_features) != (d.out_features, d.in_features):
                raise GenlabError(f"decoder layer {n - k} does not mirror encoder layer {k + 1}: greedy pretraining needs mirrored dims")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"main": list(self.parameters())}
        if self.greedy_pretrain_steps > 0:
            n = len(self.encoder.layers)
            for k in range(n):
                groups[f"layer{k + 1}"] = [*self.encoder.layers[k].parameters(), *self.decoder.layers[n - 1 - k].parameters()]
        return groups

    # -- capabilities: Reconstructs, DecodesLatents ---------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: Tensor, labels: Sequence[int] | None = None) -> Tensor:
        check_unconditional(self, labels)
        return output_to_image(self.decoder(z), self.recon_loss)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def latents(self, n: int, batch: dict | None = None) -> Tensor:
        """Codes of the batch's first n images (for interpolation and latent arithmetic)."""
        if batch is None:
            raise GenlabError(f"{type(self).__name__} has no prior over its codes: its latents come from images")
        return self.encode(batch["image"][:n])

    def corrupt(self, x: Tensor) -> Tensor:
        """The training input: the clean image (a denoising autoencoder corrupts it)."""
        return x

    # -- training --------------------------------------------------------------------------
    def training_step(self, batch, phase, ctx):
        x = batch["image"]
        if phase != "main":
            return self._layer_step(x, int(phase.removeprefix("layer")) - 1)
        code = self.encoder(self.corrupt(x))
        recon = reconstruction_error(self.decoder(code), x, self.recon_loss).mean()
        logs = {"recon": recon}
        loss = recon
        if self.sparsity:
            h = code.flatten(1)
            if self.sparsity["kind"] == "kl" and (h.min() < 0 or h.max() > 1):
                raise GenlabError("the KL sparsity penalty needs codes in (0, 1): set model.encoder.final_activation=sigmoid")
            penalty = sparsity_penalty(h, self.sparsity["kind"], self.sparsity.get("rho", 0.05))
            loss = loss + self.sparsity["weight"] * penalty
            logs["sparsity"] = penalty
        logs["loss"] = loss
        return loss, logs

    def _layer_step(self, x: Tensor, k: int):
        """Greedy pretraining of encoder layer k with its mirror decoder layer on the frozen
        codes of the layers below (the raw pixels for k = 0)."""
        n = len(self.encoder.layers)
        with torch.no_grad():
            h = x.flatten(1)
            for layer in self.encoder.layers[:k]:
                h = layer(h)
        out = self.decoder.layers[n - 1 - k](self.encoder.layers[k](self.corrupt(h) if k == 0 else h))
        kind = self.recon_loss if k == 0 else "mse"
        loss = reconstruction_error(out, h, kind).mean()
        return loss, {f"layer{k + 1}_recon": loss, "loss": loss}

    # -- evaluation and pictures --------------------------------------------------------
    @torch.no_grad()
    def evaluate_batch(self, batch):
        x = batch["image"]
        rec = self.reconstruct(x)
        return {"mse": per_image_mse(rec, x), "psnr": psnr(rec, x), "loss": reconstruction_error(self.decoder(self.encoder(x)), x, self.recon_loss)}

    @torch.no_grad()
    def visuals(self, batch):
        x = batch["image"][:16]
        return {"reconstruction": interleave_rows([x, self.reconstruct(x)], 8)}


class DenoisingAutoencoder(Autoencoder, SamplesPrior, MarkovChain):
    """An autoencoder trained to undo a corruption (clean target), which samples by a
    corrupt/denoise Markov chain from noise (Bengio et al. 2013).

    corruption: {kind: gaussian | mask | salt_pepper, level}."""

    claimed_modes = ("recon", "prior", "interp", "slerp", "arith", "chain")
    claimed_metrics = ("recon", "modes", "stacked_modes")

    def __init__(self, encoder: nn.Module, decoder: nn.Module, image_shape: tuple[int, int, int], corruption: dict,
                 chain_steps: int = 100, **kwargs):
        super().__init__(encoder, decoder, image_shape, **kwargs)
        self.corruption = dict(corruption)
        if self.corruption.get("kind") not in CORRUPTIONS:
            raise GenlabError(f"model.corruption.kind={self.corruption.get('kind')!r} is not one of {', '.join(CORRUPTIONS)}")
        self.chain_steps = chain_steps
        self.sample_shape = self.image_shape

    def corrupt(self, x: Tensor) -> Tensor:
        return corrupt(x, self.corruption["kind"], self.corruption["level"])

    @torch.no_grad()
    def evaluate_batch(self, batch):
        """Reconstruction of clean images, and (what it was trained for) of corrupted ones."""
        x = batch["image"]
        rec = self.reconstruct(x)
        out = self.decoder(self.encoder(self.corrupt(x)))
        den = output_to_image(out, self.recon_loss)
        return {"mse": per_image_mse(rec, x), "psnr": psnr(rec, x), "denoise_mse": per_image_mse(den, x), "denoise_psnr": psnr(den, x),
                "loss": reconstruction_error(out, x, self.recon_loss)}

    @torch.no_grad()
    def chain(self, x: Tensor, steps: int) -> list[Tensor]:
        """x_{t+1} = denoise(corrupt(x_t)); all states."""
        states = [x]
        for _ in range(steps):
            states.append(self.reconstruct(self.corrupt(states[-1])))
        return states

    @torch.no_grad()
    def sample(self, n: int, labels: Sequence[int] | None = None) -> Tensor:
        check_unconditional(self, labels)
        x0 = torch.rand(n, *self.image_shape, device=next(self.parameters()).device) * 2 - 1
        return self.chain(x0, self.chain_steps)[-1]

    @torch.no_grad()
    def visuals(self, batch):
        x = batch["image"][:16]
        noisy = self.corrupt(x)
        return {"reconstruction": interleave_rows([x, noisy.clamp(-1, 1), self.reconstruct(noisy)], 8)}
