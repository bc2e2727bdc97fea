"""`genlab train`: build data, model and trainer from a config, then fit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genlab import checkpoint, distributed, runstatus
from genlab.errors import GenlabError
from genlab.config import applied_choices, build, resume_config, seed_everything
from genlab.data.loading import TrainStream, eval_loader
from genlab.device import share_cores
from genlab.evaluator import EvalData
from genlab.loggers import flatten
from genlab.metrics.registry import image_metrics
from genlab.trainer import RunRecord, Trainer, build_optimizers, build_schedulers, total_steps
from genlab.validation import check_applies, check_trainer_options, check_values

log = logging.getLogger(__name__)


def _hydra_context() -> tuple[Path | None, list[str], dict]:
    """(output dir, task overrides, group choices) of the running Hydra job, if any."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, [], {}
    hc = HydraConfig.get()
    choices = applied_choices({k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")})
    return Path(hc.runtime.output_dir), list(hc.overrides.task), choices


def run(cfg: DictConfig, run_dir: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict:
    """Train the configured model; returns the trainer's summary (final losses, metrics, paths).

    Callable without the CLI: pass a composed config, a run directory and, when resuming,
    the key=value overrides to apply on top of the checkpoint's config."""
    distributed.quiet_other_ranks()
    hydra_dir, hydra_overrides, choices = _hydra_context()
    overrides = hydra_overrides if overrides is None else overrides
    run_dir = Path(run_dir or hydra_dir or os.getcwd())
    resume = None
    if cfg.get("resume"):
        state, path = checkpoint.load(cfg.resume)
        saved_choices = state.get("choices", {})
        cfg = resume_config(state["config"], saved_choices, overrides)
        choices = saved_choices
        resume = (state, path)
    else:  # a run directory that already holds a run: continue it, or refuse
        resume = _run_dir_checkpoint(run_dir, cfg)
    talks = distributed.world()[0] == 0  # rank 0 writes the run's status.json
    trainer = None
    try:
        check_values(cfg, "train")
        check_applies(cfg, choices, [] if resume else overrides)
        share_cores(cfg.trainer, cfg.data)
        seed_everything(int(cfg.trainer.seed))
        model = build(cfg.model, "model")
        trainer = build_trainer(cfg, model, run_dir, choices)
        n_params = sum(p.numel() for p in model.parameters())
        log.info("model %s (%s parameters) on %s, %d steps, run dir %s", type(model).__name__, f"{n_params:,}", trainer.device, trainer.total_steps, run_dir)
        if talks:
            runstatus.started(run_dir, resume[0]["step"] if resume else 0, trainer.total_steps, resume[1] if resume else None)
        try:
            result = trainer.fit(resume)
        finally:
            distributed.teardown()
    except Exception as e:
        if talks and run_dir.is_dir():
            reason = str(e) if isinstance(e, GenlabError) else f"{type(e).__name__}: {e}"
            runstatus.ended(run_dir, "failed", trainer.step if trainer is not None else None, reason=reason)
        raise
    if talks:
        runstatus.ended(run_dir, "stopped" if result["interrupted"] else "done", result["step"], signal=result["interrupted"])
    log.info(
        "step %d, train %s, val %s, checkpoint %s, %.1f s",
        result["step"], _fmt(result["train"]), _fmt(result["val"]), result["checkpoint"], result["wall_s"],
    )
    return result


def _run_dir_checkpoint(run_dir: Path, cfg: DictConfig) -> tuple[dict, Path] | None:
    """(state, path) of the last.pt the run directory already holds from the very same config:
    the run continues where it stopped (a Slurm job requeued after preemption, a sweep or
    `make demo` run again into the same directory; a finished run has nothing left to do).
    A last.pt of another config is refused, since training afresh would overwrite that
    run's checkpoints and mix two runs in its metrics.jsonl."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return None
    state, path = checkpoint.load(last)
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("resume", None)
    if state.get("config") != container:
        saved, now = flatten(state.get("config") or {}), flatten(container)
        changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise GenlabError(f"{run_dir} already holds a run of another config (step {state['step']}; differs in {shown or 'its layout'}): "
                          f"give resume={run_dir} with your overrides to continue it, or a new hydra.run.dir (hydra.sweep.dir for a sweep)")
    log.info("this run directory holds %s (step %d) from the same config: continuing it", path, state["step"])
    return state, path


def build_trainer(cfg: DictConfig, model, run_dir: str | os.PathLike, choices: dict | None = None) -> Trainer:
    """The trainer of a composed config: the data stream of this rank, the test split (with
    the fixed grid batch and the reference images of trainer.eval_metrics), the optimizers and
    schedules, and the record every checkpoint carries; the trainer options the model cannot
    honour are refused first."""
    t = cfg.trainer
    rank, world_size, _ = distributed.world()
    stream = TrainStream(cfg.data, int(t.seed), rank, world_size)
    val = eval_loader(cfg.data, "test")
    check_trainer_options(t, model, val.dataset)
    optimizers = build_optimizers(model, cfg.optim, cfg.get("optim_groups"))
    schedulers = build_schedulers(cfg.get("scheduler"), optimizers, total_steps(t, stream), stream.batches_per_epoch)
    # the same 64 test images in every grid, whatever the training batch size
    grid = next(iter(eval_loader(cfg.data, "test", batch_size=64))) if rank == 0 else None
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("resume", None)
    return Trainer(model, stream, t, optimizers, schedulers, eval_data=EvalData(val, grid, _image_reference(cfg, val)),
                   record=RunRecord(Path(run_dir), container, choices or {}))


def _image_reference(cfg: DictConfig, val):
    """trainer.eval_samples test images for the image metrics (FID...), when asked for; the
    image-quality module (and scipy) is imported only then."""
    if not any(m in image_metrics() for m in cfg.trainer.get("eval_metrics") or []):
        return None
    from genlab.metrics.image_quality import data_key, loader_source

    return loader_source(val, int(cfg.trainer.eval_samples), "test split", data_key(cfg.data, "test"))


def _fmt(values: dict) -> str:
    return "{" + ", ".join(f"{k.split('/', 1)[-1]}: {v:.5g}" for k, v in values.items()) + "}"
