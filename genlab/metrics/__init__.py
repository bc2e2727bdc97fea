"""Evaluation metrics. Image-quality metrics (FID, IS, ...) plug in beside the reconstruction ones."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from genlab.device import to_device
from genlab.models.base import Conditional, GaussianPosterior, Reconstructs, SamplesPrior, Translates


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


def reconstruction_metrics(model, loader, device, cfg) -> dict[str, float]:
    """Every per-image metric of model.evaluate_batch over the split: reconstruction MSE and
    PSNR for every autoencoder, plus the ELBO and its terms for the VAE."""
    return split_means(model, loader, device)


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


@torch.no_grad()
def mode_metrics(model, loader, device, cfg) -> dict[str, float]:
    """Modes covered and the share of high-quality samples on a 2-D mixture benchmark."""
    from genlab.metrics.modes import mode_coverage

    data = _base(loader.dataset)
    n = int(cfg.get("mode_samples") or 2500)
    samples = torch.cat([model.sample(min(1000, n - i)).cpu() for i in range(0, n, 1000)])
    return mode_coverage(samples, data.centers, data.std)


def _base(dataset):
    """The data set under Subset and loading wrappers."""
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return dataset


@dataclass(frozen=True)
class Metric:
    """A model metric: compute(model, loader, device, cfg) -> {name: value} (plus, optionally,
    "per_class": {column: [value per class]} and "protocol": {...}), for models with every
    capability in `needs` and data sets that pass `data_check`; `requires` says which in
    words (for the one-line refusal); auto=False: computed only when asked for by name."""

    compute: Callable
    needs: tuple[type, ...]
    data_check: Callable | None = None
    requires: str = ""
    auto: bool = True


def scalars(result: dict) -> dict[str, float]:
    """A metric's numbers, without its per-class tables and protocol."""
    return {k: v for k, v in result.items() if k not in ("per_class", "protocol")}


def _lazy(name: str) -> Callable:
    def compute(*args):
        from genlab.metrics import classes

        return getattr(classes, name)(*args)

    return compute


def _labelled(data) -> bool:
    from genlab.metrics.classes import domain_of

    return domain_of(data) is not None


def _stacked(data) -> bool:
    from genlab.metrics.classes import is_stacked

    return is_stacked(data)


def applies(metric: Metric, model, dataset) -> bool:
    return all(isinstance(model, c) for c in metric.needs) and (metric.data_check is None or metric.data_check(dataset))


METRICS = {
    "recon": Metric(reconstruction_metrics, (Reconstructs,)),
    # image-to-image models: paired L1/PSNR/SSIM (pix2pix) or cycle errors (CycleGAN) on the split
    "translation": Metric(reconstruction_metrics, (Translates,)),
    "nll": Metric(likelihood_metrics, (GaussianPosterior,)),
    "modes": Metric(mode_metrics, (SamplesPrior,), lambda data: hasattr(_base(data), "centers")),
    # through the domain classifiers (genlab/metrics/domain.py, trained on first use)
    "stacked_modes": Metric(_lazy("stacked_mode_metrics"), (SamplesPrior,), _stacked,
                            "a model that samples images of a stacked data set (data=stacked_fashion_mnist, stacked_digits, stacked_mnist)", auto=False),
    "class_accuracy": Metric(_lazy("class_accuracy_metrics"), (SamplesPrior, Conditional), _labelled,
                             "a conditional model (model=cgan) of a labelled set with a domain classifier (digits, fashion_mnist, mnist, cifar10)", auto=False),
    "ifid": Metric(_lazy("ifid_metrics"), (SamplesPrior, Conditional), _labelled,
                   "a conditional model (model=cgan) of a labelled set with a domain classifier (digits, fashion_mnist, mnist, cifar10)", auto=False),
}
