"""Discriminator regularisers, apart from the objectives they are added to."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

import torch
from torch import Tensor

# the fp16 gradient scaler of the phase being run (the trainer sets it), so that a penalty's
# input gradient is taken of the scaled output and unscaled after, as the AMP docs' gradient
# penalty recipe does: fp16 gradients of the unscaled output underflow
_SCALER: contextvars.ContextVar = contextvars.ContextVar("genlab_grad_scaler", default=None)


@contextlib.contextmanager
def grad_scaler(scaler):
    """Penalties in this block take their gradients through `scaler` (a torch.amp.GradScaler, or None)."""
    token = _SCALER.set(scaler)
    try:
        yield
    finally:
        _SCALER.reset(token)


def input_gradient(output: Tensor, x: Tensor) -> Tensor:
    """d(output.sum())/dx with a graph for the penalty's own backward; under an fp16 scaler,
    of the scaled output, divided by the scale."""
    scaler = _SCALER.get()
    if scaler is None or not scaler.is_enabled():
        return torch.autograd.grad(output.sum(), x, create_graph=True)[0]
    (grad,) = torch.autograd.grad(scaler.scale(output.sum()), x, create_graph=True)
    return grad / scaler.get_scale()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, target: float = 1.0) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E (||grad_x C(x_hat)||_2 - target)^2 at random
    interpolates x_hat = a x + (1 - a) G(z), a ~ U(0, 1) per sample. The norm is taken per
    sample over all of C, H, W (not per pixel)."""
    alpha = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    grad = input_gradient(critic(x_hat), x_hat)
    return (grad.float().flatten(1).norm(2, dim=1) - target).pow(2).mean()


def r1_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real data (times gamma / 2 by the caller)."""
    x = real.detach().requires_grad_(True)
    grad = input_gradient(discriminator(x), x)
    return grad.float().flatten(1).pow(2).sum(1).mean()
