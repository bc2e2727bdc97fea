"""THE training loop. Every optimizer step of every model family happens here: phases,
mixed precision, gradient clipping, EMA, schedulers, logging, sampling, evaluation and
checkpoint cadence, exact resume and graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab import checkpoint, distributed
from genlab.errors import GenlabError, RunError, StartUpInterrupts
from genlab.version import __version__
from genlab.data.loading import TrainStream
from genlab.device import autocast_context, check_precision, to_device
from genlab.ema import EMA
from genlab.evaluator import EvalData, Evaluator
from genlab.losses.penalties import grad_scaler
from genlab.metrics.registry import monitor
from genlab.models.base import GenerativeModel
from genlab.loggers import Reporter, flatten

log = logging.getLogger(__name__)
# a loss term beyond this is diverging even while it is still finite (warned once per run)
DIVERGENCE_BOUND = 1e10
# with trainer.log_every=0: the losses are read, and torchrun ranks agree on a stop signal, every this many steps
STOP_CHECK_EVERY = 50


class Aborted(RunError):
    """A second Ctrl-C: stop now, after any checkpoint write in progress has finished."""

    exit_code = 130


def total_steps(settings: DictConfig, stream: TrainStream) -> int:
    """trainer.max_epochs epochs of the stream when set, else trainer.max_steps."""
    return int(settings.max_epochs) * stream.batches_per_epoch if settings.get("max_epochs") else int(settings.max_steps)


def build_optimizers(model: GenerativeModel, optim: DictConfig, groups_cfg: DictConfig | None = None) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per named parameter group of the model, from the optim config (a
    _partial_ constructor) with the group's optim_groups.<group> settings on top, as the
    model adjusts them (`optimizer_settings`: lazy R1's Adam correction), which is logged."""
    groups = model.param_groups()
    for phase in model.phases:
        if phase.group not in groups:
            raise GenlabError(f"phase {phase.name!r} names parameter group {phase.group!r}, which {type(model).__name__}.param_groups() does not have")
    overrides = OmegaConf.to_container(groups_cfg, resolve=True) if groups_cfg else {}
    unknown = set(overrides) - set(groups)
    if unknown:
        raise GenlabError(f"optim_groups has {sorted(unknown)}; this model's parameter groups are {sorted(groups)}")
    base = {k: v for k, v in OmegaConf.to_container(optim, resolve=True).items() if not k.startswith("_")}
    optimizers = {}
    for name, params in groups.items():
        configured = base | overrides.get(name, {})
        settings = model.optimizer_settings(name, configured)
        for key in sorted(k for k in settings if settings[k] != configured.get(k)):
            log.info("optimizer %s uses %s=%s instead of the configured %s (lazy R1's Adam correction; loss.lazy_adam_correction=false drops it)",
                     name, key, settings[key], configured.get(key))
        optimizers[name] = instantiate(optim, **settings)(params)
    return optimizers


def build_schedulers(scheduler: DictConfig | None, optimizers: dict, steps: int, steps_per_epoch: int | None = None) -> dict:
    """One learning-rate schedule per optimizer (none for scheduler=none); a schedule that
    counts epochs is given the stream's steps per epoch."""
    if not (scheduler and scheduler.get("_target_")):
        return {}
    factory = instantiate(scheduler)
    extra = {"steps_per_epoch": steps_per_epoch} if "steps_per_epoch" in inspect.signature(factory.func).parameters else {}
    return {n: factory(o, total_steps=steps, **extra) for n, o in optimizers.items()}


@dataclass(frozen=True)
class RunRecord:
    """Where the run writes (its directory) and what every checkpoint carries besides the
    state: the run's resolved config (plain containers, rebuilt by eval, sample and resume;
    its logger section picks the sinks) and its config-group choices."""

    run_dir: Path
    config: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)


