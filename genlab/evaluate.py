"""`genlab eval`: a trained model's metrics (reconstruction, likelihood bound, mode coverage,
FID, IS, KID, precision/recall), or image metrics between any folder of generated images
and a folder, a data set split or saved statistics; a table on stdout and JSON with the
full protocol (counts, split, seed, weights and their sha256, resize mode, genlab version)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import genlab
from genlab import GenlabError, checkpoint
from genlab.atomic import atomic_write_text
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.device import select_device
from genlab.metrics import METRICS
from genlab.metrics.image_quality import IMAGE_METRICS, ImageQuality, data_key, folder_source, loader_source, model_source, save_stats


def chosen_metrics(requested: list[str], model, dataset) -> tuple[list[str], list[str]]:
    """(model metrics, image metrics) to compute. auto: every model metric that applies, or
    FID for a model that samples images and has no other metric."""
    supported = [name for name, (_, ok) in METRICS.items() if model is not None and ok(model, dataset)]
    samples_images = model is not None and (hasattr(model, "translate") or model.can_sample and len(getattr(model, "image_shape", (0, 0, 0))) == 3)
    if list(requested) in (["auto"], []):
        return (supported, []) if supported or not samples_images else ([], ["fid"])
    for name in requested:
        if name not in METRICS and name not in IMAGE_METRICS:
            raise GenlabError(f"metrics has {name!r}; choose from {', '.join([*METRICS, *IMAGE_METRICS])} (or auto)")
        if name in METRICS and name not in supported:
            raise GenlabError(f"metric {name!r} does not apply here; the model supports {', '.join(supported) or 'no model metric'}")
        if name in IMAGE_METRICS and model is not None and not (model.can_sample or hasattr(model, "translate")):
            raise GenlabError(f"metric {name!r} needs samples, and {type(model).__name__} has no prior to sample from")
    return [m for m in requested if m in METRICS], [m for m in requested if m in IMAGE_METRICS]


def run(cfg: DictConfig) -> dict:
    device = select_device(cfg.device)
    model, state, path, weights = None, None, None, None
    if cfg.get("ckpt"):
        model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, device, cfg.use_ema)
        data_cfg = cfg.data if cfg.get("data") else train_cfg.data
    elif cfg.get("fake"):
        data_cfg = cfg.get("data")
    else:
        raise GenlabError("give ckpt=<run dir or checkpoint>, or fake=<folder of generated images>")
    loader = eval_loader(data_cfg, cfg.split, cfg.batch_size, cfg.get("max_images")) if data_cfg else None
    model_metrics, image_metrics = chosen_metrics(list(cfg.metrics), model, loader.dataset if loader else None)
    results, start = {}, time.perf_counter()
    for name in model_metrics:
        seed_everything(int(cfg.seed))  # each metric sees the same noise, whatever ran before
        results |= METRICS[name][0](model, loader, device, cfg)
    protocol = {"split": cfg.split, "seed": int(cfg.seed), "device": str(device), "genlab_version": genlab.__version__}
    if image_metrics:
        seed_everything(int(cfg.seed))
        inc = cfg.inception
        iq = ImageQuality(inc.weights, inc.mode, device, int(inc.batch_size), bool(inc.download), runtime=inc.get("runtime", "auto"),
                          precision=str(inc.get("precision", "32")), workers=inc.get("workers"))
        options = (int(cfg.is_splits), int(cfg.kid.subsets), int(cfg.kid.subset_size), int(cfg.pr_k))
        if model is not None and hasattr(model, "translate") and not cfg.get("fake"):
            for direction, (fake, real) in _translation_sources(cfg, model, data_cfg, device).items():
                scores = iq.compare(fake, real, image_metrics, *options)
                results |= {f"{k}_{direction}": v for k, v in scores.items()}
            protocol |= iq.protocol | {"generated": "translated test images per direction", "reference": "the other domain's test images"}
        else:
            fake = _fake_source(cfg, model, data_cfg)
            real = _real_source(cfg, data_cfg)
            results |= iq.compare(fake, real, image_metrics, *options)
            protocol |= iq.protocol | {"generated": fake.name, "reference": real if isinstance(real, str) else real.name}
        if cfg.get("save_real_stats") and not isinstance(real, str):
            mu, sigma, n = iq.reference_stats(real)
            save_stats(Path(cfg.save_real_stats), mu, sigma, n)
    if model is not None:
        protocol |= {"checkpoint": str(path), "step": state["step"], "model": type(model).__name__, "weights": weights,
                     "data": state.get("choices", {}).get("data"), "images": len(loader.dataset) if loader else None}
    protocol |= {"options": OmegaConf.to_container(cfg, resolve=True), "wall_s": round(time.perf_counter() - start, 3)}
    record = {"metrics": results, "protocol": protocol}
    out = Path(cfg.out) if cfg.get("out") else (path.with_name(path.stem + ".eval.json") if path else Path("genlab_eval.json"))
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    title = f"{path} (step {state['step']}, {weights} weights, {cfg.split} split)" if path else f"{cfg.fake} against {protocol.get('reference')}"
    print(format_table(results, title))
    print(f"wrote {out}")
    return record


def _fake_source(cfg, model, data_cfg):
    n, bs = int(cfg.n_samples), int(cfg.inception.batch_size)
    fake = cfg.get("fake")
    if fake and str(fake).startswith("split:"):  # a data set split as the "generated" side, e.g. train vs test
        if not data_cfg:
            raise GenlabError("fake=split:<name> needs a data set: add data=<name>")
        split = str(fake).removeprefix("split:")
        return loader_source(eval_loader(data_cfg, split, bs), n, f"{split} split", data_key(data_cfg, split))
    if fake:
        return folder_source(fake, n, bs, cfg.inception.mode, cfg.inception.get("workers"))
    return model_source(model, n, bs, list(cfg.labels) if cfg.get("labels") else None)


def _translation_sources(cfg, model, data_cfg, device) -> dict:
    """Per direction: (the model's translations of one domain's test images, the other domain's)."""
    loader = eval_loader(data_cfg, cfg.split, int(cfg.inception.batch_size))
    n = cfg.get("n_real")
    directions = ["AtoB", "BtoA"] if hasattr(model, "F") else ["AtoB"]
    out = {}
    for d in directions:
        src, dst = ("A", "B") if d == "AtoB" else ("B", "A")
        fake = loader_source(loader, n, f"{d} translations", {}, src, transform=lambda x, d=d: model.translate(x.to(device), d).cpu())
        out[d] = (fake, loader_source(loader, n, f"{cfg.split} {dst}", data_key(data_cfg, cfg.split), dst))
    return out


def _real_source(cfg, data_cfg):
    real = cfg.get("real")
    if real and str(real).endswith(".npz"):
        return str(real)
    if real:
        return folder_source(real, cfg.get("n_real"), int(cfg.inception.batch_size), cfg.inception.mode, cfg.inception.get("workers"))
    if not data_cfg:
        raise GenlabError("no reference images: give real=<folder or .npz>, or data=<data set>")
    loader = eval_loader(data_cfg, cfg.split, int(cfg.inception.batch_size))
    return loader_source(loader, cfg.get("n_real"), f"{cfg.split} split", data_key(data_cfg, cfg.split))


def format_table(results: dict[str, float], title: str) -> str:
    width = max(len(k) for k in results)
    lines = [title, "-" * max(len(title), width + 16)]
    lines += [f"{k:<{width}}  {v:>14.6g}" for k, v in results.items()]
    return "\n".join(lines)
