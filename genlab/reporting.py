"""Where numbers and pictures go during training: running means of named scalars, flushed
to metrics.jsonl and TensorBoard (scalars, image grids, hparams)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from genlab.images import grid, save_grid


class Reporter:
    def __init__(self, run_dir: Path, tensorboard: bool = True, write: bool = True):
        """write=False (ranks other than 0) keeps the running means but writes nothing."""
        self.run_dir, self.write = run_dir, write
        if write:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = run_dir / "metrics.jsonl"
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self.tb = None
        if tensorboard and write:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))

    def accumulate(self, name: str, value: Tensor) -> None:
        """Add one value to the running mean of `name` (no device sync until `means`)."""
        value = value.detach().float()
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        """The running means since the last call, then reset."""
        out = {k: (v / self._counts[k]).item() for k, v in self._sums.items()}
        self._sums, self._counts = {}, {}
        return out

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.write:
            return
        with open(self.jsonl, "a") as f:
            f.write(json.dumps({"step": step, **{k: _finite(v) for k, v in values.items()}}) + "\n")
        if self.tb:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def images(self, step: int, visuals: dict[str, Tensor], folder: Path) -> None:
        for name, x in visuals.items():
            save_grid(x, folder / f"{name}_{step:07d}.png")
            if self.tb:
                self.tb.add_image(name, grid(x), step)

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        if self.tb:
            clean = {k: v for k, v in hparams.items() if isinstance(v, (int, float, str, bool))}
            self.tb.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self) -> None:
        if self.tb:
            self.tb.close()


def _finite(v: float):
    return v if math.isfinite(v) else str(v)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become strings (for TensorBoard hparams)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        else:
            out[key] = str(v) if isinstance(v, (list, tuple)) or v is None else v
    return out
