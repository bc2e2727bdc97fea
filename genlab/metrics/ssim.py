"""Structural similarity (Wang et al. 2004) with the standard 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, on images in [0, 1]; the mean SSIM per image, shape (B,)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    c = x.shape[1]
    g = torch.exp(-((torch.arange(window, dtype=x.dtype, device=x.device) - window // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :]).expand(c, 1, window, window)
    blur = lambda t: F.conv2d(t, k, groups=c)  # noqa: E731  (valid region, as scikit-image and the paper's code)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
