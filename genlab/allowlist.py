"""The allow list of what a config read from disk (a checkpoint's, an exported folder's) may
build. Opening a checkpoint must never run code from it, so a _target_ is allowed only by its
exact name, and only when it names:

- a class defined in a module of one of genlab's component packages and derived from that
  package's base (COMPONENT_BASES: the models, the adversarial component and its objectives,
  the networks, the data sets), so a new family or loss in genlab needs no entry here;
- one of the functions and torch optimizers in NAMED;
- a class of the user's own (a model family, objective, network or data set) that their code
  registered with `register`, or that an installed package of theirs declares under the
  `genlab.allowlist` entry point group (`FlatGAN = "mypkg.models:FlatGAN"`), which is how
  the CLI's eval, sample, export and resume read such a run back.

Nothing is trusted by prefix: genlab.checkpoint.os.system, torch.load, a helper class of a
genlab module that is not a component, or an unregistered class of the user's are refused
like any other stranger. A test checks that every _target_ in configs/ is allowed."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable, Set

from genlab.errors import GenlabError

# the component packages and the base a class of theirs derives from (by dotted name: imported
# only when a stored config is checked)
COMPONENT_BASES = {
    "genlab.models": ("genlab.models.base.GenerativeModel",),
    "genlab.losses": ("genlab.losses.adversarial.AdversarialLoss", "genlab.losses.adversarial.Objective"),
    "genlab.nets": ("torch.nn.Module",),
    "genlab.data": ("torch.utils.data.Dataset",),
}
# the targets that are not classes of the component packages
NAMED = frozenset({
    # learning-rate schedules
    "genlab.schedules.warmup_cosine",
    "genlab.schedules.constant_then_linear",
    "genlab.schedules.step_decay",
    # optimizers
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.SGD",
    "torch.optim.RMSprop",
})
_registered: set[str] = set()


def _object(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@functools.cache
def _bases(package: str) -> tuple[type, ...]:
    return tuple(_object(name) for name in COMPONENT_BASES[package])


@functools.cache
def _component_modules() -> dict[str, str]:
    """{module: its component package} of every module in the packages' folders (listed, not imported)."""
    return {f"{package}.{m.name}": package for package in COMPONENT_BASES
            for m in pkgutil.iter_modules(importlib.import_module(package).__path__) if not m.ispkg}


def _is_component(target: str) -> bool:
    module, _, name = target.rpartition(".")
    package = _component_modules().get(module)
    if package is None:
        return False
    obj = vars(importlib.import_module(module)).get(name)  # a genlab module listed above: importing it runs genlab's code only
    return isinstance(obj, type) and obj.__module__ == module and obj.__qualname__ == name and issubclass(obj, _bases(package))


@functools.cache
def _derived() -> frozenset[str]:
    return frozenset(f"{module}.{name}" for module in _component_modules() for name in list(vars(importlib.import_module(module)))
                     if _is_component(f"{module}.{name}"))


@functools.cache
def _declared() -> frozenset[str]:
    """The classes installed packages declare under the genlab.allowlist entry point group, by name (nothing is imported)."""
    from importlib.metadata import entry_points

    return frozenset(ep.value.replace(":", ".") for ep in entry_points(group="genlab.allowlist"))


class AllowList(Set):
    """The targets a stored config may build, as a set: `target in ALLOWED_TARGETS` imports at
    most the one genlab component module the name points into; iterating lists them all."""

    def __contains__(self, target) -> bool:
        return isinstance(target, str) and (target in NAMED or target in _registered or target in _declared() or _is_component(target))

    def __iter__(self):
        return iter(sorted(NAMED | _registered | _declared() | _derived()))

    def __len__(self) -> int:
        return len(NAMED | _registered | _declared() | _derived())

    @classmethod
    def _from_iterable(cls, it: Iterable) -> frozenset:
        return frozenset(it)


ALLOWED_TARGETS = AllowList()


def register(*classes: type) -> None:
    """Let stored configs build these classes of your own code (an adversarial family, an
    objective, a network, a data set: subclasses of the bases in COMPONENT_BASES, defined at
    module level): call it before genlab.load, genlab.evaluate.run, genlab.sample.run or a
    resumed genlab.train.run reads a checkpoint whose config names them. Training from your own
    config needs no registration; reading one back does."""
    bases = tuple(base for package in COMPONENT_BASES for base in _bases(package))
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, bases)) or "<" in cls.__qualname__:
            raise GenlabError(f"genlab.allowlist.register takes classes defined at module level that derive from "
                              f"{', '.join(n for names in COMPONENT_BASES.values() for n in names)}; got {cls!r}")
        _registered.add(f"{cls.__module__}.{cls.__qualname__}")


# Hydra's instantiation keys and the values a stored config may give them
_SPECIAL_KEYS = {"_partial_": (True, False), "_recursive_": (True, False), "_convert_": ("none", "partial", "object", "all")}


def check_stored_config(node, source: str, where: str = "") -> None:
    """Refuse, in one line, anything in a config read from `source` that could make building
    it run code: a _target_ off the allow list, odd values of Hydra's special keys, and
    interpolations (a stored config is saved resolved; `${...}` there was put by hand)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and target not in ALLOWED_TARGETS:
            raise GenlabError(f"refusing {where + '.' if where else ''}_target_={target} from {source}: not a genlab component")
        for key, value in node.items():
            key = str(key)
            path = f"{where}.{key}" if where else key
            if key.startswith("_") and key.endswith("_") and key not in ("_target_", "_args_"):
                if key not in _SPECIAL_KEYS or value not in _SPECIAL_KEYS[key]:
                    raise GenlabError(f"refusing {path}={value!r} from {source}: not a setting a genlab config uses")
            check_stored_config(value, source, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_stored_config(value, source, f"{where}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise GenlabError(f"refusing {where}={node!r} from {source}: a stored config holds resolved values, not interpolations")
