"""`genlab sample ckpt=...`: PNG grids (and GIF animations) from a checkpoint: reconstructions,
prior samples, linear and spherical latent interpolation, latent arithmetic, per-dimension
traversals, denoising Markov chains and class-conditional grids."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor

from genlab import GenlabError, checkpoint
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.device import select_device
from genlab.images import interleave_rows, save_gif, save_grid, scatter_image
from genlab.models.base import (Conditional, DecodesLatents, GaussianPosterior, MarkovChain, Reconstructs, SamplesPrior, Translates,
                                check_direction)

# each mode and the capabilities (genlab/models/base.py) it needs of a model
MODES = {
    "recon": (Reconstructs,),
    "prior": (SamplesPrior,),
    "interp": (DecodesLatents,),
    "slerp": (DecodesLatents,),
    "arith": (DecodesLatents,),
    "traverse": (GaussianPosterior, DecodesLatents),
    "chain": (MarkovChain,),
    "classes": (Conditional, DecodesLatents),
    "fixed_z": (Conditional, DecodesLatents),
    "translate": (Translates,),
}


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
    return [mode for mode, needs in MODES.items() if all(isinstance(model, c) for c in needs)]


def run(cfg: DictConfig) -> dict:
    device = select_device(cfg.device)
    model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, device, cfg.use_ema)
    supported = supported_modes(model)
    modes = [m for m in supported if m != "arith"] if list(cfg.modes) in (["auto"], []) else list(cfg.modes)
    for mode in modes:
        if mode not in MODES:
            raise GenlabError(f"modes has {mode!r}; choose from {', '.join(MODES)} (or auto)")
        if mode not in supported:
            raise GenlabError(f"sample mode {mode!r} does not apply to {type(model).__name__}; it supports {', '.join(supported)}")
    out = cfg.get("out") or path.parent.parent / "samples" / path.stem
    seed_everything(int(cfg.seed))
    need = max(int(cfg.n), 2 * int(cfg.interp.pairs), int(cfg.chain.chains))
    if cfg.get("input"):  # translate a folder: no data set needed
        loader, batch = None, None
    else:
        split = model.latent_split if isinstance(model, DecodesLatents) and model.latent_split else cfg.split
        loader = eval_loader(train_cfg.data, split, batch_size=need)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in next(iter(loader)).items()}
    with open_dict(cfg):
        cfg.train_data = train_cfg.data  # the translate mode reads folders at the training size
    written = []
    with torch.no_grad():
        for mode in modes:
            written += MODE_FUNCTIONS[mode](model, batch, cfg, out, loader.dataset if loader else None)
    for p in written:
        print(f"wrote {p}")
    return {"files": [str(p) for p in written], "checkpoint": str(path), "weights": weights}


def _labels(cfg) -> dict:
    return {"labels": list(cfg.labels)} if cfg.get("labels") else {}


def _recon(model, batch, cfg, out, dataset):
    ncol = int(cfg.ncol)
    x = batch["image"][: _whole_rows(min(int(cfg.n), len(batch["image"])), ncol)]
    return [save_grid(interleave_rows([x, model.reconstruct(x)], ncol), f"{out}/recon.png", ncol)]


def _prior(model, batch, cfg, out, dataset):
    x = model.sample(int(cfg.n), **_labels(cfg))
    if x.dim() == 2:  # points of a 2-D benchmark
        return [save_grid(scatter_image(batch["image"], x), f"{out}/prior.png", 1)]
    return [save_grid(x, f"{out}/prior.png", int(cfg.ncol))]


def _interpolate(kind):
    def mode(model, batch, cfg, out, dataset):
        pairs, steps = int(cfg.interp.pairs), int(cfg.interp.steps)
        if len(batch["image"]) < 2 * pairs:
            raise GenlabError(f"the split has {len(batch['image'])} images, fewer than 2 * interp.pairs={2 * pairs}")
        z = model.latents(2 * pairs, batch).flatten(1)
        path = (lerp if kind == "interp" else slerp)(z[:pairs], z[pairs:], torch.linspace(0, 1, steps, device=z.device))
        frames = model.decode(path.flatten(0, 1), **_labels(cfg)).unflatten(0, (pairs, steps))  # (pairs, steps, C, H, W)
        files = [save_grid(frames.flatten(0, 1), f"{out}/{kind}.png", steps)]
        if cfg.gif:
            files.append(save_gif([frames[:, t] for t in range(steps)], f"{out}/{kind}.gif", int(cfg.ncol)))
        return files

    return mode


def chosen_latents(model, ids: list[int], dataset) -> Tensor:
    """Latents picked by the user: the codes of data-set images by index (encoders, GLO), or
    the noise drawn from each seed (GANs)."""
    if model.latents_from_images:
        items = [dataset[i] for i in ids]
        batch = {"image": torch.stack([it["image"] for it in items]), "index": torch.tensor([it["index"] for it in items])}
        device = next(model.parameters()).device
        return model.latents(len(ids), {k: v.to(device) for k, v in batch.items()}).flatten(1)
    zs = []
    for seed in ids:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            zs.append(model.latents(1))
    return torch.cat(zs)


def _arith(model, batch, cfg, out, dataset):
    """a - b + c with each term the mean latent of its chosen group (Radford et al. average
    three per concept): the row shows a, b, c and the result."""
    groups = [list(cfg.arith[k]) for k in ("a", "b", "c")]
    if not all(groups):
        raise GenlabError("mode arith needs arith.a, arith.b and arith.c: lists of image indices (encoders, GLO) or seeds (GANs)")
    a, b, c = (chosen_latents(model, ids, dataset).mean(0, keepdim=True) for ids in groups)
    z = torch.cat([a, b, c, a - b + c])
    return [save_grid(model.decode(z, **_labels(cfg)), f"{out}/arith.png", 4)]


def _traverse(model, batch, cfg, out, dataset):
    """One row per latent dimension (the most informative first, by their mean KL on the
    split's images), sweeping it over [-range, range] from the first image's code."""
    mu, logvar = model.posterior(batch["image"])
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
        files.append(save_gif([frames[:, t] for t in range(steps)], f"{out}/traverse.gif", int(cfg.ncol)))
    return files


def _chain(model, batch, cfg, out, dataset):
    """Chains from uniform noise: one row per chain, a column every `every` steps."""
    chains, steps, every = int(cfg.chain.chains), int(cfg.chain.steps), int(cfg.chain.every)
    x = batch["image"]
    x0 = torch.rand(chains, *x.shape[1:], device=x.device) * 2 - 1
    states = model.chain(x0, steps)
    shown = torch.stack(states[::every], 1)  # (chains, snapshots, C, H, W)
    files = [save_grid(shown.flatten(0, 1), f"{out}/chain.png", shown.shape[1])]
    if cfg.gif:
        files.append(save_gif(states[:: max(1, every // 4)], f"{out}/chain.gif", int(cfg.ncol)))
    return files


def _class_grid(shared_noise: bool):
    """One row per class (or per entry of labels=); `fixed_z` keeps the noise of each column
    for every row, so only the class changes down a column."""

    def mode(model, batch, cfg, out, dataset):
        rows = list(cfg.labels) if cfg.get("labels") else list(range(model.num_classes))
        ncol = int(cfg.ncol)
        z = model.latents(ncol).repeat(len(rows), 1) if shared_noise else model.latents(ncol * len(rows))
        y = torch.tensor(rows).repeat_interleave(ncol).tolist()
        name = "fixed_z" if shared_noise else "classes"
        return [save_grid(model.decode(z, labels=y), f"{out}/{name}.png", ncol)]

    return mode


def _translate(model, batch, cfg, out, dataset):
    """Translate input=<folder> (else the split's images) in `direction`: each output as an
    image file under <out>/<direction>/, and a grid of inputs above outputs (and CycleGAN's
    reconstructions F(G(x)) below them)."""
    from genlab.data.translation import domain_image
    from genlab.data.image_folder import list_images
    from genlab.data.transforms import load_image
    from genlab.images import match_channels

    direction, data = str(cfg.direction), cfg.train_data
    if direction not in ("AtoB", "BtoA"):
        raise GenlabError(f"direction={direction!r} is not one of AtoB, BtoA")
    check_direction(model, direction)
    src = "A" if direction == "AtoB" else "B"
    device = next(model.parameters()).device
    if cfg.get("input"):
        files = list_images(Path(cfg.input).expanduser())
        if not files:
            raise GenlabError(f"no images under input={cfg.input}")
        size, channels = int(data.image_size), int(data[f"channels_{src}"])
        x = torch.stack([domain_image(load_image(f), channels, size) for f in files]).to(device)
        names = [f.stem for f in files]
    else:
        x = batch[src][: int(cfg.n)]
        names = [f"{i:04d}" for i in range(len(x))]
    outputs = torch.cat([model.translate(x[i : i + 16], direction) for i in range(0, len(x), 16)])
    files_out = [save_grid(y[None], f"{out}/{direction}/{name}.png", 1) for y, name in zip(outputs, names)]
    rows = [x, outputs]
    if len(model.directions) == 2:  # the way back: reconstructions
        back = "BtoA" if direction == "AtoB" else "AtoB"
        rows.append(torch.cat([model.translate(outputs[i : i + 16], back) for i in range(0, len(outputs), 16)]))
    ncol = min(int(cfg.ncol), len(x))
    return [save_grid(interleave_rows(match_channels(*rows), ncol), f"{out}/translate_{direction}.png", ncol), *files_out]


def _whole_rows(n: int, ncol: int) -> int:
    return max(ncol, n - n % ncol) if n >= ncol else n


MODE_FUNCTIONS = {
    "recon": _recon, "prior": _prior, "interp": _interpolate("interp"), "slerp": _interpolate("slerp"), "arith": _arith,
    "traverse": _traverse, "chain": _chain, "classes": _class_grid(False), "fixed_z": _class_grid(True),
    "translate": _translate,
}
