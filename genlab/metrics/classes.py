"""Metrics on the classes of generated images, through the domain classifiers
(genlab/metrics/domain.py): stacked_modes (modes of a stacked set covered, and the KL of
the mode histogram to the uniform), class_accuracy and ifid (intra-class FID) of conditional
models. Each returns its numbers, per-class tables under "per_class" and its protocol
(the classifier's sha256 and accuracy, sample counts) under "protocol"."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.utils.data import Subset

from genlab.images import to_uint8
from genlab.metrics.domain import CLASSIFIER_SETS, domain_net
from genlab.metrics.model_metrics import base_dataset
from genlab.metrics.registry import register_metric
from genlab.models.base import Conditional, SamplesPrior

STACKED_SAMPLES = 26000  # the protocol of Metz et al. 2017, VEEGAN and PacGAN
BATCH = 500


def domain_of(dataset) -> str | None:
    """The labelled set a data set is (digits, fashion_mnist, ...), None for any other."""
    name = getattr(base_dataset(dataset), "domain", None)
    return name if name in CLASSIFIER_SETS else None


def labelled(dataset) -> bool:
    return domain_of(dataset) is not None


def is_stacked(dataset) -> bool:
    return getattr(base_dataset(dataset), "stacked_of", None) is not None


def split_labels(dataset) -> Tensor:
    """The labels of a split's images, in loader order, without loading the images."""
    if isinstance(dataset, Subset):
        return split_labels(dataset.dataset)[torch.as_tensor(list(dataset.indices))]
    if hasattr(dataset, "labels"):
        return torch.as_tensor(dataset.labels)
    return split_labels(dataset.dataset)


def quantised(x: Tensor) -> Tensor:
    """Generated images as image files hold them: uint8, back in [-1, 1]."""
    return to_uint8(x).float() / 127.5 - 1


def mode_statistics(modes: Tensor, n_modes: int = 1000) -> dict[str, float]:
    """Modes covered (of n_modes) and KL(histogram || uniform) = sum_k p_k log(p_k n_modes), in nats."""
    p = torch.bincount(modes.flatten().long(), minlength=n_modes).double() / modes.numel()
    nz = p[p > 0]
    return {"stacked_modes": float((p > 0).sum()), "stacked_kl": float((nz * (nz * n_modes).log()).sum())}


def stacked_modes(images, classify, n_modes: int = 1000) -> dict[str, float]:
    """images: an iterable of (B, 3, H, W) batches in [-1, 1]; classify(x (B, 1, H, W)) -> classes.
    Each channel's class is a digit of the sample's mode, 100 r + 10 g + b."""
    modes = []
    for x in images:
        r, g, b = (classify(x[:, c : c + 1]).cpu() for c in range(3))
        modes.append(100 * r + 10 * g + b)
    return mode_statistics(torch.cat(modes), n_modes)


CONDITIONAL = f"a conditional model (model=cgan) of a labelled set with a domain classifier ({', '.join(CLASSIFIER_SETS)})"


@register_metric("stacked_modes", keys={"stacked_modes": "max", "stacked_kl": "min"}, needs=(SamplesPrior,), data_check=is_stacked, auto=False,
                 monitor_rank=2, requires="a model that samples images of a stacked data set (data=stacked_fashion_mnist, stacked_digits, stacked_mnist)")
@torch.no_grad()
def stacked_mode_metrics(model, loader, device, cfg) -> dict:
    """stacked_modes of stacked_samples (26,000) samples: each channel classified by the base set's classifier."""
    n = int(cfg.get("stacked_samples") or STACKED_SAMPLES)
    base = base_dataset(loader.dataset)
    net = domain_net(base.stacked_of, model.sample_shape[-1], device)
    batches = (quantised(model.sample(min(BATCH, n - i))) for i in range(0, n, BATCH))
    out = stacked_modes(batches, net.predict, base.modes)
    return out | {"protocol": {"stacked_modes": {"samples": n, "modes": base.modes, "channel_classifier": base.stacked_of, **net.info}}}


