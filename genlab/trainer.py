"""THE training loop. Every optimizer step of every model family happens here: phases,
mixed precision, gradient clipping, EMA, schedulers, logging, sampling, evaluation and
checkpoint cadence, exact resume and graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import inspect
import io
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
from genlab.version import __version__
from genlab.errors import GenlabError, Interrupted, RunError, StartUpInterrupts
from genlab.atomic import NoSpaceError, atomic_write, link_or_copy, remove_stale_temporaries
from genlab.data.loading import TrainStream
from genlab.device import autocast_context, check_precision, to_device
from genlab.ema import EMA
from genlab.losses.penalties import grad_scaler
from genlab.metrics.model_metrics import split_means
from genlab.metrics.registry import applies, image_metrics, metric, model_metrics, scalars
from genlab.models.base import GenerativeModel, SamplesPrior, in_test_mode
from genlab.reporting import Reporter, flatten

log = logging.getLogger(__name__)
# a loss term beyond this is diverging even while it is still finite (warned once per run)
DIVERGENCE_BOUND = 1e10
# with trainer.log_every=0: the losses are read, and torchrun ranks agree on a stop signal, every this many steps
STOP_CHECK_EVERY = 50


class Aborted(RunError):
    """A second Ctrl-C: stop now, after any checkpoint write in progress has finished."""

    exit_code = 130


def rng_sandbox(device: torch.device, seed: int):
    """Run a block on its own seeded RNG and leave the training RNG untouched, so that
    sampling and evaluation never change what training draws next (exact resume)."""
    devices = [device.index or 0] if device.type == "cuda" else []

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return ctx()


def total_steps(t: DictConfig, stream: TrainStream) -> int:
    """trainer.max_epochs epochs of the stream when set, else trainer.max_steps."""
    return int(t.max_epochs) * stream.batches_per_epoch if t.get("max_epochs") else int(t.max_steps)


def build_optimizers(model: GenerativeModel, optim: DictConfig, groups_cfg: DictConfig | None = None) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per named parameter group of the model, from the optim config (a
    _partial_ constructor) with the group's optim_groups.<group> settings on top, as the
    model adjusts them (`optimizer_settings`: lazy R1's Adam correction), which is logged."""
    groups = model.param_groups()
    for phase in model.phases:
        if phase.optimizer not in groups:
            raise GenlabError(f"phase {phase.name!r} names optimizer {phase.optimizer!r}, not a parameter group of {type(model).__name__}")
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
    """What every checkpoint carries besides the state: the run's resolved config (plain
    containers, rebuilt by eval, sample and resume) and its config-group choices."""

    config: dict
    choices: dict = field(default_factory=dict)


