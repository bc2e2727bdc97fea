"""Multi-GPU and multi-node training through torch.distributed, launched by torchrun.

Every rank holds the whole model and its own shard of each batch; after each phase's
backward the phase's gradients are averaged across ranks with one all-reduce (as in
StyleGAN3's training loop, which also steps several networks in phases), so every
optimizer sees the gradient of the global batch and the replicas stay identical."""

from __future__ import annotations

import logging
import os
import warnings

import torch
import torch.distributed as dist

from genlab.device import select_device


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def quiet_other_ranks() -> None:
    """Only rank 0 talks: the other ranks log errors only and show no Python warnings (rank 0
    shows the same ones), so a torchrun job prints its start and step lines once."""
    if world()[0] == 0:
        return
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def setup(device_name: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group torchrun set up: NCCL with one GPU per process, or gloo on CPUs."""
    rank, size, local = world()
    if size == 1:
        return 0, 1, select_device(device_name)
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, size, device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_state(module: torch.nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers equal to rank src's."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Batch-norm statistics follow rank src (they see only the local shard)."""
    for b in module.buffers():
        dist.broadcast(b, src)


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average the gradients of `params` over all ranks, in one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any (all ranks stop at the same step)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
