"""`genlab sample ckpt=...`: reconstruction grids, prior samples, linear and spherical latent
interpolations, per-dimension latent traversals and denoising Markov chains, as PNG grids
(and GIF animations) from a checkpoint."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor

from genlab import GenlabError, checkpoint
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.device import select_device
from genlab.images import interleave_rows, save_gif, save_grid

MODES = ("recon", "prior", "interp", "slerp", "traverse", "chain")


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Points (1 - t) a + t b for each t: a, b (B, D), t (T,) -> (B, T, D)."""
    t = t.view(1, -1, 1)
    return (1 - t) * a[:, None] + t * b[:, None]


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation along the great circle between a and b (White, 2016), with
    linear interpolation where they are (anti)parallel: a, b (B, D), t (T,) -> (B, T, D)."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1, 1)  # (B,)
    omega = torch.arccos(cos)[:, None, None]
    sin = torch.sin(omega)
    t = t.view(1, -1, 1)
    spherical = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin.clamp_min(eps)
    return torch.where(sin > 1e-4, spherical, lerp(a, b, t.view(-1)))


def supported_modes(model) -> list[str]:
    modes = ["recon", "interp", "slerp"] if hasattr(model, "encode") else []
    if model.can_sample:
        modes.append("prior")
    if hasattr(model, "latent_dim"):
        modes.append("traverse")
    if hasattr(model, "chain") and model.can_sample:
        modes.append("chain")
    return modes


def run(cfg: DictConfig) -> dict:
    device = select_device(cfg.device)
    model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, device, cfg.use_ema)
    supported = supported_modes(model)
    modes = supported if list(cfg.modes) in (["auto"], []) else list(cfg.modes)
    for mode in modes:
        if mode not in MODES:
            raise GenlabError(f"modes has {mode!r}; choose from {', '.join(MODES)} (or auto)")
        if mode not in supported:
            raise GenlabError(f"sample mode {mode!r} does not apply to {type(model).__name__}; it supports {', '.join(supported)}")
    out = cfg.get("out") or path.parent.parent / "samples" / path.stem
    ncol = int(cfg.ncol)
    seed_everything(int(cfg.seed))
    need = max(int(cfg.n), 2 * int(cfg.interp.pairs), int(cfg.chain.chains))
    x = next(iter(eval_loader(train_cfg.data, cfg.split, batch_size=need)))["image"].to(device)
    written = []
    with torch.no_grad():
        for mode in modes:
            written += MODE_FUNCTIONS[mode](model, x, cfg, out, ncol)
    for p in written:
        print(f"wrote {p}")
    return {"files": [str(p) for p in written], "checkpoint": str(path), "weights": weights}


def _recon(model, x, cfg, out, ncol):
    x = x[: _whole_rows(min(int(cfg.n), len(x)), ncol)]
    return [save_grid(interleave_rows([x, model.reconstruct(x)], ncol), f"{out}/recon.png", ncol)]


def _prior(model, x, cfg, out, ncol):
    return [save_grid(model.sample(int(cfg.n)), f"{out}/prior.png", ncol)]


def _interpolate(kind):
    def mode(model, x, cfg, out, ncol):
        pairs, steps = int(cfg.interp.pairs), int(cfg.interp.steps)
        if len(x) < 2 * pairs:
            raise GenlabError(f"the {cfg.split} split has {len(x)} images, fewer than 2 * interp.pairs={2 * pairs}")
        z = model.encode(x[: 2 * pairs]).flatten(1)
        path = (lerp if kind == "interp" else slerp)(z[:pairs], z[pairs:], torch.linspace(0, 1, steps, device=z.device))
        frames = model.decode(path.flatten(0, 1)).unflatten(0, (pairs, steps))  # (pairs, steps, C, H, W)
        files = [save_grid(frames.flatten(0, 1), f"{out}/{kind}.png", steps)]
        if cfg.gif:
            files.append(save_gif([frames[:, t] for t in range(steps)], f"{out}/{kind}.gif", ncol))
        return files

    return mode


def _traverse(model, x, cfg, out, ncol):
    """One row per latent dimension (the most informative first, by their mean KL on the
    split's images), sweeping it over [-range, range] from the first image's code."""
    mu, logvar = model.posterior(x)
    kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)
    dims = torch.argsort(kl_per_dim, descending=True)[: int(cfg.traverse.dims)]
    steps, r = int(cfg.traverse.steps), float(cfg.traverse.range)
    values = torch.linspace(-r, r, steps, device=mu.device)
    z = mu[:1].repeat(len(dims) * steps, 1).view(len(dims), steps, -1)
    for row, d in enumerate(dims):
        z[row, :, d] = values
    frames = model.decode(z.flatten(0, 1)).unflatten(0, (len(dims), steps))
    files = [save_grid(frames.flatten(0, 1), f"{out}/traverse.png", steps)]
    if cfg.gif:
        files.append(save_gif([frames[:, t] for t in range(steps)], f"{out}/traverse.gif", ncol))
    return files


def _chain(model, x, cfg, out, ncol):
    """Chains from uniform noise: one row per chain, a column every `every` steps."""
    chains, steps, every = int(cfg.chain.chains), int(cfg.chain.steps), int(cfg.chain.every)
    x0 = torch.rand(chains, *x.shape[1:], device=x.device) * 2 - 1
    states = model.chain(x0, steps)
    shown = torch.stack(states[::every], 1)  # (chains, snapshots, C, H, W)
    files = [save_grid(shown.flatten(0, 1), f"{out}/chain.png", shown.shape[1])]
    if cfg.gif:
        files.append(save_gif(states[:: max(1, every // 4)], f"{out}/chain.gif", ncol))
    return files


def _whole_rows(n: int, ncol: int) -> int:
    return max(ncol, n - n % ncol) if n >= ncol else n


MODE_FUNCTIONS = {"recon": _recon, "prior": _prior, "interp": _interpolate("interp"), "slerp": _interpolate("slerp"), "traverse": _traverse, "chain": _chain}