class Trainer:
    """The loop, given what it needs: the model; the training stream; the test split's loader;
    the run directory; the trainer settings (cfg.trainer); one optimizer (and schedule) per
    parameter group (build_optimizers, build_schedulers); the metric best.pt is kept by
    (`monitor`); the fixed batch every training grid shows; the reference images of the
    image metrics in trainer.eval_metrics (FID); the run's record; the logger config."""

    def __init__(self, model: GenerativeModel, stream: TrainStream, val_loader, run_dir: Path, settings: DictConfig,
                 optimizers: dict, schedulers: dict | None = None, *, monitor: tuple[str, str] | None = None,
                 grid_batch: dict | None = None, image_reference=None, record: RunRecord | None = None, logger: DictConfig | None = None):
        t = settings
        self.t, self.run_dir = t, Path(run_dir)
        self.record = record or RunRecord({})
        self.rank, self.world_size, self.device = distributed.setup(t.device)
        self.is_main = self.rank == 0
        self.precision = check_precision(t.precision, self.device)
        self.model = model.to(self.device)  # in place: the optimizers' parameters are the model's
        self.channels_last = bool(t.get("channels_last", False))
        if self.channels_last:  # NHWC convolutions: faster for some conv nets and devices (scripts/bench_train.py --overrides trainer.channels_last=true)
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.world_size > 1:
            distributed.broadcast_state(self.model)
        self.stream, self.val_loader = stream, val_loader
        self.total_steps = total_steps(t, stream)
        self.groups = model.param_groups()
        self.optimizers, self.schedulers = optimizers, schedulers or {}
        # fp16: one gradient scaler per optimizer (the AMP docs' recipe for several models and
        # optimizers), each updated after its own optimizer's step
        self.scalers = {n: torch.amp.GradScaler(self.device.type) for n in optimizers} if self.precision == "fp16" else {}
        if t.get("ema_decay") and not model.ema_modules:
            raise GenlabError(f"trainer.ema_decay={t.ema_decay} does not apply: {type(model).__name__} keeps no EMA of its weights; drop it")
        self.ema = EMA(self.model, float(t.ema_decay), t.get("ema_rampup")) if t.get("ema_decay") else None
        if t.get("compile"):
            adversarial = getattr(model, "adversarial", None)
            if adversarial is not None and (adversarial.gp_weight or adversarial.r1_gamma):
                which, key = ("gradient penalty", "gp_weight") if adversarial.gp_weight else ("R1 penalty", "r1_gamma")
                raise GenlabError(f"trainer.compile=true cannot train with the {which}: it differentiates the discriminator's gradient "
                                  f"(double backward), which torch.compile does not support; drop trainer.compile or set loss.{key}=0")
            for child in self.model.children():
                child.compile()  # in place: state_dict keys keep their names

        # per optimizer: the trainable parameters outside its group, frozen during its phases
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        own = {n: {id(p) for p in ps} for n, ps in self.groups.items()}
        self._frozen = {n: [p for p in trainable if id(p) not in ids] for n, ids in own.items()}
        self._grad_clip = float(t.grad_clip) if t.get("grad_clip") else None  # read once: a DictConfig lookup costs ~0.1 ms
        self.eval_metrics = list(t.get("eval_metrics") or [])
        # genlab eval's model metrics where they apply (modes on 2-D mixtures), else image metrics (FID...)
        self._model_metrics = [m for m in self.eval_metrics if m in model_metrics()]
        self._image_metric_names = [m for m in self.eval_metrics if m not in model_metrics()]
        applicable = [m for m, declared in model_metrics().items() if applies(declared, model, val_loader.dataset)]
        for name in self.eval_metrics:
            if name not in image_metrics() and name not in applicable:
                needs = f" ({name} needs {metric(name).requires})" if name in model_metrics() and metric(name).requires else ""
                raise GenlabError(f"trainer.eval_metrics has {name!r}{needs}; choose from {', '.join([*image_metrics(), *applicable])}")
        if self._image_metric_names and not (isinstance(model, SamplesPrior) and model.samples_images):
            raise GenlabError(f"trainer.eval_metrics={self._image_metric_names} needs a model that samples images, which {type(model).__name__} "
                              "does not; drop it (genlab eval computes FID of translation models per direction)")
        if self._image_metric_names and image_reference is None:
            raise GenlabError(f"trainer.eval_metrics={self._image_metric_names} needs reference images; give the trainer image_reference")
        self.grid_batch, self.image_reference, self._image_quality = grid_batch, image_reference, None
        self.monitor = monitor
        self.step, self.best, self.last_val = 0, None, {}
        self.reporter = Reporter(self.run_dir, logger, write=self.is_main, config=self.record.config)
        self._signal = None
        self._writing, self._abort = False, False  # a checkpoint write in progress; a second Ctrl-C during it
        self._pending: tuple[int, bytes] | None = None  # a checkpoint that waits for its step's losses
        self._warned_divergence = False
        # (step, phase, loss) of the phases since the losses were last read: read together, at a
        # log step or before a checkpoint is published, so that no step waits for the device
        self._losses: list[tuple[int, str, torch.Tensor]] = []

    # -- checkpoints -------------------------------------------------------------------------
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
            "best": self.best,
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
        self.step, self.best = int(state["step"]), state.get("best")
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

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def save_checkpoint(self, best: bool = False) -> Path:
        """Write the state now (rank 0 only: all ranks hold the same state)."""
        name = "best.pt" if best else "last.pt"
        if self.is_main:
            self._write(self.step, self._serialize(), best)
        return self.ckpt_dir / name

    def _serialize(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return buffer.getvalue()

    def _write(self, step: int, data: bytes, best: bool = False) -> None:
        """Publish a serialised state as best.pt, or as the step file and last.pt. A second
        Ctrl-C meanwhile waits for the write to finish; a full disk keeps the previous file."""
        self._writing = True
        try:
            write = lambda f: f.write(data)  # noqa: E731
            if best:
                atomic_write(self.ckpt_dir / "best.pt", write)
                return
            last = self.ckpt_dir / "last.pt"
            keep = int(self.t.get("keep_last", 0))
            if keep <= 0:
                atomic_write(last, write)
                return
            step_file = self.ckpt_dir / f"step_{step:07d}.pt"
            atomic_write(step_file, write)
            link_or_copy(step_file, last)  # serialised once, published under both names
            for old in sorted(self.ckpt_dir.glob("step_*.pt"))[:-keep]:
                old.unlink()
        except NoSpaceError as e:
            raise NoSpaceError(f"no space left on {e.device} writing the checkpoint of step {step}; {self._last_checkpoint()}", e.device) from None
        finally:
            self._writing = False
            if self._abort:
                raise Interrupted

    def _checkpoint_when_confirmed(self) -> None:
        """A periodic checkpoint is held back until the next step has run on its weights with
        finite losses, so that no checkpoint holds weights that have already diverged."""
        if self.is_main:
            self._pending = (self.step, self._serialize())

    def _flush_pending(self) -> None:
        if self._pending is not None:
            self._check_losses()  # the held-back weights' own step and every step before it
            step, data = self._pending
            self._pending = None
            self._write(step, data)

    def _last_checkpoint(self) -> str:
        last = self.ckpt_dir / "last.pt"
        if not last.is_file():
            return "there is no checkpoint yet"
        try:
            step = torch.load(last, map_location="cpu", weights_only=True)["step"]
        except Exception:
            return f"the previous checkpoint {last} is intact"
        return f"the previous checkpoint {last} (step {step}) is intact"

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: tuple[dict, Path] | None = None) -> dict:
        try:
            return self._fit(resume)
        except KeyboardInterrupt:
            self._pending = None
            raise Aborted(f"aborted by a second Ctrl-C at step {self.step}; {self._last_checkpoint().replace('the previous', 'the last')}") from None

    def _fit(self, resume: tuple[dict, Path] | None) -> dict:
        if self.is_main:
            for tmp in remove_stale_temporaries(self.ckpt_dir):
                log.info("removed %s, left by an interrupted checkpoint write", tmp)
        if resume:
            self.load_state_dict(*resume)
            log.info("resumed from %s at step %d", resume[1], self.step)
        t, model = self.t, self.model
        fixed = to_device(self.grid_batch, self.device) if self.is_main and self.grid_batch is not None else None
        every = {k: int(t.get(k) or 0) for k in ("log_every", "sample_every", "eval_every", "ckpt_every")}
        # torchrun: the ranks agree on a stop (and rank 0's batch-norm statistics reach the others) at these steps only
        self._sync_every = every["log_every"] or STOP_CHECK_EVERY
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", dynamic_ncols=True, disable=not (t.get("progress_bar", True) and self.is_main))
        start, tick, tick_images, train_means = time.perf_counter(), time.perf_counter(), 0, {}
        model.train()
        with self._stop_on_signals(), self._losses_first():
            while self.step < self.total_steps and not self._should_stop():
                if self.world_size > 1:  # per-rank noise, a pure function of (seed, step, rank): resumable
                    torch.manual_seed((int(t.seed) * 1_000_003 + self.step) * self.world_size + self.rank)
                batch = self._batch()
                ctx = {"step": self.step}
                for phase in model.phases:
                    if not phase.active(self.step):
                        continue
                    for r in range(phase.repeats_at(self.step)):
                        self._run_phase(phase, batch if r == 0 else self._batch(), ctx)
                for s in self.schedulers.values():
                    s.step()
                if self.world_size > 1 and (self.step + 1) % self._sync_every == 0:
                    distributed.broadcast_buffers(model)
                if self.ema:
                    self.ema.update(model, self.step)
                self._flush_pending()  # this step ran on the held-back weights with finite losses
                self.step += 1
                tick_images += self.stream.batch_size
                bar.update(1)
                if every["log_every"] and self.step % every["log_every"] == 0:
                    now = time.perf_counter()
                    self._check_losses()
                    train_means = self.reporter.means()
                    self._check_divergence(train_means)
                    perf = {"perf/images_per_s": tick_images / (now - tick), "epoch": float(self.stream.epoch)}
                    lrs = {f"lr/{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()}
                    self.reporter.scalars(self.step, train_means | lrs | perf)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in train_means.items() if k.endswith("loss")} | {"img/s": f"{perf['perf/images_per_s']:.0f}"})
                    tick, tick_images = now, 0
                elif self.step % self._sync_every == 0:  # log_every=0: the unread losses stay few all the same
                    self._check_losses()
                if every["sample_every"] and self.step % every["sample_every"] == 0:
                    self._visuals(fixed)
                if every["eval_every"] and self.step % every["eval_every"] == 0:
                    self._validate()
                if every["ckpt_every"] and self.step % every["ckpt_every"] == 0:
                    self._checkpoint_when_confirmed()
            self._check_losses()  # nothing below publishes weights that gave a non-finite loss
        bar.close()
        self._pending = None  # the final save below writes the same or a later state
        if self.world_size > 1 and self._signal is None and self.step < self.total_steps:
            self._signal = signal.SIGTERM  # another rank was stopped
        interrupted = signal.Signals(self._signal).name if self._signal else None
        if not interrupted:  # the end-of-run pictures, numbers and hparams
            self._visuals(fixed)
            if not (every["eval_every"] and self.step % every["eval_every"] == 0):
                self._validate()
            config = self.record.config
            self.reporter.hparams(flatten(config.get("model", {}), "model.") | flatten({"optim": config.get("optim", {})}), self.last_val)
        last = self.save_checkpoint()
        self.reporter.close()
        if interrupted:
            log.warning("stopped by %s at step %d; %s holds the state, resume with: genlab train resume=%s", interrupted, self.step, last, self.run_dir)
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": str(last),
            "step": self.step,
            "train": train_means,
            "val": self.last_val,
            "best": self.best,
            "interrupted": interrupted,
            "wall_s": time.perf_counter() - start,
        }

    def _run_phase(self, phase, batch: dict, ctx: dict) -> None:
        """One optimizer step on the phase's parameter group; every other parameter is frozen
        so no gradient leaks into another network."""
        frozen = self._frozen[phase.optimizer]
        for p in frozen:
            p.requires_grad_(False)
        opt, scaler = self.optimizers[phase.optimizer], self.scalers.get(phase.optimizer)
        opt.zero_grad(set_to_none=True)
        with autocast_context(self.device, self.precision), grad_scaler(scaler):
            loss, logs = self.model.training_step(batch, phase.name, ctx)
        self._losses.append((self.step, phase.name, loss.detach()))  # checked at the next read (_check_losses)
        (scaler.scale(loss) if scaler else loss).backward()
        if self.world_size > 1:
            distributed.average_gradients(self.groups[phase.optimizer], self.world_size)
        prefix = "train/" if len(self.model.phases) == 1 else f"train/{phase.name}/"
        if self._grad_clip:
            if scaler:
                scaler.unscale_(opt)
            norm = torch.nn.utils.clip_grad_norm_(self.groups[phase.optimizer], self._grad_clip)
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
                self._pending = None  # it holds weights that gave this loss or came after it
                fixes = "lower optim.lr or set trainer.grad_clip" + ("" if self.precision == "32" else ", or use trainer.precision=32")
                raise RunError(f"the loss of phase {name!r} is {value} at step {step}; "
                               f"{self._last_checkpoint().replace('the previous', 'the last good')}; {fixes}")
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

    @property
    def eval_model(self) -> GenerativeModel:
        """The EMA weights where the model keeps them, else the live ones."""
        return self.ema.module if self.ema else self.model

    def _batch(self) -> dict:
        batch = to_device(next(self.stream), self.device)
        if self.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v for k, v in batch.items()}
        return batch

    def _should_stop(self) -> bool:
        """A signal stops this process at the next step; torchrun's ranks agree on it at every
        _sync_every-th step (one all-reduce and read), so that all stop at the same step."""
        if self.world_size > 1:
            if self.step % self._sync_every:
                return False
            return distributed.any_rank(self._signal is not None, self.device)
        return self._signal is not None

    @contextlib.contextmanager
    def _evaluating(self):
        """The evaluation model in its test mode (models.base.in_test_mode: its buffers unchanged
        afterwards), on its own seeded RNG, at the training precision."""
        with in_test_mode(self.eval_model) as model, rng_sandbox(self.device, int(self.t.seed)), autocast_context(self.device, self.precision):
            yield model

    def _visuals(self, fixed: dict) -> None:
        if not self.is_main:
            return
        self._check_losses()
        with self._evaluating() as model:
            visuals = model.visuals(fixed)
        self.reporter.images(self.step, visuals, self.run_dir / "samples")

    def _validate(self) -> None:
        if not self.is_main:
            return
        self._check_losses()  # best.pt is never written from weights that gave a non-finite loss
        with self._evaluating() as model:
            means = split_means(model, self.val_loader, self.device, self.t.get("eval_batches"))
            for name in self._model_metrics:
                means |= scalars(metric(name).compute(model, self.val_loader, self.device, self.t))
            if self._image_metric_names:
                means |= self._image_metrics(model)
        self.last_val = {f"val/{k}": v for k, v in means.items()}
        self.reporter.scalars(self.step, self.last_val)
        if self.monitor is None:
            return
        name, mode = self.monitor
        value = self.last_val.get(name)
        if value is None:
            raise GenlabError(f"trainer.monitor={name} is not among the validation metrics {sorted(self.last_val)}")
        if self.best is None or (value < self.best["value"] if mode == "min" else value > self.best["value"]):
            self.best = {"name": name, "value": value, "step": self.step}
            self.save_checkpoint(best=True)

    def _image_metrics(self, model) -> dict[str, float]:
        """FID (and IS, KID, PR) of eval_samples samples against the reference images, whose
        statistics are kept after the first evaluation (and cached on disk)."""
        from genlab.metrics.classes import image_quality_for
        from genlab.metrics.image_quality import model_source

        inc, n = self.t.inception, int(self.t.eval_samples)
        if self._image_quality is None:  # trainer.features: the Inception network, or a data set's classifier
            self._image_quality = image_quality_for(self.t, self.device, model.sample_shape[-1], progress=False)
        out = self._image_quality.compare(model_source(model, n, int(inc.batch_size)), self.image_reference, self._image_metric_names)
        return {k: v for k, v in out.items() if not k.startswith("n_")}

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
                if self._writing:  # let the checkpoint write finish, then stop
                    self._abort = True
                    return
                raise Interrupted
            self._signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        if isinstance(previous[signal.SIGINT], StartUpInterrupts) and previous[signal.SIGINT].tripped:  # swallowed on the way
            self._signal = signal.SIGINT
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
