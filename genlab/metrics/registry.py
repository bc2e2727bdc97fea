"""Every metric genlab computes, declared where it is defined with @register_metric (as
stylegan2-ada's metric_main.register_metric): its name, what it needs (model capabilities, a
kind of data set, generated images), the keys it produces and which way each is better, and
whether best.pt follows it when trainer.eval_metrics computes it. Beside the table, the
rules that read it: which way a logged metric is better, the metric best.pt is kept by
(`monitor`) and the one a sweep optimises (`objective`). genlab eval, the trainer, the
config checks and `genlab report` all ask here.

A leaf: the metric modules import it and it imports none of them. genlab/metrics/__init__.py
imports every module that registers metrics, so whoever imports genlab.metrics.<anything>
sees the full table."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from genlab.errors import GenlabError

DIRECTION_SUFFIXES = ("_AtoB", "_BtoA")  # image metrics of an image-to-image model, per direction


@dataclass(frozen=True)
class Metric:
    """A metric. A model metric (images=False): compute(model, loader, device, cfg) -> {key:
    value} (plus, optionally, "per_class": {column: [value per class]} and "protocol": {...}),
    for models with every capability in `needs` and data sets that pass `data_check`. An image
    metric (images=True) compares generated images with reference ones: compute(c: Compared) ->
    {key: value} from the features ImageQuality.compare gathered. `keys`: each key it produces
    (an fnmatch pattern) and "min", "max" or None (no better way); `requires`: what it needs,
    in words, for the one-line refusal; auto=False: computed only when asked for by name;
    monitor_rank: with trainer.eval_metrics, best.pt follows the first key of the metric of
    lowest rank (None: never by itself)."""

    name: str
    compute: Callable
    keys: Mapping[str, str | None]
    needs: tuple[type, ...] = ()
    data_check: Callable | None = None
    requires: str = ""
    auto: bool = True
    images: bool = False
    monitor_rank: int | None = None

    @property
    def monitor(self) -> tuple[str, str]:
        """(val/<key>, direction) that best.pt follows when this metric is computed."""
        key = next(iter(self.keys))
        return f"val/{key}", self.keys[key]


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, keys: Mapping[str, str | None], **declared) -> Callable[[Callable], Callable]:
    """Declare the decorated function as the metric `name` (the fields of Metric)."""

    def register(compute: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        for key, mode in keys.items():
            if mode not in (None, "min", "max"):
                raise ValueError(f"metric {name!r}: key {key!r} has direction {mode!r}, not min, max or None")
            known = _declared_direction(key)
            if known is not _UNKNOWN and known != mode:
                raise ValueError(f"metric {name!r}: key {key!r} is {mode} here and {known} in another metric")
        METRICS[name] = Metric(name, compute, dict(keys), **declared)
        return compute

    return register


def model_metrics() -> dict[str, Metric]:
    return {n: m for n, m in METRICS.items() if not m.images}


def image_metrics() -> dict[str, Metric]:
    return {n: m for n, m in METRICS.items() if m.images}


def unknown(name: str, also: tuple[str, ...] = ()) -> str | None:
    """None for a registered metric (or one of `also`, e.g. eval's auto), else the refusal:
    the registered ones."""
    if name in METRICS or name in also:
        return None
    return f"has {name!r}, which is not a metric; choose from {', '.join([*METRICS, *also])}"


def metric(name: str, key: str = "metrics") -> Metric:
    """The registered metric `name`, or one line naming the registered ones."""
    problem = unknown(name)
    if problem:
        raise GenlabError(f"{key} {problem}")
    return METRICS[name]


def applies(m: Metric, model, dataset) -> bool:
    """A model metric applies to a model with its capabilities on a data set that passes its check."""
    return not m.images and all(isinstance(model, c) for c in m.needs) and (m.data_check is None or m.data_check(dataset))


def refusal(m: Metric, model) -> str:
    """Why a model metric does not apply, from what it declares it needs."""
    return f" needs {m.requires}, not {type(model).__name__} on this data" if m.requires else " does not apply here"


def scalars(result: dict) -> dict[str, float]:
    """A metric's numbers, without its per-class tables and protocol."""
    return {k: v for k, v in result.items() if k not in ("per_class", "protocol")}


# -- the rules that read the table ---------------------------------------------------------
_UNKNOWN = object()


def _declared_direction(key: str):
    for m in METRICS.values():
        for pattern, mode in m.keys.items():
            if fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(pattern, key):
                return mode
    return _UNKNOWN


def metric_direction(name: str) -> str | None:
    """"min", "max" or None (no better way: d_real, kid_std) for a logged metric name such as
    val/fid, val/fid_AtoB, val/log_likelihood_iw1000 or val/cycle_A: what the metric that
    produces the key declares."""
    base = name.rsplit("/", 1)[-1]
    for suffix in DIRECTION_SUFFIXES:
        base = base.removesuffix(suffix)
    for m in METRICS.values():
        for pattern, mode in m.keys.items():
            if fnmatch.fnmatchcase(base, pattern):
                return mode
    return None


def monitor(t, model_monitor: tuple[str, str] | None) -> tuple[str, str] | None:
    """(metric, "min" | "max") that best.pt is kept by: trainer.monitor (trainer.monitor_mode;
    auto: the direction its metric declares), else the model's own, else that of the metric
    of lowest monitor_rank that trainer.eval_metrics computes (FID, mode coverage, ...)."""
    if t.get("monitor"):
        return str(t.monitor), _mode(f"trainer.monitor={t.monitor}", t.get("monitor_mode") or "auto", metric_direction(t.monitor), "monitor_mode")
    if model_monitor is not None:
        return tuple(model_monitor)
    ranked = [METRICS[n] for n in t.get("eval_metrics") or [] if n in METRICS and METRICS[n].monitor_rank is not None]
    return min(ranked, key=lambda m: m.monitor_rank).monitor if ranked else None


def model_monitor(model_cfg) -> tuple[str, str] | None:
    """The `monitor` a genlab model class declares, read from its config's _target_ (only
    genlab's own classes, by the allow list: the config may come from disk)."""
    from genlab.allowlist import ALLOWED_TARGETS

    target = str((model_cfg or {}).get("_target_", ""))
    if target not in ALLOWED_TARGETS:
        return None
    from hydra.utils import get_class

    try:
        return getattr(get_class(target), "monitor", None)
    except Exception:
        return None


def objective(cfg) -> tuple[str, str] | None:
    """(metric, "min" | "max") that a sweep optimises: trainer.objective, else the metric
    best.pt is kept by; None when neither is known."""
    t = cfg.trainer
    watched = monitor(t, model_monitor(cfg.get("model")))
    name, mode = t.get("objective"), t.get("objective_mode") or "auto"
    if not name:
        if watched is None:
            return None
        name, known = watched
    else:
        known = watched[1] if watched and watched[0] == name else metric_direction(name)
    return str(name), _mode(f"trainer.objective={name}", mode, known, "objective_mode")


def _mode(what: str, mode: str, known: str | None, key: str) -> str:
    """mode, or for auto the known direction; one line where none is known."""
    if mode not in ("auto", "min", "max"):
        raise GenlabError(f"trainer.{key}={mode!r} is not one of auto, min, max")
    if mode != "auto":
        return mode
    if known is None:
        raise GenlabError(f"{what}: genlab does not know which way is better; set trainer.{key}=min or max")
    return known
