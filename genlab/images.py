"""Image grids and animations on disk: [-1, 1] tensors in, PNG and GIF files out."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 in [0, 255] with round-to-nearest, as image files store them."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def interleave_rows(rows: list[Tensor], ncol: int) -> Tensor:
    """Rows of equal length n -> one batch whose grid (ncol per line) shows, block by block,
    row 0 above row 1 above ...: inputs above their reconstructions."""
    n = rows[0].shape[0]
    blocks = []
    for start in range(0, n, ncol):
        blocks += [r[start : start + ncol] for r in rows]
    return torch.cat(blocks)


def match_channels(*batches: Tensor) -> list[Tensor]:
    """Grayscale batches repeated to RGB when shown beside RGB ones."""
    c = max(b.shape[1] for b in batches)
    return [b.expand(-1, c, -1, -1) if b.shape[1] == 1 else b for b in batches]


def grid(x: Tensor, ncol: int = 8) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (C, H', W') uint8 grid: grey images give a grey grid (one
    channel), RGB ones an RGB grid; batches mixing both go through match_channels first."""
    from torchvision.utils import make_grid  # on first use: importing torchvision costs ~1.5 s of every start

    g = make_grid(to_uint8(x), nrow=ncol, padding=2, pad_value=255)
    return g[:1] if x.shape[1] == 1 else g  # make_grid repeats a single channel three times


def save_grid(x: Tensor, path: str | Path, ncol: int = 8) -> Path:
    """A PNG of the grid: 8-bit grey for one-channel images, RGB for three."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(grid(x, ncol)).save(path)
    return path


def save_image(x: Tensor, path: str | Path) -> Path:
    """One (C, H, W) image in [-1, 1] as a file at its own size, without a grid's border:
    grey for one channel, RGB for three."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(to_uint8(x)).save(path)
    return path


def save_gif(frames: list[Tensor], path: str | Path, ncol: int = 8, ms_per_frame: int = 120) -> Path:
    """Each frame a batch (N, C, H, W) shown as a grid; the GIF loops back and forth."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [_pil(grid(f, ncol)) for f in frames]
    images = images + images[-2:0:-1]
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return path


def _pil(g: Tensor) -> Image.Image:
    arr = g.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def scatter_image(real: Tensor, fake: Tensor, size: int = 256, extent: float | None = None) -> Tensor:
    """2-D points as a (1, 3, size, size) image in [-1, 1]: real density green, generated red."""
    extent = extent or float(torch.cat([real, fake]).abs().max().clamp_min(1e-6)) * 1.1

    def density(p):
        ij = ((p.float().cpu() / extent + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1)
        h = torch.zeros(size, size)
        h.index_put_((size - 1 - ij[:, 1], ij[:, 0]), torch.ones(len(ij)), accumulate=True)
        return (h / h.max().clamp_min(1)).sqrt()

    img = torch.stack([density(fake), density(real), torch.zeros(size, size)])
    return (img * 2 - 1).unsqueeze(0)