def _per_class_counts(model, loader, cfg) -> list[int]:
    """Samples per class: class_samples, or (null) as many as the split has images of the class."""
    k = int(model.num_classes)
    if cfg.get("class_samples"):
        return [int(cfg.class_samples)] * k
    return torch.bincount(split_labels(loader.dataset), minlength=k)[:k].tolist()


@register_metric("class_accuracy", keys={"class_accuracy": "max"}, needs=(SamplesPrior, Conditional), data_check=labelled,
                 auto=False, monitor_rank=4, requires=CONDITIONAL)
@torch.no_grad()
def class_accuracy_metrics(model, loader, device, cfg) -> dict:
    """The domain classifier's accuracy on samples drawn for each label: overall and per class."""
    net = domain_net(domain_of(loader.dataset), model.sample_shape[-1], device)
    counts, correct = _per_class_counts(model, loader, cfg), []
    for c, n in enumerate(counts):
        hits = 0
        for i in range(0, n, BATCH):
            hits += int((net.predict(quantised(model.sample(min(BATCH, n - i), labels=[c]))).cpu() == c).sum())
        correct.append(hits)
    per_class = [h / n if n else math.nan for h, n in zip(correct, counts)]
    return {"class_accuracy": sum(correct) / max(sum(counts), 1), "per_class": {"class_accuracy": per_class},
            "protocol": {"class_accuracy": {"samples_per_class": counts, **net.info}}}


@register_metric("ifid", keys={"ifid": "min"}, needs=(SamplesPrior, Conditional), data_check=labelled,
                 auto=False, monitor_rank=3, requires=CONDITIONAL)
@torch.no_grad()
def ifid_metrics(model, loader, device, cfg) -> dict:
    """Intra-class FID (Miyato and Koyama 2018; StudioGAN's IFID): for each class, the FID of
    its samples against the split's images of that class, on `features` (inception, or a
    data set's classifier); ifid is the mean over classes."""
    from genlab.metrics.image_quality import Source, model_source

    iq = image_quality_for(cfg, device, model.sample_shape[-1], progress=False)
    labels, counts = split_labels(loader.dataset), _per_class_counts(model, loader, cfg)

    @functools.cache
    def real_images() -> dict[int, Tensor]:
        out: dict[int, list] = {}
        for batch in loader:
            x = to_uint8(batch["image"])
            for c in batch["label"].unique().tolist():
                out.setdefault(c, []).append(x[batch["label"] == c])
        return {c: torch.cat(v) for c, v in out.items()}

    key = {"ifid_of": domain_of(loader.dataset), "split": getattr(base_dataset(loader.dataset), "split", None), "images": len(labels),
           "shape": list(model.sample_shape)}
    fids = []
    for c, n in enumerate(counts):
        real_n = int((labels == c).sum())
        real = Source(f"class {c} images", real_n, lambda c=c: iter(real_images()[c].split(BATCH)), {**key, "label": c, "count": real_n})
        fids.append(iq.compare(model_source(model, n, BATCH, labels=[c]), real, ["fid"])["fid"])
    return {"ifid": sum(fids) / len(fids), "per_class": {"ifid": fids},
            "protocol": {"ifid": {"samples_per_class": counts, "real_per_class": torch.bincount(labels, minlength=len(counts)).tolist(), **iq.protocol}}}


def image_quality_for(cfg, device, image_size: int, progress: bool = True):
    """ImageQuality on cfg.features: the Inception network (inception.*), or a data set's
    classifier; precision/recall on cfg.pr_features (vgg16.*) where the features are Inception's.
    cfg: genlab eval's config or the trainer's (both have these keys)."""
    from genlab.metrics.domain import extractor
    from genlab.metrics.image_quality import ImageQuality

    inc, vgg = cfg.inception, cfg.get("vgg16") or {}
    return ImageQuality(inc.weights, inc.resize, device, int(inc.batch_size), bool(inc.download), progress=progress, runtime=inc.get("runtime", "auto"),
                        precision=str(inc.get("precision", "32")), workers=inc.get("workers"), pr_features=str(cfg.get("pr_features", "vgg16")),
                        pr_weights=vgg.get("weights"), pr_download=bool(vgg.get("download", True)),
                        extractor=extractor(cfg.get("features") or "inception", image_size, device))
