"""What the trainer measures while it trains, on rank 0: the grids of a fixed test batch, the
test split's metrics (trainer.eval_metrics: the model's own where they apply, image metrics
such as FID of its samples) and the step whose weights are the best by the monitor (best.pt).
`genlab eval` (genlab/evaluate.py) measures a finished checkpoint; this module imports the
image metrics (and scipy) only when trainer.eval_metrics asks for one."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from genlab.errors import GenlabError
from genlab.device import autocast_context, to_device
from genlab.metrics.model_metrics import split_means
from genlab.metrics.registry import metric, model_metrics, scalars
from genlab.models.base import GenerativeModel, in_test_mode


def rng_sandbox(device: torch.device, seed: int):
    """Run a block on its own seeded RNG and leave the training RNG untouched, so that
    sampling and evaluation never change what training draws next (exact resume)."""
    devices = [device.index or 0] if device.type == "cuda" else []

    @contextlib.contextmanager
    def sandbox():
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return sandbox()


@dataclass(frozen=True)
class EvalData:
    """The test split as the trainer evaluates on it: its loader (the validation metrics); the
    fixed batch every training grid shows (rank 0 only); trainer.eval_samples of its images,
    the reference of the image metrics in trainer.eval_metrics (None without any)."""

    loader: Any
    grid_batch: dict | None = None
    image_reference: Any = None


class Evaluator:
    """The evaluation model (the EMA weights where the model keeps them) measured in its test
    mode, on its own seeded RNG, at the training precision. `last` holds the latest validation
    metrics, `best` the best by the monitor so far ({"name", "value", "step"}, checkpointed)."""

    def __init__(self, data: EvalData, settings: DictConfig, device: torch.device, precision: str, monitor: tuple[str, str] | None):
        self.loader, self.image_reference = data.loader, data.image_reference
        self.grid_batch = to_device(data.grid_batch, device) if data.grid_batch is not None else None
        self.settings, self.device, self.precision, self.monitor = settings, device, precision, monitor
        metrics = list(settings.get("eval_metrics") or [])  # validation.check_trainer_options has refused what does not apply
        # genlab eval's model metrics where they apply (modes on 2-D mixtures), else image metrics (FID...)
        self.model_metrics = [m for m in metrics if m in model_metrics()]
        self.image_metrics = [m for m in metrics if m not in model_metrics()]
        if self.image_metrics and self.image_reference is None:
            raise GenlabError(f"trainer.eval_metrics={self.image_metrics} needs reference images; give the evaluator EvalData(image_reference=...)")
        self._image_quality = None  # the feature network and the reference statistics, built at the first evaluation
        self.last: dict[str, float] = {}
        self.best: dict | None = None

    @contextlib.contextmanager
    def evaluating(self, model: GenerativeModel):
        """`model` in its test mode (models.base.in_test_mode: its buffers unchanged afterwards),
        on its own seeded RNG, at the training precision."""
        with in_test_mode(model) as test_model, rng_sandbox(self.device, int(self.settings.seed)), autocast_context(self.device, self.precision):
            yield test_model

    def grids(self, model: GenerativeModel) -> dict[str, torch.Tensor]:
        """The model's visuals of the fixed batch: (B, C, H, W) grids in [-1, 1] by name."""
        with self.evaluating(model) as test_model:
            return test_model.visuals(self.grid_batch)

    def validate(self, model: GenerativeModel) -> dict[str, float]:
        """The test split's means (up to trainer.eval_batches batches) and trainer.eval_metrics,
        as val/<name>; kept as `last`."""
        with self.evaluating(model) as test_model:
            means = split_means(test_model, self.loader, self.device, self.settings.get("eval_batches"))
            for name in self.model_metrics:
                means |= scalars(metric(name).compute(test_model, self.loader, self.device, self.settings))
            if self.image_metrics:
                means |= self._image_metrics(test_model)
        self.last = {f"val/{k}": v for k, v in means.items()}
        return self.last

    def improves_best(self, step: int) -> bool:
        """Whether the last validation is the best yet by the monitor; it becomes `best` then."""
        if self.monitor is None:
            return False
        name, mode = self.monitor
        value = self.last.get(name)
        if value is None:
            raise GenlabError(f"trainer.monitor={name} is not among the validation metrics {sorted(self.last)}")
        if self.best is None or (value < self.best["value"] if mode == "min" else value > self.best["value"]):
            self.best = {"name": name, "value": value, "step": step}
            return True
        return False

    def _image_metrics(self, model) -> dict[str, float]:
        """FID (and IS, KID, PR) of eval_samples samples against the reference images, whose
        statistics are kept after the first evaluation (and cached on disk)."""
        from genlab.metrics.classes import image_quality_for
        from genlab.metrics.image_quality import model_source

        inc, n = self.settings.inception, int(self.settings.eval_samples)
        if self._image_quality is None:  # trainer.features: the Inception network, or a data set's classifier
            self._image_quality = image_quality_for(self.settings, self.device, model.sample_shape[-1], progress=False)
        out = self._image_quality.compare(model_source(model, n, int(inc.batch_size)), self.image_reference, self.image_metrics)
        return {k: v for k, v in out.items() if not k.startswith("n_")}
