"""Training speed of the whole `genlab train` process against a minimal hand-written PyTorch
loop with the same networks, data and optimizers, in one run, as a share of this machine's
matmul rate measured in the same run:

  * cyclegan 128 px batch 1, pix2pix 128 px batch 1, DCGAN batch 64 (digits), each in fp32
    and with trainer.precision=bf16 (autocast in the reference loop);
  * genlab's per-iteration time comes from two whole processes of N1 and N2 steps:
    (T(N2) - T(N1)) / (N2 - N1), so start-up, the end-of-run grids, validation and
    checkpoint cancel out; start-up (+ the end of the run) is T(N1) - N1 * per-iteration;
  * the reference loop is timed in this process after one warm-up step;
  * `genlab train trainer.max_steps=1` (the default VAE) end to end, with its import time;
  * host-bound rows, where a step's compute is small as on a GPU and what the loop does on
    the host between kernels decides (the ring8 MLP GAN at batch 8 and 256, a DCGAN of base
    32 at batch 8): genlab's loop (genlab.train.run in this process, per step from the wall
    times of its logged steps, after the first) and the hand-written loop alternate
    --rounds times in this process, each --host-steps steps; the overhead is the ratio of
    their medians. On one thread (OMP_NUM_THREADS=1) by default.

  * parallel jobs (--parallel): a joblib sweep of two default-VAE jobs, run one after
    another (n_jobs=1), in parallel with genlab's share of the cores (n_jobs=2: threads =
    cores // jobs), and in parallel with every core each (trainer.threads=<cores>, what two
    jobs got before the share); the sweep's total time and its ratio to running the jobs
    one after another.

    python scripts/bench_train.py                          # all, CPU
    python scripts/bench_train.py --parallel --models      # only the parallel-jobs rows
    python scripts/bench_train.py --models cyclegan --steps 3 10
    python scripts/bench_train.py --device cuda --steps 5 30 --precisions 32 bf16 fp16
    python scripts/bench_train.py --device cuda --overrides trainer.compile=true trainer.channels_last=true
    python scripts/bench_train.py --models dcgan --precisions 32 --steps 2 22 --overrides trainer.compile=true   # + speed-up over eager, compile time
    OMP_NUM_THREADS=1 python scripts/bench_train.py --models ring8_b8 ring8_b256 dcgan32_b8 --skip-startup

FLOPs per step come from torch.utils.flop_counter on the reference step (2 per multiply-add).
The genlab runs log every 5 steps (default 50) and keep the model's own EMA setting (DCGAN:
0.999), so logging and EMA are part of what is measured; sampling, evaluation and checkpoints
are off inside the window (they are periodic costs, not per-step ones)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

import genlab.config  # noqa: F401  (the resolvers the configs use)
from genlab.device import cores as device_cores
from genlab.device import matmul_rate, synchronize

SETTINGS = {
    # name: (overrides, reference step builder)
    "cyclegan": ["model=cyclegan", "data=horse2zebra", "data.image_size=128", "data.dataset.load_size=143", "model.generator_AB.n_blocks=6"],
    "pix2pix": ["model=pix2pix", "data=facades", "data.image_size=128", "data.dataset.load_size=143", "model.generator.num_downs=7"],
    "dcgan": ["experiment=dcgan", "data.batch_size=64"],
}
# host-bound rows: name -> overrides; the hand-written loop is the DCGAN one (non-saturating, Adam)
HOST_BOUND = {
    "ring8_b8": ["experiment=gan_ring8", "data.batch_size=8", "trainer.eval_metrics=[]"],
    "ring8_b256": ["experiment=gan_ring8", "data.batch_size=256", "trainer.eval_metrics=[]"],
    "dcgan32_b8": ["experiment=dcgan", "data.batch_size=8", "model.generator.base_channels=32", "model.discriminator.base_channels=32"],
}
COMMON = ["trainer.log_every=5", "trainer.sample_every=0", "trainer.eval_every=0", "trainer.ckpt_every=0", "trainer.progress_bar=false",
          "trainer.eval_batches=1", "logger=jsonl"]


def make_translation_data(root: Path, n_train: int = 32, n_test: int = 4) -> None:
    """horse2zebra (trainA/ ...) and facades (A/train/ ...) layouts of 160 px crops of scikit-learn's photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    china, flower = (Image.fromarray(p) for p in load_sample_images().images)
    rng = np.random.RandomState(0)

    def crops(im, n):
        for _ in range(n):
            side = int(rng.uniform(0.4, 0.95) * min(im.size))
            left, top = rng.randint(0, im.width - side + 1), rng.randint(0, im.height - side + 1)
            yield im.crop((left, top, left + side, top + side)).resize((160, 160), Image.BICUBIC)

    for split, n in (("train", n_train), ("test", n_test)):
        for domain, photo in (("A", china), ("B", flower)):
            for folder in (root / "horse2zebra" / f"{split}{domain}", root / "facades" / domain / split):
                folder.mkdir(parents=True, exist_ok=True)
            for i, im in enumerate(crops(photo, n)):
                im.save(root / "horse2zebra" / f"{split}{domain}" / f"{i:04d}.png")
                im.save(root / "facades" / domain / split / f"{i:04d}.png")


