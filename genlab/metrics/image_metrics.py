"""The image metrics: numbers from the features of generated and reference images that
ImageQuality.compare (genlab/metrics/image_quality.py) gathers in one pass over each side.
The math is in genlab/metrics/scores.py, imported when a metric is computed (scipy with it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.metrics.registry import register_metric


@dataclass
class Compared:
    """What an image metric scores: the generated images' features (image_quality.Features),
    the reference statistics (mu, sigma) and, for the metrics that need them, the reference
    images' features; and compare's options."""

    fake: object
    real: object | None
    mu: object
    sigma: object
    splits: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3


@register_metric("fid", keys={"fid": "min"}, images=True, monitor_rank=0)
def fid(c: Compared) -> dict[str, float]:
    """The Frechet distance between the Gaussians of the two sides' features."""
    from genlab.metrics.scores import frechet_distance

    return {"fid": frechet_distance(c.fake.stats.mu, c.fake.stats.sigma, c.mu, c.sigma)}


@register_metric("is", keys={"is_mean": "max", "is_std": None}, images=True)
def inception_score(c: Compared) -> dict[str, float]:
    """The Inception score of the generated images over `splits` splits."""
    from genlab.metrics.scores import inception_score as score

    mean, std = score(torch.cat(c.fake.logits), c.splits)
    return {"is_mean": mean, "is_std": std}


@register_metric("kid", keys={"kid_mean": "min", "kid_std": None}, images=True)
def kid(c: Compared) -> dict[str, float]:
    """The unbiased kernel inception distance, over kid_subsets subsets of kid_subset_size."""
    from genlab.metrics.scores import kernel_inception_distance

    mean, std = kernel_inception_distance(torch.cat(c.real.pool), torch.cat(c.fake.pool), c.kid_subsets, c.kid_subset_size)
    return {"kid_mean": mean, "kid_std": std}


@register_metric("pr", keys={"precision": "max", "recall": "max"}, images=True)
def precision_recall(c: Compared) -> dict[str, float]:
    """Precision and recall (k = pr_k) on the precision/recall network's features where it has
    its own (VGG16), else on the pool features."""
    from genlab.metrics.scores import precision_recall as pr

    real, fake = (c.real.pr, c.fake.pr) if c.fake.pr else (c.real.pool, c.fake.pool)
    precision, recall = pr(torch.cat(real), torch.cat(fake), c.pr_k)
    return {"precision": precision, "recall": recall}
