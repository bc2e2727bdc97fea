"""Checkpoints: one file holds everything to continue bit-exactly, written atomically (the
trainer's through CheckpointWriter), read with torch.load(weights_only=True), and its config
checked against genlab's allow list (genlab.allowlist) before anything is built from it:
opening a file never runs code from it."""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError, Interrupted
from genlab.atomic import NoSpaceError, atomic_write, link_or_copy, remove_stale_temporaries
from genlab.allowlist import check_stored_config

log = logging.getLogger(__name__)

FORMAT = 1


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory (-> its checkpoints/last.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
    if not p.is_file():
        raise GenlabError(f"no checkpoint at {path}; pass a run directory (with checkpoints/last.pt) or a .pt file")
    return p


def save(state: dict, path: Path) -> None:
    """Serialise `state` to `path` atomically (genlab.atomic): a crash at any moment leaves
    either the old file or the new one, never half of one."""
    atomic_write(path, lambda f: torch.save(state, f))


class CheckpointWriter:
    """A run's checkpoints/ folder as the trainer writes it: best.pt, and last.pt with the
    keep_last newest step_<step>.pt files (the same file under both names), each written
    atomically, so a crash, a kill -9 or a full disk leaves the previous file whole. A periodic
    checkpoint is held back (`hold`) until the trainer has read the losses of the next step,
    which ran on its weights, and found them finite (`publish_held`): no checkpoint holds
    weights that have already diverged. A second Ctrl-C (`abort`) stops at once, or right
    after a write in progress, never halfway through one."""

    def __init__(self, folder: Path, keep_last: int = 0):
        self.folder, self.keep_last = Path(folder), int(keep_last)
        self._held: tuple[int, bytes] | None = None  # (step, serialised state) waiting for that step's losses
        self._writing, self._abort = False, False  # a write in progress; a second Ctrl-C during it

    def path(self, best: bool = False) -> Path:
        return self.folder / ("best.pt" if best else "last.pt")

    def remove_stale_temporaries(self) -> None:
        for tmp in remove_stale_temporaries(self.folder):
            log.info("removed %s, left by an interrupted checkpoint write", tmp)

    def save(self, step: int, state: dict, best: bool = False) -> Path:
        """Write `state` now: as best.pt, or as last.pt (and its step file)."""
        self._write(step, _serialize(state), best)
        return self.path(best)

    def hold(self, step: int, state: dict) -> None:
        """Serialise `state` now (training goes on changing it) and keep it until publish_held."""
        self._held = (step, _serialize(state))

    @property
    def holding(self) -> bool:
        return self._held is not None

    def publish_held(self) -> None:
        """Write the held-back checkpoint; its caller has found the losses of its step finite."""
        if self._held is not None:
            (step, data), self._held = self._held, None
            self._write(step, data)

    def discard_held(self) -> None:
        """Drop the held-back checkpoint: a loss it led to is not finite, the run is aborted,
        or a later save writes the same or a later state."""
        self._held = None

    def abort(self) -> None:
        """A second Ctrl-C: raise Interrupted now, or, during a write, as soon as it is done."""
        if self._writing:
            self._abort = True
            return
        raise Interrupted

    def describe_last(self) -> str:
        """'the previous checkpoint <last.pt> (step N) is intact', or 'there is no checkpoint yet'."""
        last = self.path()
        if not last.is_file():
            return "there is no checkpoint yet"
        try:
            step = torch.load(last, map_location="cpu", weights_only=True)["step"]
        except Exception:
            return f"the previous checkpoint {last} is intact"
        return f"the previous checkpoint {last} (step {step}) is intact"

    def _write(self, step: int, data: bytes, best: bool = False) -> None:
        """Publish a serialised state as best.pt, or as the step file and last.pt. A second
        Ctrl-C meanwhile waits for the write to finish; a full disk keeps the previous file."""
        self._writing = True
        try:
            write = lambda f: f.write(data)  # noqa: E731
            if best or self.keep_last <= 0:
                atomic_write(self.path(best), write)
                return
            step_file = self.folder / f"step_{step:07d}.pt"
            atomic_write(step_file, write)
            link_or_copy(step_file, self.path())  # serialised once, published under both names
            for old in sorted(self.folder.glob("step_*.pt"))[:-self.keep_last]:
                old.unlink()
        except NoSpaceError as e:
            raise NoSpaceError(f"no space left on {e.device} writing the checkpoint of step {step}; {self.describe_last()}", e.device) from None
        finally:
            self._writing = False
            if self._abort:
                raise Interrupted


def _serialize(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def load(path: str | os.PathLike) -> tuple[dict, Path]:
    """(state, file path) of a genlab checkpoint (or of a `genlab export format=safetensors`
    folder), or one clear GenlabError."""
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file() and (folder / "contract.json").is_file():
        from genlab.exported import read_safetensors

        state, p = read_safetensors(folder), folder / "config.json"
    else:
        p = resolve(path)
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated zip, pickle with code in it, not a torch file at all
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise GenlabError(f"cannot read checkpoint {p}: it is corrupt or not a genlab checkpoint ({first})") from None
    if not isinstance(state, dict) or "genlab_format" not in state:
        raise GenlabError(f"{p} is not a genlab checkpoint (no genlab_format key); pass a file written by genlab train")
    if state["genlab_format"] > FORMAT:
        raise GenlabError(f"{p} was written by a newer genlab (format {state['genlab_format']}); upgrade genlab")
    if not isinstance(state.get("config"), dict):
        raise GenlabError(f"{p} holds no run config; pass a checkpoint written by genlab train")
    check_stored_config(state["config"], str(p))
    choices = state.get("choices", {})
    if not (isinstance(choices, dict) and all(isinstance(k, str) and isinstance(v, (str, type(None))) for k, v in choices.items())):
        raise GenlabError(f"{p} has malformed config-group choices; pass a checkpoint written by genlab train")
    return state, p


def load_model_state(model: nn.Module, state_dict: dict, path: Path) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        detail = str(e).splitlines()[0]
        raise GenlabError(f"checkpoint {path} holds a different model than the one configured ({detail}); "
                          "use the model and sizes it was trained with") from None


def rng_state() -> dict:
    """Every random generator the training touches, as tensors and plain containers."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {**np_state, "state": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)), "pos": np_state["state"]["pos"]}},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": state["numpy"]["state"]["key"].numpy().astype(np.uint32), "pos": state["numpy"]["state"]["pos"]}
    np.random.set_state(np_state)
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def load_trained(path: str | os.PathLike, device: torch.device, use_ema: bool = True):
    """(model in its test mode on device, its training config, checkpoint state, file, "ema" | "live"):
    the model is rebuilt from the config inside the checkpoint, with the EMA weights where
    the checkpoint has them and use_ema is set."""
    from omegaconf import OmegaConf

    from genlab.config import build

    state, p = load(path)
    cfg = OmegaConf.create(state["config"])
    model = build(cfg.model, "model")
    weights = "ema" if use_ema and state.get("ema") else "live"
    load_model_state(model, state[weights if weights == "ema" else "model"], p)
    return model.to(device).train(model.test_mode == "train"), cfg, state, p, weights
