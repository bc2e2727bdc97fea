"""Everything a user types is checked once, up front, and refused in one line that names the
key, the value and what is allowed: the command line before Hydra creates a run directory
(unknown keys with a "did you mean", `+key` additions nothing reads, unknown group options,
a resume path that does not exist), and the composed config's values against a small schema
(types and ranges of the keys users set), options the chosen model would ignore, and,
once the model is built, trainer options it cannot honour (check_trainer_options)."""

from __future__ import annotations

import difflib
import inspect
import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.errors import GenlabError


# -- the schema: what each key users set may hold --------------------------------------------
@dataclass(frozen=True)
class Int:
    min: int | None = None
    null: bool = False

    def check(self, value) -> str | None:
        if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, float) and value.is_integer()):
            return f"is not a whole number; give an integer{self._range()}"
        if self.min is not None and value < self.min:
            return f"is out of range; give an integer{self._range()}"
        return None

    def _range(self) -> str:
        return f" >= {self.min}" if self.min is not None else ""


@dataclass(frozen=True)
class Float:
    min: float | None = None  # inclusive
    gt: float | None = None  # exclusive
    lt: float | None = None  # exclusive
    null: bool = False

    def check(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"is not a finite number; give a number{self._range()}"
        if (self.min is not None and value < self.min) or (self.gt is not None and value <= self.gt) or (self.lt is not None and value >= self.lt):
            return f"is out of range; give a number{self._range()}"
        return None

    def _range(self) -> str:
        parts = [f">= {self.min}" if self.min is not None else "", f"> {self.gt}" if self.gt is not None else "", f"< {self.lt}" if self.lt is not None else ""]
        text = " and ".join(p for p in parts if p)
        return f" {text}" if text else ""


@dataclass(frozen=True)
class Choice:
    options: tuple
    null: bool = False

    def check(self, value) -> str | None:
        return None if str(value) in self.options else f"is not one of {', '.join(self.options)}"


@dataclass(frozen=True)
class Bool:
    null: bool = False

    def check(self, value) -> str | None:
        return None if isinstance(value, bool) else "is not true or false"


@dataclass(frozen=True)
class Pair:
    """Two numbers in [0, 1), e.g. Adam's betas."""

    null: bool = False

    def check(self, value) -> str | None:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(Float(min=0, lt=1).check(v) is None for v in value)
        return None if ok else "is not two numbers in [0, 1), e.g. [0.9,0.999]"


@dataclass(frozen=True)
class Metrics:
    """A list of registered metric names (genlab/metrics/registry.py), or of `also`."""

    also: tuple = ()
    null: bool = False

    def check(self, value) -> str | None:
        from genlab.metrics.registry import unknown

        if not isinstance(value, list):
            return "is not a list of metric names, e.g. [fid]"
        return next((problem for name in value if (problem := unknown(str(name), self.also))), None)


STEPS = Int(min=0)
SCHEMA: dict[str, dict[str, Any]] = {
    "train": {
        "trainer.max_steps": Int(min=1),
        "trainer.max_epochs": Int(min=1, null=True),
        "trainer.log_every": STEPS, "trainer.sample_every": STEPS, "trainer.eval_every": STEPS, "trainer.ckpt_every": STEPS,
        "trainer.keep_last": Int(min=0),
        "trainer.threads": Int(min=1, null=True),
        "trainer.seed": Int(min=0),
        "trainer.precision": Choice(("32", "bf16", "fp16")),
        "trainer.grad_clip": Float(gt=0, null=True),
        "trainer.ema_decay": Float(min=0, lt=1, null=True),
        "trainer.ema_rampup": Float(gt=0, null=True),
        "model.test_mode": Choice(("train", "eval")),
        "loss.critic_burst": Int(min=1, null=True),
        "loss.critic_burst_steps": Int(min=0),
        "loss.critic_burst_every": Int(min=1),
        "loss.lazy_adam_correction": Bool(),
        "trainer.eval_batches": Int(min=1, null=True),
        "trainer.eval_metrics": Metrics(),
        "trainer.eval_samples": Int(min=1),
        "trainer.stacked_samples": Int(min=1), "trainer.class_samples": Int(min=1, null=True),
        "trainer.features": Choice(("inception", "digits", "fashion_mnist", "mnist", "cifar10")),
        "trainer.monitor_mode": Choice(("auto", "min", "max")),
        "trainer.compile": Bool(), "trainer.channels_last": Bool(), "trainer.progress_bar": Bool(),
        "trainer.inception.batch_size": Int(min=1),
        "trainer.inception.resize": Choice(("tf", "pytorch_fid", "clean")),
        "trainer.pr_features": Choice(("vgg16", "inception")), "trainer.vgg16.download": Bool(),
        "optim.lr": Float(gt=0),
        "optim.weight_decay": Float(min=0),
        "optim.momentum": Float(min=0),
        "optim.alpha": Float(min=0, lt=1),
        "optim.betas": Pair(),
        "data.batch_size": Int(min=1),
        "data.image_size": Int(min=1),
        "data.num_workers": Int(min=0),
        "data.skip_bad_images": Bool(),
        "data.train_images": Int(min=1, null=True),
        "data.augment.hflip": Bool(),
        "data.augment.crop_padding": Int(min=0),
        "loss.n_critic": Int(min=1),
        "loss.gp_weight": Float(min=0),
        "loss.r1_gamma": Float(min=0),
        "loss.r1_every": Int(min=1),
        "loss.clip": Float(gt=0, null=True),
        "scheduler.warmup_steps": Int(min=0),
        "scheduler.step_size": Int(min=1),
        "scheduler.gamma": Float(gt=0),
        "scheduler.min_factor": Float(min=0),
        "scheduler.decay_start": Float(min=0),
        "scheduler.per_epoch": Bool(),
    },
    "eval": {
        "metrics": Metrics(also=("auto",)),
        "batch_size": Int(min=1), "max_images": Int(min=1, null=True), "seed": Int(min=0),
        "n_samples": Int(min=1), "n_real": Int(min=1, null=True), "mode_samples": Int(min=1),
        "is_splits": Int(min=1), "kid.subsets": Int(min=1), "kid.subset_size": Int(min=2), "pr_k": Int(min=1),
        "iw_samples": Int(min=1), "use_ema": Bool(),
        "stacked_samples": Int(min=1), "class_samples": Int(min=1, null=True),
        "features": Choice(("inception", "digits", "fashion_mnist", "mnist", "cifar10")),
        "inception.batch_size": Int(min=1), "inception.resize": Choice(("tf", "pytorch_fid", "clean")), "inception.download": Bool(),
        "pr_features": Choice(("vgg16", "inception")), "vgg16.download": Bool(),
    },
    "sample": {
        "n": Int(min=1), "ncol": Int(min=1), "seed": Int(min=0), "use_ema": Bool(), "gif": Bool(),
        "direction": Choice(("AtoB", "BtoA")),
        "interp.pairs": Int(min=1), "interp.steps": Int(min=2),
        "traverse.dims": Int(min=1), "traverse.steps": Int(min=2), "traverse.range": Float(gt=0),
        "chain.chains": Int(min=1), "chain.steps": Int(min=1), "chain.every": Int(min=1),
    },
}
_ABSENT = object()


def _get(cfg: DictConfig, key: str):
    """The value at a dotted key, _ABSENT where the config has no such key."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _ABSENT
        node = node[part]
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig,)) or OmegaConf.is_list(node) else node


def check_values(cfg: DictConfig, verb: str) -> None:
    """Every key of the verb's schema that the config has holds an allowed value."""
    for key, rule in SCHEMA.get(verb, {}).items():
        value = _get(cfg, key)
        if value is _ABSENT or (value is None and rule.null):
            continue
        problem = "is not set" if value is None else rule.check(value)
        if problem:
            raise GenlabError(f"{key}={value!r} {problem}")
    if verb == "train":
        groups = _get(cfg, "optim_groups")
        for group, settings in (groups if isinstance(groups, dict) else {}).items():
            for name in ("lr", "weight_decay"):
                if name in (settings or {}):
                    problem = SCHEMA["train"][f"optim.{name}"].check(settings[name])
                    if problem:
                        raise GenlabError(f"optim_groups.{group}.{name}={settings[name]!r} {problem}")


def check_applies(cfg: DictConfig, choices: dict, overrides: list[str]) -> None:
    """Options the chosen model would silently ignore are refused: an adversarial loss for a
    model whose class is no AdversarialModel."""
    from genlab.config import adversarial_model_configs, model_class
    from genlab.models.base import AdversarialModel

    cls = model_class(cfg.model)
    if cls is None or issubclass(cls, AdversarialModel):
        return
    model = choices.get("model") or cls.__name__
    if choices.get("loss") not in (None, "default"):
        raise GenlabError(f"loss={choices['loss']} does not apply to model={model}: only adversarial models "
                          f"({', '.join(adversarial_model_configs())}) use an adversarial loss; drop loss=")
    touched = [o for o in overrides if o.lstrip("+~").startswith("loss.")]
    if touched:
        raise GenlabError(f"{touched[0]} does not apply to model={model}: it has no adversarial loss; drop it")


def check_trainer_options(settings: DictConfig, model, dataset) -> None:
    """Trainer options the built model cannot honour are refused before training starts: an
    EMA of a model that keeps none, trainer.compile with a penalty that differentiates a
    gradient, and eval metrics that do not apply to the model and its test split."""
    name = type(model).__name__
    if settings.get("ema_decay") and not model.ema_modules:
        raise GenlabError(f"trainer.ema_decay={settings.ema_decay} does not apply: {name} keeps no EMA of its weights; drop it")
    adversarial = getattr(model, "adversarial", None)
    if settings.get("compile") and adversarial is not None and (adversarial.gp_weight or adversarial.r1_gamma):
        which, key = ("gradient penalty", "gp_weight") if adversarial.gp_weight else ("R1 penalty", "r1_gamma")
        raise GenlabError(f"trainer.compile=true cannot train with the {which}: it differentiates the discriminator's gradient "
                          f"(double backward), which torch.compile does not support; drop trainer.compile or set loss.{key}=0")
    metrics = list(settings.get("eval_metrics") or [])
    if not metrics:
        return
    from genlab.metrics.registry import applies, image_metrics, metric, model_metrics
    from genlab.models.base import SamplesPrior

    applicable = [m for m, declared in model_metrics().items() if applies(declared, model, dataset)]
    for wanted in metrics:
        if wanted not in image_metrics() and wanted not in applicable:
            needs = f" ({wanted} needs {metric(wanted).requires})" if wanted in model_metrics() and metric(wanted).requires else ""
            raise GenlabError(f"trainer.eval_metrics has {wanted!r}{needs}; choose from {', '.join([*image_metrics(), *applicable])}")
    images = [m for m in metrics if m not in model_metrics()]
    if images and not (isinstance(model, SamplesPrior) and model.samples_images):
        raise GenlabError(f"trainer.eval_metrics={images} needs a model that samples images, which {name} "
                          "does not; drop it (genlab eval computes FID of translation models per direction)")


# -- the command line, before Hydra creates anything ---------------------------------------
def check_command_line(verb: str, overrides: list[str], multirun: bool = False) -> None:
    """Refuse, in one line, what Hydra would reject with a multi-line message or accept and
    then ignore: unknown group options and keys (with the nearest real key), `+key` additions
    that nothing reads, a resume= path with no checkpoint; and, for a single run, bad values.
    A `hydra.searchpath=[...]` on the command line adds its folders' options, as it does for Hydra."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType, ValueType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise GenlabError(f"cannot parse the command line: {_first_line(e)}") from None
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        searchpath = [o.input_line for o in parsed if o.key_or_group == "hydra.searchpath"]
        loader = _Options(GlobalHydra.instance().config_loader(), verb, searchpath)
        groups = set(loader.list_groups(""))
        group_overrides, key_overrides = [], []
        for o in parsed:
            key = o.key_or_group
            if key in groups or "/" in key:
                _check_group_option(loader, key, o, ValueType)
                if not key.startswith("hydra"):
                    group_overrides.append(_first_choice(o, ValueType))
            elif not key.startswith("hydra."):
                key_overrides.append(o)
        try:
            base = compose(config_name=verb, overrides=[*searchpath, *group_overrides], return_hydra_config=True)
        except HydraException as e:
            raise GenlabError(_first_line(e)) from None
        choices = dict(base.hydra.runtime.choices)
        with_hydra = OmegaConf.to_container(base, resolve=False)
        with_hydra.pop("hydra", None)
        tree = with_hydra
        for o in key_overrides:
            _check_renamed(o.key_or_group)
            _check_key(o, tree, verb, OverrideType)
        resume = next((o.value() for o in key_overrides if o.key_or_group == "resume" and not o.is_sweep_override()), None)
        if verb == "train" and resume not in (None, "", "null"):
            from genlab import checkpoint

            checkpoint.resolve(resume)
            return  # the resumed run's config comes from its checkpoint, checked when loaded
        sweeps = [o for o in parsed if o.is_sweep_override()]
        if sweeps and not multirun:  # Hydra's own answer is five lines
            o = sweeps[0]
            raise GenlabError(f"{o.input_line} is a sweep; add -m to sweep over it, or give one value: a list as {o.key_or_group}=[{_listed(o)}], "
                              f"a string with commas quoted, '{o.key_or_group}=\"{_listed(o)}\"'")
        if multirun:
            return  # each job's values are checked when it runs
        try:
            cfg = compose(config_name=verb, overrides=[*searchpath, *(o.input_line for o in parsed if not o.key_or_group.startswith("hydra"))])
        except HydraException as e:
            raise GenlabError(_first_line(e)) from None
        check_values(cfg, verb)
        check_resolves(cfg, choices, loader)
    if verb == "train":
        check_applies(cfg, choices, overrides)


# keys a release renamed: the old name is refused in one line that gives the new one
RENAMED = {"inception.mode": "inception.resize", "trainer.inception.mode": "trainer.inception.resize"}


def _check_renamed(key: str) -> None:
    new = RENAMED.get(key.lstrip("+~"))
    if new:
        raise GenlabError(f"{key.lstrip('+~')} is now {new} (same values: tf, pytorch_fid, clean); give {new}=...")


class _Options:
    """The config groups and options Hydra's loader gives for the verb's config, with the
    folders of the command line's hydra.searchpath."""

    def __init__(self, loader, verb: str, searchpath: list[str]):
        self.loader, self.verb, self.searchpath = loader, verb, searchpath

    def list_groups(self, parent: str) -> list[str]:
        from hydra.core.object_type import ObjectType

        return self.loader.get_group_options(parent, ObjectType.GROUP, self.verb, self.searchpath)

    def get_group_options(self, group: str) -> list[str]:
        return self.loader.get_group_options(group, config_name=self.verb, overrides=self.searchpath)


def _listed(o) -> str:
    return o.input_line.split("=", 1)[1]


def check_resolves(cfg: DictConfig, choices: dict, loader=None) -> None:
    """Every interpolation resolves: a model that reads a key its data set does not have
    (model=pix2pix on one-domain data reads data.channels_A) is one line naming the sets that have it."""
    from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationKeyError as e:
        missing = e.msg.split("'")[1] if "'" in e.msg else str(e.msg)
        group = missing.split(".")[0]
        hint = ""
        if loader is not None and group in ("data", "model") and choices.get(group):
            having = [o for o in loader.get_group_options(group) if _option_has(group, o, missing.split(".", 1)[1])]
            hint = f"; choose a {'data set' if group == 'data' else group} that does: {', '.join(having)}" if having else ""
        raise GenlabError(f"{e.full_key} reads {missing}, which {group}={choices.get(group)} does not have{hint}") from None
    except InterpolationResolutionError as e:  # a resolver given a bad value
        raise GenlabError(f"{e.full_key} cannot be resolved: {str(e.msg).strip().splitlines()[0]}") from None


def _option_has(group: str, option: str, key: str) -> bool:
    from hydra import compose

    try:
        return OmegaConf.select(compose(config_name="train", overrides=[f"{group}={option}"])[group], key, default=None) is not None
    except Exception:  # an option that does not compose on its own
        return False


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _values(o, ValueType) -> list | None:
    if o.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        return list(o.value().list)
    if o.value_type == ValueType.ELEMENT:
        return [o.value()]
    return None  # glob, range: Hydra expands them


def _first_choice(o, ValueType) -> str:
    values = _values(o, ValueType)
    prefix = "+" if o.input_line.startswith("+") and not o.input_line.startswith("++") else ""
    return o.input_line if values is None or len(values) == 1 else f"{prefix}{o.key_or_group}={values[0]}"


def _check_group_option(loader, group: str, o, ValueType) -> None:
    # a group of sub-folders (experiment_loss/<experiment>/<loss>) has options like gan_ring8/wgan_gp
    options = loader.get_group_options(group) + [f"{sub}/{name}" for sub in loader.list_groups(group)
                                                 for name in loader.get_group_options(f"{group}/{sub}")]
    for value in _values(o, ValueType) or []:
        if value is None or str(value) in options:
            continue
        if not options:
            raise GenlabError(f"{group} is not a config group; genlab {o.input_line.split('=')[0]} has none")
        match = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]}?)" if match else ""
        extra = "; pip install genlab[sweep] (joblib, optuna) or genlab[slurm] (submitit) for the sweep plugins" if group.startswith("hydra/") else ""
        raise GenlabError(f"{group}={value} is not an option of {group}{hint}; choose one of {', '.join(options)}{extra}")


