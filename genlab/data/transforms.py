"""Image preparation (PIL -> [-1, 1] tensor at a fixed size) and training augmentation."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
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
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
INT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit PNG, TIFF and PGM open as these
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
log = logging.getLogger(__name__)
_animated_said = False


def load_image(path, name: str | None = None) -> Image.Image:
    """The one decoder of every path (image folders, two-domain and A|B sets, `genlab sample
    input=`, FID/IS folders): the file's first frame, upright by its EXIF orientation, as
    8-bit grey ("L", from grey, bilevel and 16-bit grey files) or RGB (everything else: CMYK,
    palettes, YCbCr). 16-bit values v become round(v / 257), so a 16-bit copy of an 8-bit
    picture decodes to it exactly; transparency (alpha, a palette's or a colour key's) is
    composited on white. A corrupt or degenerate file fails here, with its name
    (data.skip_bad_images=true skips such files instead). `path` may be an open binary file
    (a Hugging Face data set's bytes), `name` what the messages call it."""
    from genlab.errors import GenlabError

    name = str(path) if name is None else name
    try:
        with Image.open(path) as im:
            im.load()
            frames = getattr(im, "n_frames", 1)
            image = _eight_bit(ImageOps.exif_transpose(im), name)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        detail = str(e).replace(f" {path!r}", "") if hasattr(path, "read") else e  # PIL names an open file by its repr
        raise GenlabError(f"cannot read image {name}: {detail}; remove or replace the file, or set data.skip_bad_images=true") from None
    if min(image.size) < MIN_SIDE:
        raise GenlabError(f"image {name} is {image.size[0]}x{image.size[1]} pixels, too small to use; remove or replace the file, "
                          "or set data.skip_bad_images=true")
    if frames > 1:
        _say_animated(name, frames)
    return image


def _eight_bit(im: Image.Image, path) -> Image.Image:
    """Any PIL mode -> "L" or "RGB", 8 bits a channel, transparency composited on white."""
    from genlab.errors import GenlabError

    grey = im.mode in GREY_MODES or (im.mode == "P" and _grey_palette(im))
    if im.mode in INT_MODES or im.mode == "F":
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":  # floating-point TIFF: genlab reads values in [0, 1]
            if not (a.min() >= 0 and a.max() <= 1):
                raise GenlabError(f"image {path} holds floating-point values in [{a.min():g}, {a.max():g}]; genlab reads float images in "
                                  "[0, 1]: rescale the file, or remove it or set data.skip_bad_images=true")
            a = a * 255
        else:
            if a.min() < 0 or a.max() > 65535:
                raise GenlabError(f"image {path} holds 32-bit values in [{a.min():g}, {a.max():g}]; genlab reads 8- and 16-bit images: "
                                  "rescale the file, or remove it or set data.skip_bad_images=true")
            a = a / 257
        return Image.fromarray(np.rint(a).astype(np.uint8), "L")
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
        alpha = rgba[..., 3:]
        # on white: round(c * a / 255 + 255 * (1 - a / 255)), in integers (255 is odd, so there are no ties)
        rgb = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        image = Image.fromarray(rgb, "RGB")
        return image.convert("L") if grey else image
    if im.mode in ("L", "RGB"):
        return im.copy()
    return im.convert("L" if grey else "RGB")


def _grey_palette(im: Image.Image) -> bool:
    palette = np.asarray(im.getpalette() or [0, 0, 0]).reshape(-1, 3)
    return bool((palette == palette[:, :1]).all())


def _say_animated(path, frames: int) -> None:
    global _animated_said
    if not _animated_said:
        _animated_said = True
        log.warning("image %s has %d frames; genlab reads the first frame of an animated file (said once)", path, frames)


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