class Trainer:
    """The loop, given what it needs: the model; this rank's training stream; the trainer
    settings (cfg.trainer); one optimizer (and schedule) per parameter group (build_optimizers,
    build_schedulers); the test split as the evaluator uses it (EvalData); the run's record.
    It writes checkpoints through a CheckpointWriter and measures through an Evaluator;
    best.pt is kept by `monitor(settings, model.monitor)`."""

    def __init__(self, model: GenerativeModel, stream: TrainStream, settings: DictConfig, optimizers: dict, schedulers: dict | None = None, *,
                 eval_data: EvalData, record: RunRecord):
        self.settings, self.record, self.run_dir = settings, record, Path(record.run_dir)
        self.rank, self.world_size, self.device = distributed.setup(settings.device)
        self.is_main = self.rank == 0
        self.precision = check_precision(settings.precision, self.device)
        self.model = model.to(self.device)  # in place: the optimizers' parameters are the model's
        self.channels_last = bool(settings.get("channels_last", False))
        if self.channels_last:  # NHWC convolutions: faster for some conv nets and devices (scripts/bench_train.py --overrides trainer.channels_last=true)
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.world_size > 1:
            distributed.broadcast_state(self.model)
        self.stream = stream
        self.total_steps = total_steps(settings, stream)
        self.groups = model.param_groups()
        self.optimizers, self.schedulers = optimizers, schedulers or {}
        # fp16: one gradient scaler per optimizer (the AMP docs' recipe for several models and
        # optimizers), each updated after its own optimizer's step
        self.scalers = {n: torch.amp.GradScaler(self.device.type) for n in optimizers} if self.precision == "fp16" else {}
        self.ema = EMA(self.model, float(settings.ema_decay), settings.get("ema_rampup")) if settings.get("ema_decay") else None
        if settings.get("compile"):  # validation.check_trainer_options has refused the double-backward penalties
            for child in self.model.children():
                child.compile()  # in place: state_dict keys keep their names

        # per optimizer: the trainable parameters outside its group, frozen during its phases
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        own = {n: {id(p) for p in ps} for n, ps in self.groups.items()}
        self._frozen = {n: [p for p in trainable if id(p) not in ids] for n, ids in own.items()}
        # read once: a DictConfig lookup costs ~0.1 ms
        self._grad_clip = float(settings.grad_clip) if settings.get("grad_clip") else None
        self.seed = int(settings.seed)
        self.log_every, self.sample_every, self.eval_every, self.ckpt_every = (
            int(settings.get(k) or 0) for k in ("log_every", "sample_every", "eval_every", "ckpt_every"))  # steps; 0: never
        # torchrun: the ranks agree on a stop (and rank 0's batch-norm statistics reach the others) at these steps only
        self._sync_every = self.log_every or STOP_CHECK_EVERY
        self.evaluator = Evaluator(eval_data, settings, self.device, self.precision, monitor(settings, model.monitor))
        self.checkpoints = checkpoint.CheckpointWriter(self.run_dir / "checkpoints", int(settings.get("keep_last", 0)))
        self.reporter = Reporter(self.run_dir, self.record.config.get("logger"), write=self.is_main, config=self.record.config)
        self.step, self.train_means = 0, {}
        self._signal = None  # the first SIGINT or SIGTERM: stop after this step
        self._warned_divergence = False
        # (step, phase, loss) of the phases since the losses were last read: read together, at a
        # log step or before a checkpoint is published, so that no step waits for the device
        self._losses: list[tuple[int, str, torch.Tensor]] = []

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: tuple[dict, Path] | None = None) -> dict:
        try:
            return self._fit(resume)
        except KeyboardInterrupt:
            self.checkpoints.discard_held()
            raise Aborted(f"aborted by a second Ctrl-C at step {self.step}; {self.checkpoints.describe_last().replace('the previous', 'the last')}") from None

    def _fit(self, resume: tuple[dict, Path] | None) -> dict:
        bar = self._begin(resume)
        with self._stop_on_signals(), self._losses_first():
            while self.step < self.total_steps and not self._should_stop():
                self._train_step()
                self._publish_held_checkpoint()  # this step ran on the held-back weights with finite losses
                self.step += 1
                bar.update(1)
                if self._due(self.log_every):
                    self._log(bar)
                elif self.step % self._sync_every == 0:  # log_every=0: the unread losses stay few all the same
                    self._check_losses()
                if self._due(self.sample_every):
                    self._sample_grids()
                if self._due(self.eval_every):
                    self._validate()
                if self._due(self.ckpt_every):
                    self._hold_checkpoint()
            self._check_losses()  # nothing below publishes weights that gave a non-finite loss
        bar.close()
        return self._finish()

    def _begin(self, resume: tuple[dict, Path] | None):
        """Remove the temporaries a killed write left, load the resumed state, start the clocks;
        returns the progress bar (shown by rank 0 with trainer.progress_bar)."""
        if self.is_main:
            self.checkpoints.remove_stale_temporaries()
        if resume:
            self.load_state_dict(*resume)
            log.info("resumed from %s at step %d", resume[1], self.step)
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (self.settings.get("progress_bar", True) and self.is_main))
        self._started = time.perf_counter()
        self._tick = (self._started, self.step)  # (time, step) of the last log step: the throughput since
        self.model.train()
        return bar

    def _train_step(self) -> None:
        """Every phase active at this step (a repeat on a fresh batch), then the schedules, the
        batch-norm statistics of torchrun's ranks and the EMA."""
        if self.world_size > 1:  # per-rank noise, a pure function of (seed, step, rank): resumable
            torch.manual_seed((self.seed * 1_000_003 + self.step) * self.world_size + self.rank)
        batch = self._batch()
        scratch = {"step": self.step}  # training_step's ctx: what one phase leaves for the next in this step
        for phase in self.model.phases:
            if not phase.active(self.step):
                continue
            for repeat in range(phase.repeats_at(self.step)):
                self._run_phase(phase, batch if repeat == 0 else self._batch(), scratch)
        for schedule in self.schedulers.values():
            schedule.step()
        if self.world_size > 1 and (self.step + 1) % self._sync_every == 0:
            distributed.broadcast_buffers(self.model)
        if self.ema:
            self.ema.update(self.model, self.step)

    def _due(self, every: int) -> bool:
        """Whether a cadence of `every` steps (0: never) falls on the step just completed."""
        return bool(every) and self.step % every == 0

    def _finish(self) -> dict:
        """The end-of-run pictures, numbers and hparams (unless a signal stopped the run), last.pt,
        and the run's summary."""
        self.checkpoints.discard_held()  # the final save below writes the same or a later state
        if self.world_size > 1 and self._signal is None and self.step < self.total_steps:
            self._signal = signal.SIGTERM  # another rank was stopped
        interrupted = signal.Signals(self._signal).name if self._signal else None
        if not interrupted:
            self._sample_grids()
            if not self._due(self.eval_every):  # not validated at this very step already
                self._validate()
            config = self.record.config
            self.reporter.hparams(flatten(config.get("model", {}), "model.") | flatten({"optim": config.get("optim", {})}), self.evaluator.last)
        last = self.save_checkpoint()
        self.reporter.close()
        if interrupted:
            log.warning("stopped by %s at step %d; %s holds the state, resume with: genlab train resume=%s", interrupted, self.step, last, self.run_dir)
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": str(last),
            "step": self.step,
            "train": self.train_means,
            "val": self.evaluator.last,
            "best": self.evaluator.best,
            "interrupted": interrupted,
            "wall_s": time.perf_counter() - self._started,
        }

    def _run_phase(self, phase, batch: dict, scratch: dict) -> None:
        """One optimizer step on the phase's parameter group; every other parameter is frozen
        so no gradient leaks into another network."""
        frozen = self._frozen[phase.group]
        for p in frozen:
            p.requires_grad_(False)
        opt, scaler = self.optimizers[phase.group], self.scalers.get(phase.group)
        opt.zero_grad(set_to_none=True)
        with autocast_context(self.device, self.precision), grad_scaler(scaler):
            loss, logs = self.model.training_step(batch, phase.name, scratch)
        self._losses.append((self.step, phase.name, loss.detach()))  # checked at the next read (_check_losses)
        (scaler.scale(loss) if scaler else loss).backward()
        if self.world_size > 1:
            distributed.average_gradients(self.groups[phase.group], self.world_size)
        prefix = "train/" if len(self.model.phases) == 1 else f"train/{phase.name}/"
        if self._grad_clip:
            if scaler:
                scaler.unscale_(opt)
            norm = torch.nn.utils.clip_grad_norm_(self.groups[phase.group], self._grad_clip)
            self.reporter.accumulate(prefix + "grad_norm", norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        self.model.after_step(phase.name)
        for k, v in logs.items():
            self.reporter.accumulate(prefix + k, v)
        for p in frozen:
            p.requires_grad_(True)

    def _batch(self) -> dict:
        batch = to_device(next(self.stream), self.device)
        if self.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v for k, v in batch.items()}
        return batch

    # -- the cadences --------------------------------------------------------------------------
    def _log(self, bar) -> None:
        """The training means since the last log step (the losses read and checked first), the
        learning rates, the throughput and the epoch: to the sinks and the progress bar."""
        now = time.perf_counter()
        self._check_losses()
        self.train_means = self.reporter.means()
        self._check_divergence(self.train_means)
        tick_time, tick_step = self._tick
        perf = {"perf/images_per_s": (self.step - tick_step) * self.stream.batch_size / (now - tick_time), "epoch": float(self.stream.epoch)}
        lrs = {f"lr/{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()}
        self.reporter.scalars(self.step, self.train_means | lrs | perf)
        bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in self.train_means.items() if k.endswith("loss")}
                        | {"img/s": f"{perf['perf/images_per_s']:.0f}"})
        self._tick = (now, self.step)

    def _sample_grids(self) -> None:
        if not self.is_main:
            return
        self._check_losses()
        self.reporter.images(self.step, self.evaluator.grids(self.eval_model), self.run_dir / "samples")

    def _validate(self) -> None:
        """The test split's metrics, logged; best.pt when they are the best yet by the monitor."""
        if not self.is_main:
            return
        self._check_losses()  # best.pt is never written from weights that gave a non-finite loss
        self.reporter.scalars(self.step, self.evaluator.validate(self.eval_model))
        if self.evaluator.improves_best(self.step):
            self.save_checkpoint(best=True)

    def _hold_checkpoint(self) -> None:
        """A periodic checkpoint is held back until the next step has run on its weights with
        finite losses, so that no checkpoint holds weights that have already diverged."""
        if self.is_main:
            self.checkpoints.hold(self.step, self.state_dict())

    def _publish_held_checkpoint(self) -> None:
        if self.checkpoints.holding:
            self._check_losses()  # the held-back weights' own step and every step before it
            self.checkpoints.publish_held()

    @property
    def eval_model(self) -> GenerativeModel:
        """The EMA weights where the model keeps them, else the live ones."""
        return self.ema.module if self.ema else self.model

    # -- losses: read at the cadences, never inside a step ---------------------------------------
    def _check_losses(self) -> None:
        """Read the phases' losses since the last read in one transfer from the device: the
        first non-finite one stops the run, naming its phase and step (the run may have gone
        on a few steps since: nothing was published from them); one beyond DIVERGENCE_BOUND is
        warned once."""
        if not self._losses:
            return
        losses, self._losses = self._losses, []
        values = torch.stack([loss.float().reshape(()) for _, _, loss in losses]).tolist()
        for (step, name, _), value in zip(losses, values):
            if not math.isfinite(value):
                self.checkpoints.discard_held()  # it holds weights that gave this loss or came after it
                fixes = "lower optim.lr or set trainer.grad_clip" + ("" if self.precision == "32" else ", or use trainer.precision=32")
                raise RunError(f"the loss of phase {name!r} is {value} at step {step}; "
                               f"{self.checkpoints.describe_last().replace('the previous', 'the last good')}; {fixes}")
        for (step, name, _), value in zip(losses, values):
            self._check_divergence({name: value}, step)

    @contextlib.contextmanager
    def _losses_first(self):
        """An error in a step after an unread non-finite loss (an op that refuses NaN) is
        reported as that loss."""
        try:
            yield
        except Exception:
            self._check_losses()
            raise

    def _check_divergence(self, values: dict[str, float], step: int | None = None) -> None:
        if self._warned_divergence:
            return
        for name, value in values.items():
            if abs(value) > DIVERGENCE_BOUND:
                self._warned_divergence = True
                log.warning("%s = %.3g at step %d: the training is diverging (warned once); lower optim.lr or set trainer.grad_clip",
                            name, value, self.step if step is None else step)
                return

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, best: bool = False) -> Path:
        """Write the state now (rank 0 only: all ranks hold the same state)."""
        if self.is_main:
            self.checkpoints.save(self.step, self.state_dict(), best)
        return self.checkpoints.path(best)

    def state_dict(self) -> dict:
        return {
            "genlab_format": checkpoint.FORMAT,
            "genlab_version": __version__,
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": {n: sc.state_dict() for n, sc in self.scalers.items()} or None,
            "data": self.stream.state_dict(),
            "best": self.evaluator.best,
            "rng": checkpoint.rng_state(),
            "config": self.record.config,
            "choices": self.record.choices,
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        checkpoint.load_model_state(self.model, state["model"], path)
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        if set(state["optimizers"]) != set(self.optimizers):
            raise GenlabError(f"checkpoint {path} has optimizers {sorted(state['optimizers'])}, this model {sorted(self.optimizers)}")
        for n, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][n])
        for n, s in self.schedulers.items():
            if n in state["schedulers"]:
                s.load_state_dict(state["schedulers"][n])
        saved = state.get("scaler") or {}
        if "scale" in saved:  # a checkpoint from before one scaler per optimizer: its one state for each
            saved = dict.fromkeys(self.scalers, saved)
        for n, sc in self.scalers.items():
            if n in saved:
                sc.load_state_dict(saved[n])
        self._apply_optimizer_settings(state["config"])
        self.stream.load_state_dict(state["data"])
        self.step, self.evaluator.best = int(state["step"]), state.get("best")
        checkpoint.set_rng_state(state["rng"])  # last: nothing after this may draw

    def _optimizer_settings(self, config: dict, group: str) -> dict:
        settings = {k: v for k, v in (config.get("optim") or {}).items() if not k.startswith("_")}
        return settings | ((config.get("optim_groups") or {}).get(group) or {})

    def _apply_optimizer_settings(self, saved_config: dict) -> None:
        """A resumed optimizer's state brings back the hyperparameters it was saved with; the
        ones this run's config changes (optim.lr=... on resume) are applied on top, and said."""
        for name, opt in self.optimizers.items():
            old, new = self._optimizer_settings(saved_config, name), self._optimizer_settings(self.record.config, name)
            effective = self.model.optimizer_settings(name, new)  # lazy R1's Adam correction
            for key, value in new.items():
                if old.get(key) == value or key not in opt.defaults:
                    continue
                value = effective[key]
                value = tuple(value) if isinstance(value, list) else value
                sched = self.schedulers.get(name)
                for i, group in enumerate(opt.param_groups):
                    group[key] = value
                    if key == "lr" and sched is not None:  # the schedule scales the new base rate
                        group["initial_lr"] = sched.base_lrs[i] = value
                        group["lr"] = value * sched.lr_lambdas[i](sched.last_epoch)
                log.info("resume: optimizer %s uses %s=%s (the checkpoint had %s)", name, key, value, old.get(key))

    # -- signals -------------------------------------------------------------------------------
    def _should_stop(self) -> bool:
        """A signal stops this process at the next step; torchrun's ranks agree on it at every
        _sync_every-th step (one all-reduce and read), so that all stop at the same step."""
        if self.world_size > 1:
            if self.step % self._sync_every:
                return False
            return distributed.any_rank(self._signal is not None, self.device)
        return self._signal is not None

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGINT (Ctrl-C) and SIGTERM (cluster preemption) finish the current step, then the
        loop saves last.pt and returns; a second Ctrl-C aborts at once, or right after a
        checkpoint write in progress."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._signal is not None and signum == signal.SIGINT:
                self.checkpoints.abort()  # at once, or right after the checkpoint write in progress
                return
            self._signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        if isinstance(previous[signal.SIGINT], StartUpInterrupts) and previous[signal.SIGINT].tripped:  # swallowed on the way
            self._signal = signal.SIGINT
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