def _paths(node, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}{k}"
            out.append(path)
            out += _paths(v, path + ".")
    return out


def _lookup(tree, key: str):
    node = tree
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def _did_you_mean(key: str, candidates) -> str:
    match = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _nearest_key(key: str, tree) -> str:
    """The closest real key: a sibling with a similar name first, else any similar path."""
    parent, _, leaf = key.rpartition(".")
    node = _lookup(tree, parent) if parent else tree
    if isinstance(node, dict):
        match = difflib.get_close_matches(leaf, [str(k) for k in node], n=1, cutoff=0.6)
        if match:
            return f"; did you mean {parent + '.' if parent else ''}{match[0]}?"
    return _did_you_mean(key, _paths(tree))


def _check_key(o, tree, verb: str, OverrideType) -> None:
    key = o.key_or_group
    exists = _lookup(tree, key) is not _ABSENT
    if o.type == OverrideType.DEL and not exists:
        raise GenlabError(f"cannot delete {key}: not a key of the {verb} config{_nearest_key(key, tree)}")
    if o.type == OverrideType.CHANGE and not exists:
        if key.startswith("optim_groups."):
            raise GenlabError(f"per-group optimizer settings are added with a +: +{o.input_line}")
        raise GenlabError(f"unknown key {key} (in {o.input_line}){_nearest_key(key, tree)}")
    if o.type == OverrideType.ADD and exists:
        raise GenlabError(f"{key} is already a key of the {verb} config; set it without the +: {o.input_line.lstrip('+')}")
    if o.type in (OverrideType.ADD, OverrideType.FORCE_ADD) and not exists and not _addable(key, tree):
        raise GenlabError(f"{o.input_line} adds a key that nothing reads{_nearest_key(key, tree)}")


def _addable(key: str, tree) -> bool:
    """A new key is read by something: a per-group optimizer setting, or an argument that
    the parent's _target_ accepts."""
    parent, _, leaf = key.rpartition(".")
    if key.split(".")[0] == "optim_groups":
        return True
    node = _lookup(tree, parent) if parent else tree
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        return False
    from hydra.utils import get_object

    try:
        params = inspect.signature(get_object(node["_target_"])).parameters
    except Exception:  # not importable or no signature: let instantiation say so
        return True
    return leaf in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
