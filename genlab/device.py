"""Devices, precision and moving batches."""

from __future__ import annotations

import contextlib

import torch

from genlab import GenlabError

PRECISIONS = ("32", "bf16", "fp16")


def select_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; any other name (cpu, cuda:1, ...) is taken as given."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise GenlabError(f"device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise GenlabError(f"device {name} was asked for but CUDA is not available here; use device auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast on CPU and CUDA, fp16 autocast on CUDA (with a grad scaler), or nothing."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def check_precision(precision, device: torch.device) -> str:
    precision = str(precision)
    if precision not in PRECISIONS:
        raise GenlabError(f"trainer.precision={precision} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise GenlabError("trainer.precision=fp16 needs a CUDA device; use trainer.precision=bf16 on CPU")
    return precision


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
