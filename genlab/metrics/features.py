"""Images -> Inception inputs -> features, under one of three named resize protocols.

Images enter as uint8 (B, C, H, W) (generated images are quantised exactly as image files
are, see genlab.images.to_uint8); grayscale is repeated to RGB. Modes:
  tf           TF1-compatible bilinear resize to 299 and (x - 128) / 128 (torch-fidelity, the
               original TF code): the default, for comparability with published numbers
  pytorch_fid  F.interpolate bilinear (align_corners=False) on x / 255, then 2x - 1 (pytorch-fid)
  clean        PIL bicubic resize of each channel in float, then (x - 128) / 128 (clean-fid)
On the same images the modes differ by several percent of FID: the mode is part of every number."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from genlab.errors import GenlabError
from genlab.device import autocast_context

MODES = ("tf", "pytorch_fid", "clean")
SIZE = 299


def _resize_along(t: Tensor, dim: int, size: int, coordinates: torch.dtype) -> Tensor:
    """TF1 bilinear along one dimension: output pixel i samples the input at i * in / out."""
    n = t.shape[dim]
    src = torch.arange(size, dtype=coordinates) * torch.tensor(n / size, dtype=coordinates)
    lo = src.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (src - lo.to(coordinates)).to(t.dtype)
    shape = [1] * t.dim()
    shape[dim] = size
    a, b = t.index_select(dim, lo.to(t.device)), t.index_select(dim, hi.to(t.device))
    return a + (b - a) * w.to(t.device).view(shape)


def resize_tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x does it (align_corners=False, no half-pixel centres):
    output pixel i samples the input at i * in / out (coordinates in float64, rows first)."""
    return _resize_along(_resize_along(x, 2, size, torch.float64), 3, size, torch.float64)


def resize_tf1_bilinear_float32(x: Tensor, size: int) -> Tensor:
    """The same with float32 source coordinates, columns first: bit for bit torch-fidelity's
    interpolate_bilinear_2d_like_tensorflow1x (its VGG16 and Inception inputs)."""
    return _resize_along(_resize_along(x, 3, size, torch.float32), 2, size, torch.float32)


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
    raise GenlabError(f"inception.resize={mode!r} is not one of {', '.join(MODES)}")


RUNTIMES = ("auto", "torch", "onnxruntime")
PRECISIONS = ("32", "bf16", "fp16")


def onnxruntime_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def choose_runtime(runtime: str, device: torch.device, precision: str) -> str:
    """auto: ONNX Runtime for fp32 on the CPU where it is installed (1.5-1.9x torch's
    channels-last module on 2 AVX-512 cores, scripts/bench_fid.py), else torch."""
    if runtime not in RUNTIMES:
        raise GenlabError(f"inception.runtime={runtime!r} is not one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise GenlabError(f"inception.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise GenlabError("inception.precision=fp16 needs a CUDA device; use inception.precision=bf16 (or 32) on the CPU")
    if runtime == "auto":
        return "onnxruntime" if device.type == "cpu" and precision == "32" and onnxruntime_available() else "torch"
    if runtime == "onnxruntime":
        if device.type != "cpu" or precision != "32":
            raise GenlabError(f"inception.runtime=onnxruntime runs fp32 on the CPU, not precision {precision} on {device}; "
                              "use inception.runtime=auto (or torch)")
        if not onnxruntime_available():
            raise GenlabError("inception.runtime=onnxruntime needs onnxruntime and onnx: pip install 'genlab[onnx]', or use inception.runtime=auto")
    return runtime


class InceptionExtractor:
    """Pool features (float64) and unbiased logits of uint8 image batches.

    runtime torch: the module, channels-last (1.6-1.8x the default layout on this CPU), under
    autocast for precision bf16/fp16. runtime onnxruntime: the same network with batch norm
    folded into the convolutions (genlab.metrics.inception.to_onnx), FID within 1e-6 of the
    module's. bf16 is an opt-in: it moves FID by about 1e-3 relative."""

    def __init__(self, net, mode: str, device: torch.device, has_logits: bool, runtime: str = "auto", precision: str = "32",
                 channels_last: bool = True):
        if mode not in MODES:
            raise GenlabError(f"inception.resize={mode!r} is not one of {', '.join(MODES)}")
        precision = str(precision)
        self.runtime = choose_runtime(runtime, device, precision)
        self.mode, self.device, self.has_logits, self.precision = mode, device, has_logits, precision
        self.channels_last = channels_last and self.runtime == "torch"
        if self.runtime == "onnxruntime":
            import onnxruntime

            from genlab.metrics.inception import to_onnx

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(to_onnx(net), options, providers=["CPUExecutionProvider"])
        else:
            self.net = net.to(device)
            if self.channels_last:
                self.net = self.net.to(memory_format=torch.channels_last)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (B, C, H, W) -> (pool features (B, 2048), logits (B, 1008)), float64 on the CPU."""
        return self.forward(prepare(images, self.mode))

    @torch.no_grad()
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The same, from inputs already prepared: float (B, 3, 299, 299)."""
        if self.runtime == "onnxruntime":
            pool, logits = self.session.run(["pool", "logits"], {"x": x.float().contiguous().numpy()})
            return torch.from_numpy(pool).double(), torch.from_numpy(logits).double()
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.precision):
            pool, logits = self.net(x)
        return pool.double().cpu(), logits.double().cpu()