def reference_loop(name: str, cfg, device: torch.device):
    """(step function, batches) of a plain PyTorch loop on the networks the config builds:
    the losses written out, Adam(2e-4, (0.5, 0.999)) as the configs use, no trainer."""
    m = cfg.model
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # the data configs' 4 workers on a 2-core machine
    adam = lambda params: torch.optim.Adam(params, lr=float(cfg.optim.lr), betas=tuple(cfg.optim.betas))  # noqa: E731
    loader = torch.utils.data.DataLoader(instantiate(cfg.data.dataset, split="train"), batch_size=int(cfg.data.batch_size), shuffle=True,
                                         num_workers=int(cfg.data.get("num_workers", 0)), drop_last=True, persistent_workers=bool(cfg.data.get("num_workers", 0)))

    def batches():
        while True:
            for batch in loader:
                yield {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}

    mse = lambda x, target: F.mse_loss(x, torch.full_like(x, target))  # noqa: E731
    bce = lambda x, target: F.binary_cross_entropy_with_logits(x, torch.full_like(x, target))  # noqa: E731
    if name == "cyclegan":
        G, Fn, DA, DB = (instantiate(m[k]).to(device) for k in ("generator_AB", "generator_BA", "discriminator_A", "discriminator_B"))
        opt_g, opt_d = adam([*G.parameters(), *Fn.parameters()]), adam([*DA.parameters(), *DB.parameters()])

        def step(batch, autocast):
            a, b = batch["A"], batch["B"]
            DA.requires_grad_(False), DB.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            with autocast():
                fake_b, fake_a = G(a), Fn(b)
                loss = mse(DB(fake_b), 1) + mse(DA(fake_a), 1) + 10 * ((Fn(fake_b) - a).abs().mean() + (G(fake_a) - b).abs().mean())
                loss = loss + 5 * ((Fn(a) - a).abs().mean() + (G(b) - b).abs().mean())
            loss.backward()
            opt_g.step()
            DA.requires_grad_(True), DB.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            with autocast():
                d = 0.5 * (mse(DA(a), 1) + mse(DA(fake_a.detach()), 0)) + 0.5 * (mse(DB(b), 1) + mse(DB(fake_b.detach()), 0))
            (0.5 * d).backward()
            opt_d.step()
    elif name == "pix2pix":
        G, D = instantiate(m.generator).to(device), instantiate(m.discriminator).to(device)
        opt_g, opt_d = adam(G.parameters()), adam(D.parameters())

        def step(batch, autocast):
            a, b = batch["A"], batch["B"]
            D.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            with autocast():
                fake = G(a)
                loss = bce(D(torch.cat([a, fake], 1)), 1) + 100 * (fake - b).abs().mean()
            loss.backward()
            opt_g.step()
            D.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            with autocast():
                d = bce(D(torch.cat([a, b], 1)), 1) + bce(D(torch.cat([a, fake.detach()], 1)), 0)
            d.backward()
            opt_d.step()
    else:
        G, D = instantiate(m.generator).to(device), instantiate(m.discriminator).to(device)
        opt_g, opt_d = adam(G.parameters()), adam(D.parameters())
        z_dim = int(m.z_dim)

        def step(batch, autocast):
            real = batch["image"]
            z = torch.randn(real.shape[0], z_dim, device=device)
            opt_d.zero_grad(set_to_none=True)
            with autocast():
                with torch.no_grad():
                    fake = G(z)
                d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
            d.backward()
            opt_d.step()
            D.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            with autocast():
                g = F.softplus(-D(G(torch.randn_like(z)))).mean()
            g.backward()
            opt_g.step()
            D.requires_grad_(True)

    return step, batches()


