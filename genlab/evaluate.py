"""`genlab eval`: a trained model's metrics (reconstruction, likelihood bound, mode coverage,
FID, IS, KID, precision/recall), or image metrics between any folder of generated images
and a folder, a data set split or saved statistics; a table on stdout and JSON with the
full protocol (counts, split, seed, weights and their sha256, resize mode, genlab version)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genlab import checkpoint
from genlab.version import __version__
from genlab.errors import GenlabError
from genlab.atomic import atomic_write_text
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.device import select_device
from genlab.metrics import registry
from genlab.metrics.image_quality import ImageQuality, Source, data_key, folder_source, loader_source, model_source, save_stats
from genlab.models.base import SamplesPrior, Translates


def run(cfg: DictConfig) -> dict:
    """Evaluate ckpt= (the model's metrics) or fake= (image metrics of any images); print
    the table and write the JSON record (next to the checkpoint, or out=)."""
    device = select_device(cfg.device)
    start = time.perf_counter()
    if cfg.get("ckpt") and cfg.get("fake"):
        raise GenlabError("give ckpt= (a model's metrics) or fake= (images made anywhere), not both")
    tables: dict = {}
    if cfg.get("ckpt"):
        results, protocol, path = checkpoint_metrics(cfg, device, tables)
        default_out = path.with_name(path.stem + ".eval.json")
        title = f"{path} (step {protocol['step']}, {protocol['weights']} weights in {protocol['test_mode']} mode, {cfg.split} split)"
    elif cfg.get("fake"):
        results, protocol = image_metrics(cfg, device)
        default_out = Path("genlab_eval.json")
        title = f"{cfg.fake} against {protocol['reference']}"
    else:
        raise GenlabError("give ckpt=<run dir or checkpoint>, or fake=<folder of generated images>")
    protocol |= {"seed": int(cfg.seed), "device": str(device), "genlab_version": __version__,
                 "options": OmegaConf.to_container(cfg, resolve=True), "wall_s": round(time.perf_counter() - start, 3)}
    record = {"metrics": results, **({"per_class": tables} if tables else {}), "protocol": protocol}
    out = Path(cfg.out) if cfg.get("out") else default_out
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(format_table(results, title))
    if tables:
        print(format_per_class(tables))
    print(f"wrote {out}")
    return record


def checkpoint_metrics(cfg: DictConfig, device, tables: dict | None = None) -> tuple[dict, dict, Path]:
    """The metrics of a trained model: its own (recon, translation, nll, modes, stacked_modes,
    class_accuracy, ifid) on a split of its data (or data=), and image metrics of its samples
    or, for image-to-image models, of its translations in each direction against the other
    domain. Per-class tables go into `tables`."""
    model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, device, cfg.use_ema)
    data_cfg = cfg.data if cfg.get("data") else train_cfg.data
    loader = eval_loader(data_cfg, cfg.split, cfg.batch_size, cfg.get("max_images"))
    model_names, image_names = chosen_metrics(list(cfg.metrics), model, loader.dataset)
    results, metric_protocols = {}, {}
    for name in model_names:
        seed_everything(int(cfg.seed))  # each metric sees the same noise, whatever ran before
        out = registry.metric(name).compute(model, loader, device, cfg)
        (tables if tables is not None else {}).update(out.get("per_class", {}))
        metric_protocols |= out.get("protocol", {})
        results |= registry.scalars(out)
    protocol = {"split": cfg.split, "checkpoint": str(path), "step": state["step"], "model": type(model).__name__, "weights": weights, "test_mode": model.test_mode,
                "data": state.get("choices", {}).get("data"), "images": len(loader.dataset), **metric_protocols}
    if image_names:
        seed_everything(int(cfg.seed))
        iq = _image_quality(cfg, device, int(data_cfg.get("image_size") or 32))
        pairs = _translation_sources(cfg, model, data_cfg, device) if isinstance(model, Translates) else {
            "": (model_source(model, int(cfg.n_samples), int(cfg.inception.batch_size), list(cfg.labels) if cfg.get("labels") else None,
                              int(cfg.seed)),
                 _real_source(cfg, data_cfg, iq))}
        for direction, (fake, real) in pairs.items():
            suffix = f"_{direction}" if direction else ""
            results |= {f"{k}{suffix}": v for k, v in iq.compare(fake, real, image_names, *_image_options(cfg)).items()}
            _save_real_stats(cfg, iq, real, direction)
        protocol |= iq.protocol
        protocol |= ({"generated": "translated test images per direction", "reference": "the other domain's test images"}
                     if isinstance(model, Translates) else {"generated": f"{cfg.n_samples} samples", "reference": _name(pairs[""][1])})
    return results, protocol, path


def image_metrics(cfg: DictConfig, device) -> tuple[dict, dict]:
    """Image metrics (FID by default) of fake= (a folder, or split:<name> of data=) against
    real= (a folder or pytorch-fid .npz statistics) or a data set split."""
    data_cfg = cfg.get("data")
    requested = [m for m in cfg.metrics if m != "auto"] or ["fid"]
    for name in requested:
        if name not in registry.image_metrics():
            hint = " (a model metric: give ckpt=)" if name in registry.model_metrics() else ""
            raise GenlabError(f"metrics has {name!r}{hint}; images alone give {', '.join(registry.image_metrics())}")
    seed_everything(int(cfg.seed))
    iq = _image_quality(cfg, device, int(data_cfg.get("image_size") or 32) if data_cfg else 32)
    fake, real = _fake_source(cfg, data_cfg, iq), _real_source(cfg, data_cfg, iq)
    results = iq.compare(fake, real, requested, *_image_options(cfg))
    _save_real_stats(cfg, iq, real, "")
    protocol = {"split": cfg.split if data_cfg else None, **iq.protocol, "generated": fake.name, "reference": _name(real)}
    return results, protocol


def chosen_metrics(requested: list[str], model, dataset) -> tuple[list[str], list[str]]:
    """(model metrics, image metrics) to compute for a model. auto: every model metric that
    applies, or FID for a model that makes images and has no other metric."""
    supported = [name for name, m in registry.model_metrics().items() if registry.applies(m, model, dataset)]
    makes_images = isinstance(model, Translates) or isinstance(model, SamplesPrior) and model.samples_images
    if list(requested) in (["auto"], []):
        if [m for m in supported if registry.metric(m).auto]:
            return [m for m in supported if registry.metric(m).auto], []
        if makes_images:
            return [], ["fid"]
        raise GenlabError(f"no metric applies to {type(model).__name__} here; give metrics=[...] from {', '.join(registry.model_metrics())}")
    for name in requested:
        declared = registry.metric(name, "metrics")
        if not declared.images and name not in supported:
            raise GenlabError(f"metric {name!r}{registry.refusal(declared, model)}; the model supports {', '.join(supported) or 'no model metric'}")
        if declared.images and not makes_images:
            raise GenlabError(f"metric {name!r} needs generated images, and {type(model).__name__} neither samples images nor translates")
    return [m for m in requested if m in registry.model_metrics()], [m for m in requested if m in registry.image_metrics()]


def _image_quality(cfg: DictConfig, device, image_size: int) -> ImageQuality:
    """The Inception network, or (features=<data set>) that set's classifier at image_size."""
    from genlab.metrics.classes import image_quality_for

    return image_quality_for(cfg, device, image_size)


def _image_options(cfg: DictConfig) -> tuple[int, int, int, int]:
    return int(cfg.is_splits), int(cfg.kid.subsets), int(cfg.kid.subset_size), int(cfg.pr_k)


def _save_real_stats(cfg: DictConfig, iq: ImageQuality, real: Source | str, direction: str) -> None:
    """save_real_stats=<file.npz>: the reference statistics, one file per translation direction
    (<file>_AtoB.npz, <file>_BtoA.npz)."""
    if not cfg.get("save_real_stats"):
        return
    if isinstance(real, str):
        raise GenlabError("save_real_stats needs reference images; real= is already a statistics file")
    path = Path(cfg.save_real_stats)
    if direction:
        path = path.with_name(f"{path.stem}_{direction}{path.suffix or '.npz'}")
    mu, sigma, n = iq.reference_stats(real)
    save_stats(path, mu, sigma, n)
    print(f"wrote {path}")


def _name(real: Source | str) -> str:
    return real if isinstance(real, str) else real.name


def _fake_source(cfg: DictConfig, data_cfg, iq: ImageQuality) -> Source:
    n, bs = int(cfg.n_samples), int(cfg.inception.batch_size)
    fake = str(cfg.fake)
    if fake.startswith("split:"):  # a data set split as the "generated" side, e.g. train vs test
        if not data_cfg:
            raise GenlabError("fake=split:<name> needs a data set: add data=<name>")
        split = fake.removeprefix("split:")
        return loader_source(eval_loader(data_cfg, split, bs), n, f"{split} split", data_key(data_cfg, split))
    return folder_source(fake, n, bs, iq.mode, cfg.inception.get("workers"))


def _translation_sources(cfg: DictConfig, model: Translates, data_cfg, device) -> dict[str, tuple[Source, Source]]:
    """Per direction: (the model's translations of one domain's test images, the other domain's)."""
    loader = eval_loader(data_cfg, cfg.split, int(cfg.inception.batch_size))
    n = cfg.get("n_real")
    out = {}
    for d in model.directions:
        src, dst = ("A", "B") if d == "AtoB" else ("B", "A")
        fake = loader_source(loader, n, f"{d} translations", {}, src, transform=lambda x, d=d: model.translate(x.to(device), d).cpu())
        out[d] = (fake, loader_source(loader, n, f"{cfg.split} {dst}", data_key(data_cfg, cfg.split), dst))
    return out


def _real_source(cfg: DictConfig, data_cfg, iq: ImageQuality) -> Source | str:
    real = cfg.get("real")
    if real and str(real).endswith(".npz"):
        return str(real)
    if real:
        return folder_source(real, cfg.get("n_real"), int(cfg.inception.batch_size), iq.mode, cfg.inception.get("workers"))
    if not data_cfg:
        raise GenlabError("no reference images: give real=<folder or .npz>, or data=<data set>")
    loader = eval_loader(data_cfg, cfg.split, int(cfg.inception.batch_size))
    return loader_source(loader, cfg.get("n_real"), f"{cfg.split} split", data_key(data_cfg, cfg.split))


def format_per_class(tables: dict[str, list[float]]) -> str:
    """Per-class tables (class_accuracy, ifid) side by side, one row per class."""
    names = list(tables)
    rows = max(len(v) for v in tables.values())
    lines = ["per class", f"{'class':>5}  " + "  ".join(f"{n:>14}" for n in names)]
    lines += [f"{c:>5}  " + "  ".join(f"{tables[n][c]:>14.6g}" if c < len(tables[n]) else " " * 14 for n in names) for c in range(rows)]
    return "\n".join(lines)


def format_table(results: dict[str, float], title: str) -> str:
    width = max(len(k) for k in results)
    lines = [title, "-" * max(len(title), width + 16)]
    lines += [f"{k:<{width}}  {v:>14.6g}" for k, v in results.items()]
    return "\n".join(lines)
