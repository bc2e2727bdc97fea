"""Where numbers and pictures go during training: running means of named scalars, flushed
to metrics.jsonl (always: `genlab report` reads it) and to the sinks the logger config
names (TensorBoard, CSV, Weights & Biases, MLflow), each with the same scalars, image
grids and hparams."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.atomic import atomic_write_text
from genlab.images import grid, save_grid


class Sink:
    """One destination of the logged numbers and pictures; every method may be a no-op."""

    def scalars(self, step: int, values: dict[str, float]) -> None: ...

    def image(self, step: int, name: str, image: Tensor, path: Path) -> None:
        """image: the (C, H, W) uint8 grid that was written to `path` as PNG."""

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink(Sink):
    """TensorBoard events in <run dir>/tb."""

    def __init__(self, run_dir: Path, options: Mapping, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))

    def scalars(self, step, values):
        for k, v in values.items():
            self.tb.add_scalar(k, v, step)

    def image(self, step, name, image, path):
        self.tb.add_image(name, image, step)

    def hparams(self, hparams, metrics):
        clean = {k: v for k, v in hparams.items() if isinstance(v, (int, float, str, bool))}
        self.tb.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self):
        self.tb.close()


class CsvSink(Sink):
    """<run dir>/metrics.csv, one row per logged step and a column per scalar (the file is
    rewritten when a new scalar appears), and hparams.csv; the image grids are the PNGs."""

    def __init__(self, run_dir: Path, options: Mapping, config: dict):
        self.path, self.hparams_path = run_dir / "metrics.csv", run_dir / "hparams.csv"
        self.rows: list[dict] = []
        if self.path.is_file():  # a resumed run goes on in the same file
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))
        self.columns = list(self.rows[0]) if self.rows else ["step"]

    def scalars(self, step, values):
        row = {"step": step, **values}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            self.columns += new
            atomic_write_text(self.path, _csv_text(self.columns, self.rows))
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)

    def hparams(self, hparams, metrics):
        rows = [{"name": k, "value": v} for k, v in hparams.items()] + [{"name": f"hparam/{k}", "value": v} for k, v in metrics.items()]
        atomic_write_text(self.hparams_path, _csv_text(["name", "value"], rows))


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _stable_id(run_dir: Path) -> str:
    """The same tracker run id for the same run directory, so a resumed run continues its run."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


class WandbSink(Sink):
    """Weights & Biases: the run config at the start, then scalars, images and hparams.
    mode=offline writes <run dir>/wandb/ for a later `wandb sync`."""

    def __init__(self, run_dir: Path, options: Mapping, config: dict):
        wandb = _optional("wandb", "wandb")
        o = dict(options)
        self.wandb = wandb
        try:
            self.run = wandb.init(
                project=o.get("project") or "genlab", entity=o.get("entity"), name=o.get("name") or str(run_dir),
                group=o.get("group"), tags=list(o.get("tags") or []), mode=o.get("mode"), dir=str(o.get("dir") or run_dir),
                id=_stable_id(run_dir), resume="allow", config=flatten(config), reinit="finish_previous",
            )
        except (wandb.errors.UsageError, wandb.errors.AuthenticationError) as e:  # no account or key on this machine
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise GenlabError(f"logger=wandb cannot log in to W&B ({first}): run `wandb login` (or set WANDB_API_KEY), "
                              "or log offline with logger.wandb.mode=offline and `wandb sync` the run later") from None

    def scalars(self, step, values):
        self.run.log(dict(values), step=step)

    def image(self, step, name, image, path):
        self.run.log({name: self.wandb.Image(str(path))}, step=step)

    def hparams(self, hparams, metrics):
        self.run.config.update(hparams, allow_val_change=True)
        self.run.summary.update({f"hparam/{k}": v for k, v in metrics.items()})

    def close(self):
        self.run.finish()