def time_reference(name: str, cfg, device: torch.device, precision: str, steps: int) -> tuple[float, float]:
    """(seconds per iteration, FLOPs per iteration) of the hand-written loop."""
    torch.manual_seed(0)
    step, batches = reference_loop(name, cfg, device)
    batch = next(batches)
    with FlopCounterMode(display=False) as counter:
        step(batch, _null)  # fp32 FLOPs; bf16 runs the same operations
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)  # fp16: autocast without a grad scaler here
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else _null
    step(next(batches), autocast)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(next(batches), autocast)
    synchronize(device)
    return (time.perf_counter() - start) / steps, counter.get_total_flops()


def _null():
    import contextlib

    return contextlib.nullcontext()


def host_bound_row(name: str, cfg, device: torch.device, steps: int, rounds: int, run_root: Path) -> tuple[list[float], list[float]]:
    """(genlab seconds per step, hand-written seconds per step) of each round, alternating."""
    import json

    from genlab import train

    step, batches = reference_loop("dcgan", cfg, device)
    step(next(batches), _null)  # warm-up
    ours, ref = [], []
    for r in range(rounds):
        run_dir = run_root / f"{name}-{r}"
        train.run(cfg, run_dir=run_dir)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        logged = [row for row in rows if "perf/images_per_s" in row]  # the train rows, at log_every steps
        ours.append((logged[-1]["wall_s"] - logged[0]["wall_s"]) / (logged[-1]["step"] - logged[0]["step"]))
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(next(batches), _null)
        synchronize(device)
        ref.append((time.perf_counter() - start) / steps)
    return ours, ref


