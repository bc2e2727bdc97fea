"""`genlab sample ckpt=...`: PNG grids (and GIF animations) from a checkpoint: reconstructions,
prior samples, linear and spherical latent interpolation, latent arithmetic, per-dimension
traversals, denoising Markov chains and class-conditional grids."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor

from genlab import checkpoint
from genlab.errors import GenlabError
from genlab.config import seed_everything
from genlab.data.loading import eval_loader
from genlab.data.transforms import load_image
from genlab.data.translation import domain_image, pair, resize, scale_width, unit_image
from genlab.device import select_device
from genlab.images import interleave_rows, match_channels, save_gif, save_grid, save_image, scatter_image
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
# keys of the translate mode, with the defaults that leave them unused
TRANSLATE_KEYS = {"input": None, "preprocess": "resize", "load_size": None}
PREPROCESS = ("resize", "scale_width", "none")
FORMATS = ("png", "npz")
FILE_MODES = ("prior", "translate")  # the modes that write a file per sample with grid=false


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
    translate_keys = {k: cfg.get(k) for k, default in TRANSLATE_KEYS.items() if cfg.get(k) != default}
    if translate_keys and "translate" not in modes:
        raise GenlabError(f"{', '.join(f'{k}={v}' for k, v in translate_keys.items())} applies to modes=[translate] only")
    fmt, per_sample = str(cfg.get("format", "png")), not cfg.get("grid", True) or cfg.get("format", "png") == "npz"
    if fmt not in FORMATS:
        raise GenlabError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    if per_sample and [m for m in modes if m not in FILE_MODES]:
        raise GenlabError(f"grid=false and format=npz apply to modes {' and '.join(FILE_MODES)}; "
                          f"{', '.join(m for m in modes if m not in FILE_MODES)} only draw grids (modes=[prior])")
    if fmt == "npz" and "translate" in modes:
        raise GenlabError("format=npz applies to modes=[prior]; translations are written as PNG files per input")
    out = cfg.get("out") or path.parent.parent / "samples" / path.stem
    seed_everything(int(cfg.seed))
    need = max(int(cfg.n), 2 * int(cfg.interp.pairs), int(cfg.chain.chains))
    if per_sample and modes == ["prior"] and model.samples_images:  # streamed samples: no data set needed
        loader, batch = None, None
    elif cfg.get("input"):  # translate a folder: no data set needed
        loader, batch = None, None
    else:
        split = model.latent_split if isinstance(model, DecodesLatents) and model.latent_split else cfg.split
        loader = eval_loader(train_cfg.data, split, batch_size=need)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in next(iter(loader)).items()}
    with open_dict(cfg):
        cfg.train_data = train_cfg.data  # the translate mode reads folders at the training size
    written = []
    with torch.no_grad():
        if per_sample and "prior" in modes:
            written += prior_files(model, cfg, Path(out))
            modes = [m for m in modes if m != "prior"]
        for mode in modes:
            written += MODE_FUNCTIONS[mode](model, batch, cfg, out, loader.dataset if loader else None)
    for p in written:
        print(f"wrote {p}")
    return {"files": [str(p) for p in written], "checkpoint": str(path), "weights": weights, "test_mode": model.test_mode}


def _labels(cfg) -> dict:
    return {"labels": list(cfg.labels)} if cfg.get("labels") else {}


def prior_files(model, cfg, out: Path) -> list[Path]:
    """n samples, drawn in batches of batch_size (constant memory for any n), as one PNG each
    (<out>/prior/000000.png ..., with labels.csv for a conditional model) or, format=npz, one
    uint8 (n, H, W, C) array arr_0 (and the labels as arr_1) in <out>/prior.npz, the layout
    of guided-diffusion's sample files. The random state is seeded first, so these are the
    samples genlab eval ckpt=... seed=<seed> inception.batch_size=<batch_size> scores."""
    import zipfile

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from genlab.atomic import atomic_write, atomic_write_text
    from genlab.images import to_uint8

    if not model.samples_images:
        raise GenlabError(f"grid=false and format=npz write images; {type(model).__name__} samples 2-D points here (a scatter plot: grid=true)")
    n, bs, fmt = int(cfg.n), int(cfg.get("batch_size", 256)), str(cfg.get("format", "png"))
    if n < 1 or bs < 1:
        raise GenlabError(f"n={n} and batch_size={bs} must be at least 1")
    conditional = isinstance(model, Conditional) and model.num_classes
    chosen = list(cfg.labels) if cfg.get("labels") else None
    c, h, w = model.sample_shape
    folder, width = out / "prior", max(6, len(str(n - 1)))
    tmp = out / ".prior.npy.tmp"
    if fmt == "npz":
        out.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h, w, c))  # on disk, not in memory
    labels = np.zeros(n, dtype=np.int64)
    seed_everything(int(cfg.seed))
    try:
        with tqdm(total=n, desc="samples", unit="img", disable=not cfg.get("progress", True), leave=False) as bar:
            for start in range(0, n, bs):
                b = min(bs, n - start)
                if conditional:
                    labels[start : start + b] = model.class_labels(b, chosen).cpu().numpy()  # what sample(b, labels) draws
                x = to_uint8(model.sample(b, **({"labels": chosen} if chosen else {}))).permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, C)
                if fmt == "npz":
                    array[start : start + b] = x
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                    for i, im in enumerate(x):
                        Image.fromarray(im[..., 0] if c == 1 else im).save(folder / f"{start + i:0{width}d}.png")
                bar.update(b)
        if fmt == "png":
            files = [folder]
            if conditional:
                rows = "".join(f"{i:0{width}d}.png,{y}\n" for i, y in enumerate(labels))
                files.append(atomic_write_text(folder / "labels.csv", "file,label\n" + rows))
            return files
        array.flush()
        del array

        def write(f):
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:  # np.savez's layout, streamed from disk
                z.write(tmp, "arr_0.npy")
                if conditional:
                    with z.open("arr_1.npy", "w") as member:
                        np.lib.format.write_array(member, labels)

        return [atomic_write(out / "prior.npz", write)]
    finally:
        tmp.unlink(missing_ok=True)


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
    """Translate input=<file or folder> (else the split's images) in `direction`: each output
    as a PNG under <out>/<direction>/ with the input's relative path and name, and (grid=true)
    a grid of inputs above outputs (and CycleGAN's reconstructions F(G(x)) below them).
    preprocess: resize (to the training crop), scale_width (the width to load_size, the
    height in proportion) or none (each image at its own size); the last two pad each image
    (reflection) to the generators' size multiple and crop the output back to its size."""
    from genlab.export import size_multiple

    direction, data, preprocess = str(cfg.direction), cfg.train_data, str(cfg.get("preprocess", "resize"))
    check_direction(model, direction)
    if preprocess not in PREPROCESS:
        raise GenlabError(f"preprocess={preprocess!r} is not one of {', '.join(PREPROCESS)}")
    if cfg.get("load_size") is not None and preprocess != "scale_width":
        raise GenlabError(f"load_size={cfg.load_size} is the width of preprocess=scale_width; drop it or set preprocess=scale_width")
    device = next(model.parameters()).device
    crop = pair(data.get("crop_size") or data.image_size)  # the training crop (height, width)
    if cfg.get("input"):
        files, names = _input_images(Path(str(cfg.input)).expanduser())
        channels = int(data[f"channels_{direction[0]}"])
        x = [_prepared(load_image(f), channels, preprocess, crop, cfg.get("load_size")).to(device) for f in files]
    else:
        if preprocess != "resize":
            raise GenlabError(f"preprocess={preprocess} applies to input= images; the split's come as the data set loads them "
                              "(data.dataset.preprocess), or pass input=<folder>")
        x = list(batch[direction[0]][: int(cfg.n)])
        names = [f"{i:04d}.png" for i in range(len(x))]
    multiple = size_multiple(model)
    outputs = translate_images(model, x, direction, multiple)
    files_out = [save_image(y, f"{out}/{direction}/{name}") for y, name in zip(outputs, names)]
    if not cfg.get("grid", True):
        return files_out
    rows = [x, outputs]
    if len(model.directions) == 2:  # the way back: reconstructions
        rows.append(translate_images(model, outputs, "BtoA" if direction == "AtoB" else "AtoB", multiple))
    side = max(crop)
    rows = [torch.stack([_tile(im, side) for im in row]) for row in rows]
    ncol = min(int(cfg.ncol), len(x))
    return [save_grid(interleave_rows(match_channels(*rows), ncol), f"{out}/translate_{direction}.png", ncol), *files_out]


def translate_images(model, images: list[Tensor], direction: str, multiple: int, batch_size: int = 16) -> list[Tensor]:
    """Each (C, H, W) image translated at its own size: runs of equal sizes go in batches;
    sides that are not multiples of `multiple` are padded by reflection and cropped back."""
    out: list[Tensor] = []
    i = 0
    while i < len(images):
        j = i + 1
        while j < len(images) and j - i < batch_size and images[j].shape == images[i].shape:
            j += 1
        out += list(translate_padded(model, torch.stack(images[i:j]), direction, multiple))
        i = j
    return out


def translate_padded(model, x: Tensor, direction: str, multiple: int) -> Tensor:
    """model.translate of (B, C, H, W) of any H, W: padded to multiples of `multiple`
    (reflection, or edge replication where an image is smaller than its padding) and
    cropped back to H, W."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return model.translate(x, direction)
    left, top = pw // 2, ph // 2
    pad = [left, pw - left, top, ph - top]
    mode = "reflect" if max(pad) < min(h, w) else "replicate"
    y = model.translate(torch.nn.functional.pad(x, pad, mode=mode), direction)
    return y[..., top : top + h, left : left + w]


def _input_images(root: Path) -> tuple[list[Path], list[str]]:
    """The images of input= (a file or a folder, searched recursively) and their output
    names: the path relative to the folder, as .png."""
    from genlab.data.image_folder import list_images

    files = [root] if root.is_file() else list_images(root) if root.is_dir() else []
    if not files:
        raise GenlabError(f"no images under input={root}")
    names = [str((f.relative_to(root) if root.is_dir() else Path(f.name)).with_suffix(".png")) for f in files]
    seen: dict[str, Path] = {}
    for f, name in zip(files, names):
        if name in seen:
            raise GenlabError(f"input= has {seen[name]} and {f}, which would both be written as {name}; rename one")
        seen[name] = f
    return files, names


def _prepared(image, channels: int, preprocess: str, crop: tuple[int, int], load_size) -> Tensor:
    """A PIL image as the translate mode feeds it: (channels, H, W) in [-1, 1]."""
    if preprocess == "resize":
        return domain_image(image, channels, crop)
    x = unit_image(image, channels)
    if preprocess == "scale_width":
        x = scale_width(x, int(load_size or crop[1]))
    return x * 2 - 1


def _tile(x: Tensor, side: int) -> Tensor:
    """A grid tile: the image scaled so that its longer side is `side`, centred on white."""
    h, w = x.shape[-2:]
    if (h, w) == (side, side):
        return x
    th, tw = max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w)))
    x = resize((x + 1) / 2, (th, tw)) * 2 - 1
    top, left = (side - th) // 2, (side - tw) // 2
    return torch.nn.functional.pad(x, [left, side - tw - left, top, side - th - top], value=1.0)


def _whole_rows(n: int, ncol: int) -> int:
    return max(ncol, n - n % ncol) if n >= ncol else n


MODE_FUNCTIONS = {
    "recon": _recon, "prior": _prior, "interp": _interpolate("interp"), "slerp": _interpolate("slerp"), "arith": _arith,
    "traverse": _traverse, "chain": _chain, "classes": _class_grid(False), "fixed_z": _class_grid(True),
    "translate": _translate,
}
