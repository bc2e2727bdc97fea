"""The metrics of a model on a split of its data: the per-image metrics of its
evaluate_batch (recon, translation; the trainer's validation computes them for every model),
the VAE's likelihood bound and mode coverage on the 2-D mixtures."""

from __future__ import annotations

import math

import torch

from genlab.device import to_device
from genlab.metrics.modes import mode_coverage
from genlab.metrics.registry import register_metric
from genlab.models.base import GaussianPosterior, Reconstructs, SamplesPrior, Translates


@torch.no_grad()
def split_means(model, loader, device: torch.device, max_batches: int | None = None) -> dict[str, float]:
    """Mean over the images of a split of each per-image metric of `model.evaluate_batch`."""
    sums: dict[str, float] = {}
    n = 0
    for i, batch in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        batch = to_device(batch, device)
        for k, v in model.evaluate_batch(batch).items():
            sums[k] = sums.get(k, 0.0) + v.double().sum().item()
        n += len(batch["index"])
    return {k: v / n for k, v in sums.items()}


# image-to-image models: paired L1/PSNR/SSIM (pix2pix) or cycle errors (CycleGAN) on the split
@register_metric("translation", keys={"l1": "min", "mse": "min", "psnr": "max", "ssim": "max", "cycle_*": "min"}, needs=(Translates,))
@register_metric("recon", keys={"mse": "min", "psnr": "max", "loss": "min", "denoise_mse": "min", "denoise_psnr": "max", "elbo": "max",
                                "recon_nll": "min", "kl": "min"}, needs=(Reconstructs,))
def reconstruction_metrics(model, loader, device, cfg) -> dict[str, float]:
    """Every per-image metric of model.evaluate_batch over the split: reconstruction MSE and
    PSNR for every autoencoder, plus the ELBO and its terms for the VAE."""
    return split_means(model, loader, device)


@register_metric("nll", keys={"log_likelihood_iw*": "max", "bits_per_dim_iw*": "min"}, needs=(GaussianPosterior,))
@torch.no_grad()
def likelihood_metrics(model, loader, device, cfg) -> dict[str, float]:
    """The importance-sampled log-likelihood bound of a VAE, in nats per image and bits per dim."""
    k = int(cfg.get("iw_samples", 1000))
    total, n, dims = 0.0, 0, None
    for batch in loader:
        x = to_device(batch, device)["image"]
        total += model.log_likelihood_bound(x, k=k).double().sum().item()
        n, dims = n + x.shape[0], x[0].numel()
    ll = total / n
    return {f"log_likelihood_iw{k}": ll, f"bits_per_dim_iw{k}": -ll / (dims * math.log(2))}


def base_dataset(dataset):
    """The data set under Subset and loading wrappers."""
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return dataset


@register_metric("modes", keys={"modes_covered": "max", "high_quality": "max", "modes_total": None}, needs=(SamplesPrior,),
                 data_check=lambda data: hasattr(base_dataset(data), "centers"), monitor_rank=1)
@torch.no_grad()
def mode_metrics(model, loader, device, cfg) -> dict[str, float]:
    """Modes covered and the share of high-quality samples on a 2-D mixture benchmark."""
    data = base_dataset(loader.dataset)
    n = int(cfg.get("mode_samples") or 2500)
    samples = torch.cat([model.sample(min(1000, n - i)).cpu() for i in range(0, n, 1000)])
    return mode_coverage(samples, data.centers, data.std)
