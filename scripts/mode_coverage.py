"""Mode coverage of every adversarial objective, with one budget: the 2-D mixtures and the
stacked sets (1,000 modes).

    python scripts/mode_coverage.py                    # ring8 and grid25, every loss
    python scripts/mode_coverage.py --data ring8 --losses nonsat hinge --steps 2000
    python scripts/mode_coverage.py --data stacked_fashion_mnist --losses nonsat hinge lsgan wgan_gp ragan

ring8, grid25: experiment=gan_ring8 (model=gan_mlp, with its per-loss settings), 3,000
steps; modes covered and the share of high-quality samples (within 3 std of a mode) over
2,500 samples. stacked_fashion_mnist, stacked_digits, stacked_mnist: experiment=dcgan on the
stacked set, 1,000 steps; modes covered of 1,000 and KL(mode histogram || uniform) over
26,000 samples (--samples), each channel classified by genlab's cached domain classifier.
Each (data, loss) trains with the same steps and seed and is evaluated as `genlab eval
ckpt=<run> metrics=[modes]` (or [stacked_modes]) would; a table is printed at the end with
the training wall time of each run."""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_module

import genlab.config  # noqa: F401
from genlab import evaluate, train
from genlab.device import select_device

# every adversarial objective in configs/loss/ (default is each model's own)
LOSSES = sorted(p.name.removesuffix(".yaml") for p in files("genlab.configs").joinpath("loss").iterdir() if p.name.endswith(".yaml") and p.name != "default.yaml")
# data set -> (experiment, metric, default steps, the table's two columns)
BENCHMARKS = {
    "ring8": ("gan_ring8", "modes", 3000, ("modes covered", "high-quality share")),
    "grid25": ("gan_ring8", "modes", 3000, ("modes covered", "high-quality share")),
    "stacked_fashion_mnist": ("dcgan", "stacked_modes", 1000, ("modes of 1000", "KL to uniform (nats)")),
    "stacked_digits": ("dcgan", "stacked_modes", 1000, ("modes of 1000", "KL to uniform (nats)")),
    "stacked_mnist": ("dcgan", "stacked_modes", 1000, ("modes of 1000", "KL to uniform (nats)")),
}


def coverage(data: str, loss: str, steps: int, seed: int, run_dir: Path, samples: int, overrides: list[str]) -> tuple[str, str, float]:
    """Train one (data, loss) run into run_dir and evaluate it: (modes column, second column, train wall s)."""
    experiment, metric, _, _ = BENCHMARKS[data]
    # the trainer's own validation (d_real, d_fake) is not in the table: one batch of it, not a whole stacked split
    train_overrides = [f"experiment={experiment}", f"data={data}", f"loss={loss}", f"trainer.max_steps={steps}", f"trainer.seed={seed}",
                       "trainer.progress_bar=false", "logger=jsonl", "trainer.eval_batches=1", *overrides]
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        cfg = compose("train", overrides=train_overrides)
        eval_cfg = compose("eval", overrides=[f"ckpt={run_dir}", f"metrics=[{metric}]", f"stacked_samples={samples}"])
    start = time.perf_counter()
    train.run(cfg, run_dir=run_dir)
    wall = time.perf_counter() - start
    m, _, _ = evaluate.checkpoint_metrics(eval_cfg, select_device(eval_cfg.device))
    if metric == "modes":
        return f"{m['modes_covered']:.0f}/{m['modes_total']:.0f}", f"{m['high_quality']:.3f}", wall
    return f"{m['stacked_modes']:.0f}", f"{m['stacked_kl']:.3f}", wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=list(BENCHMARKS))
    ap.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    ap.add_argument("--steps", type=int, default=None, help="generator steps of every run (default: 3000 on the 2-D mixtures, 1000 on a stacked set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=26000, help="samples for stacked_modes (26,000 as Metz et al. 2017, VEEGAN, PacGAN)")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="genlab-modes-"))
    rows: dict[tuple[str, ...], list] = {}
    for data in args.data:
        steps = args.steps or BENCHMARKS[data][2]
        for loss in args.losses:
            modes, second, wall = coverage(data, loss, steps, args.seed, root / f"{data}_{loss}", args.samples, args.overrides)
            rows.setdefault(BENCHMARKS[data][3], []).append((data, loss, modes, second, wall, steps))
            print(f"{data:21} {loss:17} modes {modes:>6}  {second}  {steps} steps  {wall:6.1f} s", flush=True)
    for (first, second), group in rows.items():
        print(f"\n| data | loss | {first} | {second} | steps | train wall s |\n|---|---|---|---|---|---|")
        for data, loss, modes, value, wall, steps in group:
            print(f"| {data} | {loss} | {modes} | {value} | {steps} | {wall:.0f} |")
    print(f"\nruns in {root}; seed {args.seed}")


if __name__ == "__main__":
    main()
