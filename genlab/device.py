"""Devices, precision and moving batches."""

from __future__ import annotations

import contextlib
import time

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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 4096, repeats: int = 5) -> float:
    """The machine's dense matmul rate in FLOP/s (the best of `repeats` n x n products): the
    peak that the benchmark scripts state their share of, measured in the same run."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
