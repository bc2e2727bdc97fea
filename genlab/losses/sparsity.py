"""Sparsity penalties on hidden *activations* h of shape (B, H), never on weights."""

import torch
from torch import Tensor

from genlab.errors import GenlabError

KINDS = ("l1", "kl")


def l1_activation_penalty(h: Tensor) -> Tensor:
    """Mean over the batch of sum_j |h_j|."""
    return h.abs().sum(1).mean()


def kl_sparsity_penalty(h: Tensor, rho: float, eps: float = 1e-6) -> Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j the mean activation of unit j
    over the batch; h must lie in (0, 1) (sigmoid units)."""
    rho_hat = h.mean(0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def sparsity_penalty(h: Tensor, kind: str, rho: float = 0.05) -> Tensor:
    if kind == "l1":
        return l1_activation_penalty(h)
    if kind == "kl":
        return kl_sparsity_penalty(h, rho)
    raise GenlabError(f"model.sparsity.kind={kind!r} is not one of {', '.join(KINDS)}")
