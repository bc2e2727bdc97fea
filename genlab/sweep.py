"""Sweeps (`genlab train -m`): the number a trial hands its sweeper and the direction the
sweeper follows (`objective`, a rule of genlab/metrics/registry.py), failed trials that do
not stop the sweep, the requeued job that continues its own run, and the report a sweep
writes when it ends."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from genlab.errors import GenlabError
from genlab.metrics.registry import objective

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class FailedTrial:
    """What a failed trial returns. The basic sweeper keeps it as the job's result; Optuna,
    which cannot turn it into a float, records a failed trial with the reason and goes on."""

    def __init__(self, reason: str):
        self.reason = reason

    def __float__(self) -> float:
        raise ValueError(self.reason)

    def __repr__(self) -> str:
        return f"failed trial: {self.reason}"


def as_trial(run: Callable[[DictConfig], dict]) -> Callable[[DictConfig], object]:
    """`train.run` as a sweep trial. Outside a multirun it is unchanged. In one it returns the
    objective's final value as a float; a run that diverges, stops on a signal or lacks the
    metric is a failed trial (one line in the log) and the sweep goes on. Under Slurm a run
    stopped by a signal exits with 128 + signal, as a single run does, so that the job is
    requeued and resumes (train.run continues the last.pt its run directory holds)."""

    def trial(cfg: DictConfig):
        if not in_multirun():
            return run(cfg)
        try:
            result = run(cfg)
        except GenlabError as e:
            return _failed(str(e))  # train.run wrote it to the run's status.json
        if result.get("interrupted"):
            if os.environ.get("SLURM_JOB_ID"):
                sys.exit(128 + signal.Signals[result["interrupted"]].value)
            return _failed(f"stopped by {result['interrupted']} at step {result['step']}; resume with: genlab train resume={result['run_dir']}",
                           result["run_dir"])
        goal = objective(cfg)
        if goal is None:
            return result
        value = result["val"].get(goal[0])
        if value is None:
            return _failed(f"trainer.objective={goal[0]} is not among the validation metrics {sorted(result['val'])}", result["run_dir"])
        if not math.isfinite(value):
            return _failed(f"{goal[0]} is {value}", result["run_dir"])
        return float(value)

    return trial


def _failed(reason: str, run_dir: str | os.PathLike | None = None) -> FailedTrial:
    """A failed trial: one line in the log, and the run's status.json says failed (a run that
    trained to its end but gave the sweep no objective fails as a trial)."""
    log.error("genlab: error: %s (this trial failed; the sweep goes on)", reason)
    if run_dir is not None:
        from genlab import runstatus

        runstatus.ended(run_dir, "failed", reason=reason)
    return FailedTrial(reason)



class SweepCallback(Callback):
    """Hydra callbacks of `genlab train -m` (configs/train.yaml: hydra.callbacks.sweep)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """An Optuna sweep's direction follows the objective (val/elbo: maximize, val/fid:
        minimize) unless hydra.sweeper.direction is given on the command line."""
        sweeper = config.hydra.sweeper
        if "optuna" not in str(sweeper.get("_target_", "")).lower():
            return
        if any(o.startswith("hydra.sweeper.direction=") for o in config.hydra.overrides.hydra):
            return
        try:
            goal = objective(config)
            if goal is None:
                raise GenlabError(
                    f"an Optuna sweep needs a number to optimise and {config.model.get('_target_')} keeps no monitor: "
                    "set trainer.objective=val/<metric> (e.g. val/fid with trainer.eval_metrics=[fid])"
                )
        except GenlabError as e:  # Hydra would only warn about an exception here and sweep on
            print(f"genlab: error: {e}", file=sys.stderr)
            sys.exit(2)
        with read_write(sweeper), open_dict(sweeper):
            sweeper.direction = "maximize" if goal[1] == "max" else "minimize"
        log.info("Optuna will %s %s (trainer.objective)", sweeper.direction, goal[0])

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """`genlab report` of the sweep's runs into the sweep directory: report.md, .csv and
        .html and the plots, sorted by the objective."""
        from genlab.report import find_runs, write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            goal = objective(config)
        except GenlabError:
            goal = None
        try:
            paths = write_report(find_runs([str(sweep_dir)]), sweep_dir, sort=goal)
        except GenlabError as e:
            log.warning("no sweep report: %s", e)
            return
        log.info("sweep report: %s", paths["md"])


# the Hydra plugin behind each launcher and sweeper a user may pick, and genlab's extra for it
PLUGINS = {
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
    "hydra/launcher=joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def check_plugins(overrides: list[str]) -> None:
    """One clear error, before Hydra composes anything, for a launcher or sweeper whose
    plugin is not installed."""
    import importlib.util

    for override in overrides:
        plugin = PLUGINS.get(override.lstrip("+"))
        if plugin and importlib.util.find_spec(plugin[0]) is None:
            raise GenlabError(f"{override} needs its Hydra plugin: pip install 'genlab[{plugin[1]}]'")
