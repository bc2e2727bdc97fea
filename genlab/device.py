"""Devices, precision and moving batches."""

from __future__ import annotations

import contextlib
import logging
import os
import time

import torch

from genlab.errors import GenlabError

log = logging.getLogger(__name__)
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


def cores() -> int:
    """The CPU cores this process may run on (taskset, cgroups, Slurm's allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def concurrent_jobs(n_cores: int) -> tuple[int, str]:
    """(genlab processes that run side by side on this machine, who says so): torchrun's
    local ranks (LOCAL_WORLD_SIZE), else the joblib launcher's n_jobs of a sweep (joblib's
    rule: -1 is every core, -2 all but one), else 1."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if local > 1:
        return local, f"{local} torchrun ranks"
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        launcher = HydraConfig.get().get("launcher") or {}
        if "joblib" in str(launcher.get("_target_", "")):
            n = int(launcher.get("n_jobs") or 1)
            n = max(1, n_cores + 1 + n if n < 0 else n)
            return n, f"hydra.launcher.n_jobs={launcher.get('n_jobs')}"
    return 1, "one job"


def thread_share(n_cores: int, jobs: int) -> int:
    """Intra-op threads per job: the cores shared evenly, at least one. Two jobs with every
    core each collapse (OpenMP threads spin-wait for a descheduled peer: the VAE went from
    20 to 1-3 it/s beside one other genlab process on 2 cores, 8 it/s with one thread each)."""
    return max(1, n_cores // jobs)


def share_cores(trainer_cfg, data_cfg) -> None:
    """Set torch's intra-op threads: trainer.threads when given; else, in a joblib sweep or
    under torchrun, OMP_NUM_THREADS where set (joblib's workers get cores // n_jobs in it
    unless the user set it) or this job's share of the cores, with data.num_workers capped
    to match (at most threads - 1 loader processes), said in one line; else torch's default.
    Torchrun sets OMP_NUM_THREADS=1 itself when it is unset: that one is not taken."""
    threads = trainer_cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
        log.info("threads=%d (trainer.threads)", int(threads))
        return
    n_cores = cores()
    jobs, why = concurrent_jobs(n_cores)
    if jobs == 1:
        return  # OMP_NUM_THREADS if set, else every core
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp and not (omp == "1" and int(os.environ.get("LOCAL_WORLD_SIZE", 1)) > 1):
        threads, source = torch.get_num_threads(), "OMP_NUM_THREADS"
    else:
        threads, source = thread_share(n_cores, jobs), "the cores shared"
        torch.set_num_threads(threads)
    workers = int(data_cfg.get("num_workers") or 0)
    if workers > threads - 1:
        data_cfg.num_workers = workers = max(0, threads - 1)
    log.info("threads=%d (%s), data workers=%d: %d cores, %d concurrent jobs (%s); trainer.threads=N sets the threads",
             threads, source, workers, n_cores, jobs, why)
