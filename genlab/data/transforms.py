"""Image preparation (PIL -> [-1, 1] tensor at a fixed size) and training augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


def prepare(size: int, channels: int, center_crop: int | None = None):
    """PIL image -> float tensor (channels, size, size) in [-1, 1]: optional center crop,
    resize of the short side to `size` and a center crop to a square."""
    from torchvision.transforms import v2  # on first use: importing torchvision costs ~1.5 s of every start

    steps = [v2.Grayscale(1) if channels == 1 else v2.RGB(), v2.ToImage()]
    if center_crop:
        steps.append(v2.CenterCrop(center_crop))
    steps += [
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * channels, [0.5] * channels),
    ]
    return v2.Compose(steps)


MIN_SIDE = 2  # an image narrower than this has no content a network can use


def load_image(path) -> Image.Image:
    """Open and decode an image fully, so a corrupt or degenerate file fails here, with its
    name (data.skip_bad_images=true skips such files instead)."""
    from genlab import GenlabError

    try:
        with Image.open(path) as im:
            im.load()
            image = im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise GenlabError(f"cannot read image {path}: {e}; remove or replace the file, or set data.skip_bad_images=true") from None
    if min(image.size) < MIN_SIDE:
        raise GenlabError(f"image {path} is {image.size[0]}x{image.size[1]} pixels, too small to use; remove or replace the file, "
                          "or set data.skip_bad_images=true")
    return image


def augment(x: Tensor, hflip: bool = False, crop_padding: int = 0) -> Tensor:
    """Random horizontal flip and random crop after reflection padding, on one (C, H, W)
    image; draws from the global torch RNG (the loader seeds it per sample)."""
    if hflip and torch.rand(()) < 0.5:
        x = x.flip(-1)
    if crop_padding > 0:
        h, w = x.shape[-2:]
        padded = F.pad(x.unsqueeze(0), [crop_padding] * 4, mode="reflect").squeeze(0)
        top, left = (int(v) for v in torch.randint(0, 2 * crop_padding + 1, (2,)))
        x = padded[:, top : top + h, left : left + w]
    return x