def genlab_process(overrides: list[str], steps: int, run_dir: Path, env: dict) -> float:
    if "trainer.compile=true" in overrides:  # a cold inductor cache for each process, so that both of a pair compile alike
        env = {**env, "TORCHINDUCTOR_CACHE_DIR": str(run_dir / "inductor-cache")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "train", *overrides, f"trainer.max_steps={steps}", f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"genlab train {' '.join(overrides)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def sweep_seconds(n_jobs: int, steps: int, extra: list[str], root: Path, env: dict) -> float:
    """Wall time of `genlab train -m` over two seeds of the default VAE with joblib's n_jobs."""
    cmd = [sys.executable, "-m", "genlab.cli", "train", "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", "trainer.seed=0,1",
           f"trainer.max_steps={steps}", "trainer.progress_bar=false", "logger=jsonl", "trainer.sample_every=0", "trainer.eval_every=0",
           "trainer.ckpt_every=0", f"hydra.sweep.dir={root}", *extra]
    env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}  # as a user starts it: genlab (or joblib) chooses the threads
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def parallel_rows(steps: int, root: Path, env: dict) -> None:
    cores = device_cores()
    print(f"\nparallel jobs: a joblib sweep of two default-VAE runs of {steps} steps each, {cores} cores (total seconds; ratio to one after another)")
    rows = [("one after another (n_jobs=1)", 1, []), ("in parallel, genlab's share (n_jobs=2)", 2, []),
            (f"in parallel, {cores} threads each (n_jobs=2 trainer.threads={cores})", 2, [f"trainer.threads={cores}"])]
    base = None
    for i, (label, n_jobs, extra) in enumerate(rows):
        seconds = sweep_seconds(n_jobs, steps, extra, root / f"parallel-{i}", env)
        base = base or seconds
        print(f"  {label:58} {seconds:7.1f} s  {base / seconds:5.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=[*SETTINGS, *HOST_BOUND], choices=[*SETTINGS, *HOST_BOUND])
    ap.add_argument("--parallel", action="store_true", help="also the parallel-jobs rows (a two-job joblib sweep three ways)")
    ap.add_argument("--parallel-steps", type=int, default=600, help="steps of each job of the parallel-jobs rows")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of genlab and the hand-written loop in the host-bound rows")
    ap.add_argument("--host-steps", type=int, default=200, help="steps of each host-bound round")
    ap.add_argument("--precisions", nargs="+", default=["32", "bf16"], choices=["32", "bf16", "fp16"])
    ap.add_argument("--steps", nargs=2, type=int, default=[2, 7], metavar=("N1", "N2"), help="steps of the two genlab processes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--overrides", nargs="*", default=[], help="more genlab overrides, e.g. trainer.compile=true trainer.channels_last=true")
    args = ap.parse_args()
    device = torch.device(args.device)
    n1, n2 = args.steps
    tmp = Path(tempfile.mkdtemp(prefix="genlab-bench-train-"))
    make_translation_data(tmp / "data")
    env = {**os.environ, "GENLAB_DATA": str(tmp / "data"), "GENLAB_CACHE": str(tmp / "cache")}
    os.environ["GENLAB_DATA"] = env["GENLAB_DATA"]
    whole = [m for m in args.models if m in SETTINGS]
    print(f"{torch.get_num_threads()} threads, {device}, load average {os.getloadavg()[0]:.2f}", end="")
    if whole:  # the whole-process rows state their share of the matmul peak
        # only the precisions asked for: a 4096^2 bf16 product took over a minute on this CPU
        dtypes = {"32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        peaks = {p: matmul_rate(device, dtypes[p]) for p in args.precisions}
        print("; matmul peak " + ", ".join(f"{'fp32' if k == '32' else k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items())
              + f"; genlab per-iteration from processes of {n1} and {n2} steps")
        print(f"  {'':24} {'genlab s/it':>11} {'reference s/it':>14} {'overhead':>9} {'GFLOP/it':>9} {'genlab % peak':>13} {'start-up s':>10}")
    else:
        print()
    per_it = {}
    for name in whole:
        for precision in args.precisions:
            overrides = [*SETTINGS[name], *COMMON, f"trainer.precision={precision}", f"trainer.device={args.device}", *args.overrides]
            with initialize_config_module(config_module="genlab.configs", version_base=None):
                cfg = compose("train", overrides=overrides)
            ref, flops = time_reference(name, cfg, device, precision, n2 - n1)
            t1 = genlab_process(overrides, n1, tmp / f"{name}-{precision}-a", env)
            t2 = genlab_process(overrides, n2, tmp / f"{name}-{precision}-b", env)
            ours = (t2 - t1) / (n2 - n1)
            per_it[(name, precision)] = (ours, ref)
            print(f"  {name + ' ' + precision:24} {ours:11.3f} {ref:14.3f} {100 * (ours / ref - 1):+8.1f}% {flops / 1e9:9.1f} "
                  f"{100 * flops / ours / peaks[precision]:12.1f}% {t1 - n1 * ours:10.1f}", flush=True)
            if "trainer.compile=true" in args.overrides:  # the same row eager: the speed-up, and compile time from the start-ups
                eager = [o for o in overrides if o != "trainer.compile=true"]
                e1 = genlab_process(eager, n1, tmp / f"{name}-{precision}-eager-a", env)
                e2 = genlab_process(eager, n2, tmp / f"{name}-{precision}-eager-b", env)
                eager_it = (e2 - e1) / (n2 - n1)
                print(f"  {'':24} compiled {eager_it / ours:.2f}x the eager genlab ({eager_it:.3f} s/it); compile time "
                      f"{(t1 - n1 * ours) - (e1 - n1 * eager_it):.1f} s (start-up compiled minus eager)", flush=True)
    host = [m for m in args.models if m in HOST_BOUND]
    if host:
        print(f"\nhost-bound rows, fp32, {args.rounds} alternating rounds of {args.host_steps} steps (median; min-max of the rounds' ratios)")
        print(f"  {'':24} {'genlab ms/it':>12} {'reference ms/it':>15} {'overhead':>9} {'range':>16}")
    for name in host:
        overrides = [*HOST_BOUND[name], *COMMON, f"trainer.device={args.device}", f"trainer.max_steps={args.host_steps}", *args.overrides]
        with initialize_config_module(config_module="genlab.configs", version_base=None):
            cfg = compose("train", overrides=overrides)
        ours, ref = host_bound_row(name, cfg, device, args.host_steps, args.rounds, tmp)
        ratios = [o / r - 1 for o, r in zip(ours, ref)]
        print(f"  {name:24} {1e3 * np.median(ours):12.2f} {1e3 * np.median(ref):15.2f} {100 * (np.median(ours) / np.median(ref) - 1):+8.1f}% "
              f"{100 * min(ratios):+7.1f}..{100 * max(ratios):+.1f}%", flush=True)
    for name in args.models:
        if (name, "32") in per_it and (name, "bf16") in per_it:
            g32, r32 = per_it[(name, "32")]
            g16, r16 = per_it[(name, "bf16")]
            print(f"  bf16 speed-up {name}: genlab {g32 / g16:.2f}x, reference loop {r32 / r16:.2f}x")

    if args.parallel:
        parallel_rows(args.parallel_steps, tmp, env)
    if not args.skip_startup:
        code = "import time; t = time.perf_counter(); import genlab.cli, genlab.train, genlab.trainer; print(time.perf_counter() - t)"
        imports = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout)
        seconds = genlab_process(["trainer.progress_bar=false"], 1, tmp / "startup", env)
        print(f"\n`genlab train trainer.max_steps=1` (default VAE on digits): {seconds:.1f} s end to end, of which importing genlab {imports:.1f} s")


if __name__ == "__main__":
    main()
