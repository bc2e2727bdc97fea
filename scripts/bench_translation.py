"""Training throughput of CycleGAN and pix2pix at the reference settings (ResNet-9 generator,
70x70 PatchGAN, batch 1; a smaller resolution on CPU), as a share of this machine's dense
matmul rate measured in the same run, for fp32 / channels-last / bf16 autocast.

    python scripts/bench_translation.py                 # 128 px, 5 timed steps per setting
    python scripts/bench_translation.py --size 256 --steps 10 --device cuda

The FLOPs of one training step (all phases, forward and backward) come from
torch.utils.flop_counter; the peak is the best rate of a large fp32 (and bf16) matmul."""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module
from torch.utils.flop_counter import FlopCounterMode

import genlab.config  # noqa: F401
from genlab.config import build
from genlab.device import autocast_context


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def model_and_batch(name: str, size: int, device: torch.device):
    model_name, data = {"cyclegan": ("cyclegan", "horse2zebra"), "pix2pix": ("pix2pix", "facades")}[name]
    overrides = [f"model={model_name}", f"data={data}", f"data.image_size={size}", "data.dataset.root=/unused"]
    if name == "pix2pix":
        overrides.append(f"model.generator.num_downs={size.bit_length() - 1}")  # down to 1x1, as U-Net 256 does at 256
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        cfg = compose("train", overrides=overrides)
    model = build(cfg.model, "model").to(device)
    batch = {"A": torch.rand(1, 3, size, size, device=device) * 2 - 1, "B": torch.rand(1, 3, size, size, device=device) * 2 - 1}
    optimizers = {g: torch.optim.Adam(ps, lr=2e-4, betas=(0.5, 0.999)) for g, ps in model.param_groups().items()}
    return model, batch, optimizers


def train_step(model, batch, optimizers, device, precision):
    ctx = {}
    for phase in model.phases:
        opt = optimizers[phase.optimizer]
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            loss, _ = model.training_step(batch, phase.name, ctx)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    peak32 = matmul_rate(device, torch.float32)
    peak16 = matmul_rate(device, torch.bfloat16)
    print(f"dense matmul: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s ({torch.get_num_threads()} threads, {device})")
    for name in ("cyclegan", "pix2pix"):
        for label, channels_last, precision in (("fp32", False, "32"), ("fp32 channels-last", True, "32"), ("bf16 autocast", False, "bf16"), ("bf16 channels-last", True, "bf16")):
            torch.manual_seed(0)
            model, batch, optimizers = model_and_batch(name, args.size, device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
            with FlopCounterMode(display=False) as counter:
                train_step(model, batch, optimizers, device, "32")
            flops = counter.get_total_flops()
            train_step(model, batch, optimizers, device, precision)  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, batch, optimizers, device, precision)
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.perf_counter() - start) / args.steps
            peak = peak16 if precision == "bf16" else peak32
            print(f"{name:8} {args.size}px {label:20} {1 / per_step:6.2f} images/s  {flops / 1e9:6.1f} GFLOP/step  "
                  f"{flops / per_step / 1e9:6.1f} GFLOP/s = {100 * flops / per_step / peak:4.1f}% of peak")


if __name__ == "__main__":
    main()