class MlflowSink(Sink):
    """MLflow: a run in `experiment` (tagged with the run directory, which a resumed run
    continues), its metrics by step, image grids under images/, params from hparams.
    tracking_uri: null uses MLflow's own default ($MLFLOW_TRACKING_URI)."""

    def __init__(self, run_dir: Path, options: Mapping, config: dict):
        _optional("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        o = dict(options)
        uri, artifacts = mlflow_location(run_dir, o.get("tracking_uri"))
        self.client = MlflowClient(tracking_uri=uri)
        name = o.get("experiment") or "genlab"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name, artifact_location=artifacts)
        tag = str(run_dir.resolve())
        found = self.client.search_runs([experiment_id], f"tags.`genlab.run_dir` = '{tag}'", max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment_id, tags={"genlab.run_dir": tag}, run_name=o.get("run_name") or str(run_dir)).info.run_id

        print(f"mlflow: run {self.run_id} in {uri} (open it with: mlflow ui --backend-store-uri {uri})", flush=True)

    def scalars(self, step, values):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_mlflow_key(k), float(v), now, step) for k, v in values.items()])

    def image(self, step, name, image, path):
        self.client.log_image(self.run_id, image.permute(1, 2, 0).numpy(), key=_mlflow_key(name), step=step)

    def hparams(self, hparams, metrics):
        from mlflow.entities import Metric, Param

        # MLflow refuses a param changed within a run (e.g. optim.lr overridden on resume): keep the first
        logged = self.client.get_run(self.run_id).data.params
        params = [Param(_mlflow_key(k), str(v)[:6000]) for k, v in hparams.items() if _mlflow_key(k) not in logged]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_mlflow_key(f"hparam/{k}"), float(v), now, 0) for k, v in metrics.items()])

    def close(self):
        self.client.set_terminated(self.run_id)


def mlflow_location(run_dir: Path, tracking_uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact location of a new experiment): tracking_uri, else
    $MLFLOW_TRACKING_URI, else <root>/mlflow.db with artifacts in <root>/mlruns, where root is
    the outputs/ or multirun/ folder above the run (else the run's parent), not the current
    directory: one store for all runs, found again beside them."""
    import os

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return str(uri), None
    run_dir = run_dir.resolve()
    root = next((p for p in run_dir.parents if p.name in ("outputs", "multirun")), run_dir.parent)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlruns").as_uri()


def _mlflow_key(name: str) -> str:
    """MLflow names allow letters, digits and _-. /; anything else becomes _."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)


def _optional(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise GenlabError(f"logger={extra} needs the {module} package: pip install 'genlab[{extra}]'") from None


SINKS = {"tensorboard": TensorBoardSink, "csv": CsvSink, "wandb": WandbSink, "mlflow": MlflowSink}


def sink_names(logger: Mapping | None) -> list[str]:
    """The sinks a logger config names (logger.sinks); a config saved before sinks existed
    has `tensorboard: true/false` instead."""
    logger = logger or {}
    names = logger.get("sinks")
    if names is None:
        names = ["tensorboard"] if logger.get("tensorboard", True) else []
    for name in names:
        if name not in SINKS:
            raise GenlabError(f"logger.sinks has {name!r}; choose from {', '.join(SINKS)} (metrics.jsonl is always written)")
    return list(names)


class Reporter:
    def __init__(self, run_dir: Path, logger: Mapping | None = None, write: bool = True, config: dict | None = None):
        """logger: the logger config (its `sinks` and their options); write=False (ranks other
        than 0) keeps the running means but writes nothing."""
        self.run_dir, self.write = run_dir, write
        names = sink_names(logger)
        if write:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = run_dir / "metrics.jsonl"
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._start = time.perf_counter()
        self.sinks: list[Sink] = [SINKS[n](run_dir, (logger or {}).get(n) or {}, config or {}) for n in names] if write else []

    def accumulate(self, name: str, value: Tensor) -> None:
        """Add one value to the running mean of `name` (no device sync until `means`)."""
        value = value.detach().float()
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        """The running means since the last call, then reset; read from the device at once."""
        if not self._sums:
            return {}
        device = next(iter(self._sums.values())).device
        means = torch.stack([(v / self._counts[k]).reshape(()).to(device) for k, v in self._sums.items()]).tolist()
        out = dict(zip(self._sums, means))
        self._sums, self._counts = {}, {}
        return out

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One line of metrics.jsonl (with wall_s, the seconds since this process began
        logging: `genlab report` sums them over resumed segments), and every sink."""
        if not self.write:
            return
        with open(self.jsonl, "a") as f:
            row = {"step": step, **{k: _finite(v) for k, v in values.items()}, "wall_s": round(time.perf_counter() - self._start, 3)}
            f.write(json.dumps(row) + "\n")
        for sink in self.sinks:
            sink.scalars(step, values)

    def images(self, step: int, visuals: dict[str, Tensor], folder: Path) -> None:
        for name, x in visuals.items():
            path = save_grid(x, folder / f"{name}_{step:07d}.png")
            if self.sinks:
                image = grid(x).cpu()
                for sink in self.sinks:
                    sink.image(step, name, image, path)

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.hparams(hparams, metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


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
