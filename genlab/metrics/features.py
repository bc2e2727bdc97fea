"""Images -> Inception inputs -> features, under one of three named resize protocols.

Images enter as uint8 (B, C, H, W) (generated images are quantised exactly as image files
are, see genlab.images.to_uint8); grayscale is repeated to RGB. Modes:
  tf           TF1-compatible bilinear resize to 299 and (x - 128) / 128 (torch-fidelity, the
               original TF code): the default, for comparability with published numbers
  pytorch_fid  F.interpolate bilinear (align_corners=False) on x / 255, then 2x - 1 (pytorch-fid)
  clean        PIL bicubic resize of each channel in float, then (x - 128) / 128 (clean-fid)
On the same images the modes differ by several percent of FID: the mode is part of every number."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from genlab import GenlabError

MODES = ("tf", "pytorch_fid", "clean")
SIZE = 299


def resize_tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x does it (align_corners=False, no half-pixel centres):
    output pixel i samples the input at i * in / out."""

    def along(t: Tensor, dim: int) -> Tensor:
        n = t.shape[dim]
        src = torch.arange(size, dtype=torch.float64) * (n / size)
        lo = src.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        w = (src - lo).to(t.dtype)
        shape = [1] * t.dim()
        shape[dim] = size
        a, b = t.index_select(dim, lo.to(t.device)), t.index_select(dim, hi.to(t.device))
        return a + (b - a) * w.to(t.device).view(shape)

    return along(along(x, 2), 3)


def _pil_bicubic(x: Tensor) -> Tensor:
    out = np.empty((x.shape[0], x.shape[1], SIZE, SIZE), dtype=np.float32)
    arr = x.cpu().numpy().astype(np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            out[i, c] = np.asarray(Image.fromarray(arr[i, c], mode="F").resize((SIZE, SIZE), Image.BICUBIC))
    return torch.from_numpy(out)


def prepare(images: Tensor, mode: str) -> Tensor:
    """uint8 (B, C, H, W) -> float (B, 3, 299, 299), scaled as the mode's reference does."""
    if images.dtype != torch.uint8:
        raise TypeError(f"prepare() wants uint8 images, got {images.dtype}: quantise with genlab.images.to_uint8")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if mode == "tf":
        x = images.float()
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = resize_tf1_bilinear(x, SIZE)
        return (x - 128) / 128
    if mode == "pytorch_fid":
        x = images.float() / 255
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1
    if mode == "clean":
        x = _pil_bicubic(images).to(images.device) if images.shape[-1] != SIZE else images.float()
        return (x - 128) / 128
    raise GenlabError(f"inception.mode={mode!r} is not one of {', '.join(MODES)}")


class InceptionExtractor:
    """Pool features (float64) and unbiased logits of uint8 image batches."""

    def __init__(self, net, mode: str, device: torch.device, has_logits: bool, channels_last: bool = True):
        if mode not in MODES:
            raise GenlabError(f"inception.mode={mode!r} is not one of {', '.join(MODES)}")
        self.mode, self.device, self.has_logits = mode, device, has_logits
        self.net = net.to(device)
        self.channels_last = channels_last
        if channels_last:  # 1.7x faster on this CPU, same numbers to float rounding
            self.net = self.net.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = prepare(images, self.mode).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pool, logits = self.net(x)
        return pool.double().cpu(), logits.double().cpu()
