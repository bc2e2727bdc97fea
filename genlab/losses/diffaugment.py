"""Differentiable augmentation of everything a discriminator sees (DiffAugment, Zhao et al.
2020): real and generated batches alike, in the discriminator's and the generator's steps,
so the generator learns through the augmentation and the discriminator cannot memorise a
small training set. Policies as in the paper's code: color (brightness, saturation,
contrast), translation (up to 1/8 of the side, zero fill), cutout (a square of half the
side, zeroed); images in [-1, 1], (B, C, H, W).

Each sample gets its own draw; the tensors of one call share it (pix2pix's input and output
images are moved, recoloured and cut together). Draws come from torch's global RNG, which
checkpoints carry, so resumed runs stay exact."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.errors import GenlabError

POLICIES = ("color", "translation", "cutout")


def _uniform(b: int, like: Tensor) -> Tensor:
    return torch.rand(b, 1, 1, 1, device=like.device, dtype=like.dtype)


def color(xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Brightness + U(-0.5, 0.5); saturation x (U(0, 2)) around the channel mean; contrast x
    U(0.5, 1.5) around the image mean (the channel mean of a one-channel image is itself)."""
    b = xs[0].shape[0]
    brightness, saturation, contrast = _uniform(b, xs[0]) - 0.5, _uniform(b, xs[0]) * 2, _uniform(b, xs[0]) + 0.5
    out = []
    for x in xs:
        x = x + brightness
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * saturation + mean
        mean = x.mean((1, 2, 3), keepdim=True)
        out.append((x - mean) * contrast + mean)
    return tuple(out)


def translation(xs: tuple[Tensor, ...], ratio: float = 0.125) -> tuple[Tensor, ...]:
    """Shift each image by whole pixels, up to ratio x its side each way; uncovered pixels are 0."""
    b, _, h, w = xs[0].shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = xs[0].device
    dy = torch.randint(-sy, sy + 1, (b, 1), device=dev)
    dx = torch.randint(-sx, sx + 1, (b, 1), device=dev)
    rows = torch.arange(h, device=dev) + dy  # (B, H): the source row of each output row
    cols = torch.arange(w, device=dev) + dx  # (B, W)
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    index = torch.arange(b, device=dev)[:, None, None]
    rows, cols = rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]
    out = []
    for x in xs:
        moved = x.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)
        out.append(moved * inside.to(x.dtype))
    return tuple(out)


def cutout(xs: tuple[Tensor, ...], ratio: float = 0.5) -> tuple[Tensor, ...]:
    """Zero a square of ratio x the side at a random centre (clipped at the borders)."""
    b, _, h, w = xs[0].shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = xs[0].device
    top = torch.randint(0, h + (1 - ch % 2), (b, 1), device=dev) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1), device=dev) - cw // 2
    r, c = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows, in_cols = (r >= top) & (r < top + ch), (c >= left) & (c < left + cw)  # (B, H), (B, W)
    keep = ~(in_rows[:, None, :, None] & in_cols[:, None, None, :])
    return tuple(x * keep.to(x.dtype) for x in xs)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """The policies in the paper's order (color, then translation, then cutout)."""

    def __init__(self, policies: Sequence[str]):
        self.policies = tuple(p for p in POLICIES if p in policies)

    @classmethod
    def parse(cls, spec: str | Sequence[str] | None) -> DiffAugment | None:
        """model.diffaugment: null, a list ([color,translation,cutout]) or one comma-separated string."""
        if spec is None or spec == "" or (not isinstance(spec, str) and len(spec) == 0):
            return None
        names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
        unknown = [n for n in names if n not in POLICIES]
        if unknown:
            raise GenlabError(f"model.diffaugment has {unknown[0]!r}; choose from {', '.join(POLICIES)}, e.g. model.diffaugment=[color,translation,cutout]")
        return cls(names)

    def __call__(self, *xs: Tensor) -> tuple[Tensor, ...]:
        if xs[0].dim() != 4:
            raise GenlabError(f"model.diffaugment augments image batches (B, C, H, W), not samples of shape {tuple(xs[0].shape[1:])}; drop it")
        for name in self.policies:
            xs = AUGMENTS[name](xs)
        return xs

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.policies)})"
