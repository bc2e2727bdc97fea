"""`genlab eval ckpt=...`: a trained model's metrics on a data split, printed as a table and
written as JSON with the protocol (checkpoint, step, split, image count, seed, weights)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import genlab
from genlab import GenlabError, checkpoint
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.device import select_device
from genlab.metrics import METRICS


def chosen_metrics(requested: list[str], model, dataset) -> list[str]:
    supported = [name for name, (_, ok) in METRICS.items() if ok(model, dataset)]
    if list(requested) in (["auto"], []):
        return supported
    for name in requested:
        if name not in METRICS:
            raise GenlabError(f"metrics has {name!r}; choose from {', '.join(METRICS)} (or auto)")
        if name not in supported:
            raise GenlabError(f"metric {name!r} does not apply to {type(model).__name__}; it supports {', '.join(supported)}")
    return list(requested)


def run(cfg: DictConfig) -> dict:
    device = select_device(cfg.device)
    model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, device, cfg.use_ema)
    loader = eval_loader(train_cfg.data, cfg.split, cfg.batch_size, cfg.get("max_images"))
    names = chosen_metrics(list(cfg.metrics), model, loader.dataset)
    results, start = {}, time.perf_counter()
    for name in names:
        seed_everything(int(cfg.seed))  # each metric sees the same noise, whatever ran before
        results |= METRICS[name][0](model, loader, device, cfg)
    record = {
        "metrics": results,
        "protocol": {
            "checkpoint": str(path),
            "step": state["step"],
            "model": train_cfg.model._target_,
            "data": state.get("choices", {}).get("data"),
            "split": cfg.split,
            "images": len(loader.dataset),
            "seed": int(cfg.seed),
            "weights": weights,
            "device": str(device),
            "options": OmegaConf.to_container(cfg, resolve=True),
            "genlab_version": genlab.__version__,
            "wall_s": round(time.perf_counter() - start, 3),
        },
    }
    out = Path(cfg.out) if cfg.get("out") else path.with_name(path.stem + ".eval.json")
    _write_json(record, out)
    print(format_table(results, f"{path} (step {state['step']}, {weights} weights, {cfg.split} split, {len(loader.dataset)} images)"))
    print(f"wrote {out}")
    return record


def format_table(results: dict[str, float], title: str) -> str:
    width = max(len(k) for k in results)
    lines = [title, "-" * max(len(title), width + 16)]
    lines += [f"{k:<{width}}  {v:>14.6g}" for k, v in results.items()]
    return "\n".join(lines)


def _write_json(record: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, out)
