"""The benchmark table: each family's main experiment on real offline data, at a fixed budget,
over seeds, with every number's protocol.

    python scripts/benchmark.py                                   # every row, 3 seeds
    python scripts/benchmark.py --rows vae dcgan_nonsat --seeds 1  # a subset; rows already done are skipped
    python scripts/benchmark.py --rows ref_dcgan --reference-dir /tmp/ref   # pytorch/examples' dcgan/ under it
    python scripts/benchmark.py --smoke --rows vae --out /tmp/bench  # a few steps and samples: checks the plumbing

Data: Fashion-MNIST (Debian's dataset-fashion-mnist, or data.dataset.root) at 32x32 for the
unconditional, conditional and GLO rows; pix2pix translates Sobel edge maps of Fashion-MNIST
images (genlab.data.translation.edge_map) into the images; CycleGAN translates sneakers
(class 7) and ankle boots (class 9), unpaired (2,000 a class to train on, 5,000 held out). The two-domain sets are written once as PNG
folders under --cache in the layouts genlab's aligned and unaligned folder data sets read.

Each (row, seed) trains with genlab.train.run, is evaluated with genlab.evaluate.run (the
same code as `genlab eval`, whose JSON gives the protocol: FID mode, sample counts, Inception
weights and their sha256, runtime), then once more on the features of genlab's Fashion-MNIST
classifier (`features=fashion_mnist`: fmnist/fid and fmnist/is for every row, class accuracy and
intra-class FID for the conditional one; its weights' sha256 and test accuracy recorded), and is stored in <out>/results.json with its budget, steps,
wall time, images/s and the commit it ran on; <out>/results.md is the table (mean +- std over
seeds). A (row, seed) already in results.json with the same budget and protocol is skipped,
so the table can be completed in several sittings. Rows not yet run are listed as such.

--reference-dir adds the rows of reference implementations found under it, trained on the
same images for the same number of epochs and evaluated by the same genlab code; their code
is run from that folder, never copied into genlab."""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FMNIST_STEPS_PER_EPOCH = 469  # ceil(60,000 / 128): the reference's DataLoader keeps the last partial batch

# Each row: the Hydra overrides of its training run, the eval metrics, the numbers shown, the
# budget (trainer steps) and the seconds one seed took per 1,000 steps on this 2-core CPU
# (OMP_NUM_THREADS=1; the median images/s of 6-step smoke runs on a shared CPU; for the printed estimate only).
GAN = ["data=fashion_mnist", "trainer.max_steps=${steps}"]
GLO_S, CGAN_S, WGAN_S = 170, 1700, 5600
REF_S = 4200  # not measured: 4x the 32x32 DCGAN's, for the reference's 64x64 networks
ROWS = {
    "vae": dict(family="VAE (conv)", train=["experiment=conv_vae_fashion", "trainer.max_epochs=null", "trainer.max_steps=${steps}"],
                metrics=["recon", "nll"], show=["elbo", "log_likelihood_iw", "bits_per_dim_iw"], steps=10 * FMNIST_STEPS_PER_EPOCH, s_per_1k=220),
    **{f"dcgan_{loss}": dict(family=f"DCGAN {loss}", train=["experiment=dcgan", f"loss={loss}", *GAN], metrics=["fid"], show=["fid"],
                             steps=2 * FMNIST_STEPS_PER_EPOCH, s_per_1k=1050)
       for loss in ("nonsat", "hinge", "lsgan", "ragan")},
    # the penalty needs a critic without batch norm: WGAN-GP's own experiment (layer norm, Adam(1e-4, (0, 0.9)), 5 critic steps)
    "dcgan_wgan_gp": dict(family="DCGAN wgan_gp", train=["experiment=wgan_gp", "data.batch_size=128", *GAN], metrics=["fid"], show=["fid"],
                          steps=2 * FMNIST_STEPS_PER_EPOCH, s_per_1k=WGAN_S),
    "cgan": dict(family="conditional DCGAN", train=["experiment=cgan_digits", *GAN], metrics=["fid"], show=["fid"],
                 steps=2 * FMNIST_STEPS_PER_EPOCH, s_per_1k=CGAN_S),
    "glo": dict(family="GLO", train=["experiment=glo_digits", *GAN], metrics=["fid"], show=["fid"], steps=5000, s_per_1k=GLO_S),
    "pix2pix": dict(family="pix2pix (edges -> Fashion-MNIST)", train=["experiment=pix2pix_digit_edges", "data=facades", "trainer.max_steps=${steps}",
                                                                        "data.batch_size=16", "data.dataset.direction=AtoB", "${edges}"],
                    metrics=["translation", "fid"], show=["l1", "ssim", "fid_AtoB"], steps=3000, s_per_1k=170),
    "cyclegan": dict(family="CycleGAN (sneaker <-> ankle boot)", train=["experiment=cyclegan_digits2edges", "data=horse2zebra",
                                                                       "trainer.max_steps=${steps}", "${shoes}"],
                     metrics=["translation", "fid"], show=["fid_AtoB", "fid_BtoA", "cycle_A", "cycle_B"], steps=3000, s_per_1k=490),
    # pytorch/examples dcgan/main.py: its own 64x64 DCGAN, non-saturating loss, Adam(2e-4, 0.5), batch 128, as many epochs as dcgan_nonsat
    "ref_dcgan": dict(family="reference: pytorch/examples dcgan", reference="dcgan/main.py", metrics=["fid"], show=["fid"],
                      steps=2 * FMNIST_STEPS_PER_EPOCH, s_per_1k=REF_S),
}
# The same samples measured again on the Fashion-MNIST classifier's features (genlab's domain
# network, `features=fashion_mnist`, issue #18): FID and IS of every row's samples, FID of the
# translations, class accuracy and intra-class FID of the conditional row; shown as fmnist/<metric>.
DOMAIN = {name: ["fid"] if name in ("pix2pix", "cyclegan") else ["fid", "is"] for name in ROWS} | {"cgan": ["fid", "is", "class_accuracy", "ifid"]}
DOMAIN_PREFIX = "fmnist/"
SHOES_TRAIN = 2000
FID_S_PER_1K = 160  # Inception features of 1,000 generated images (onnxruntime, one thread): for the estimate only
SMOKE = {"steps": 6, "fid_samples": 64, "iw_samples": 4, "nll_images": 32, "train_images": 256}


def fid_sides(name: str) -> int:
    """Generated sets of images one seed of a row sends through Inception."""
    return 0 if "fid" not in ROWS[name]["metrics"] else 2 if name == "cyclegan" else 1


def folder_overrides(name: str, root: Path, channels: int = 1, size: int = 32) -> list[str]:
    """Overrides that point a genlab folder data set at one of the sets this script writes."""
    return [f"data.dataset.root={root}", f"data.dataset.name={name}", f"data.image_size={size}", f"data.dataset.load_size={size}",
            f"data.channels_A={channels}", f"data.channels_B={channels}", f"data.channels={channels}",
            f"data.shape=[{channels},{size},{size}]", "data.num_workers=0"]


def write_pngs(images, folder: Path) -> None:
    """uint8 (N, H, W) images as folder/00000.png ..."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:05d}.png")


def fashion(split: str):
    """(uint8 images (N, 28, 28), int labels (N,)) of Fashion-MNIST, as genlab finds it."""
    from genlab.data.torchvision_sets import SYSTEM_IDX, default_root, find_idx, read_idx
    from genlab import GenlabError

    for folder in (SYSTEM_IDX["fashion_mnist"], default_root() / "FashionMNIST" / "raw", default_root() / "fashion_mnist"):
        files = find_idx(folder, split)
        if files:
            return read_idx(files[0]), read_idx(files[1])
    raise GenlabError("Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or put its IDX files in " + str(default_root()))


def build_sets(cache: Path, train_images: int | None) -> dict[str, Path]:
    """The two-domain sets, written once (a folder is complete when its .done marker exists):
    edges/{A,B}/{train,test}/ (pix2pix: edge map of each 32x32 Fashion-MNIST image paired with
    it; 10,000 training pairs, the 10,000 test pairs); shoes/{train,test}{A,B}/ (CycleGAN:
    sneakers and ankle boots, unpaired: 2,000 a class from the training split to train on, and
    5,000 a class held out, the test split's 1,000 and the training split's other 4,000, so
    that each direction's FID has 5,000 images a side); fmnist_folder/train/all/ (the training images as PNG, for reference code that
    reads image folders)."""
    import numpy as np
    import torch

    from genlab.data.translation import edge_map, resize

    tag = f"_{train_images}" if train_images else ""
    paths = {"edges": cache / f"fmnist_edges{tag}", "shoes": cache / f"fmnist_shoes{tag}", "folder": cache / f"fmnist_folder{tag}"}
    if not (paths["edges"] / ".done").exists():
        for split, n in (("train", train_images or 10000), ("test", None)):
            images, _ = fashion(split)
            x = resize(torch.from_numpy(images[:n].copy()).float().div(127.5).sub(1).unsqueeze(1), (32, 32)).clamp(-1, 1)  # (N, 1, 32, 32)
            to_u8 = lambda t: t.add(1).mul(127.5).round().clamp(0, 255).byte().squeeze(1).numpy()  # noqa: E731
            write_pngs(to_u8(edge_map(x)), paths["edges"] / "A" / split)
            write_pngs(to_u8(x), paths["edges"] / "B" / split)
        (paths["edges"] / ".done").touch()
    if not (paths["shoes"] / ".done").exists():
        (train, train_labels), (test, test_labels) = fashion("train"), fashion("test")
        for domain, cls in (("A", 7), ("B", 9)):
            own = train[train_labels == cls]  # 6,000 a class: 2,000 to train on, 4,000 join the 1,000 of the test split
            write_pngs(own[: min(train_images or SHOES_TRAIN, SHOES_TRAIN)], paths["shoes"] / f"train{domain}")
            write_pngs(np.concatenate([test[test_labels == cls], own[SHOES_TRAIN:]]), paths["shoes"] / f"test{domain}")
        (paths["shoes"] / ".done").touch()
    if not (paths["folder"] / ".done").exists():
        images, _ = fashion("train")
        write_pngs(images[:train_images], paths["folder"] / "train" / "all")
        (paths["folder"] / ".done").touch()
    return paths


def commit() -> str:
    """HEAD of the checkout the script runs from, with -dirty when tracked files differ."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return head + ("-dirty" if dirty else "")


def budget(name: str, args) -> dict:
    """What a (row, seed) result depends on: a stored result is reused only when this matches."""
    spec = ROWS[name]
    return {"steps": SMOKE["steps"] if args.smoke else spec["steps"], "fid_samples": args.fid_samples, "iw_samples": args.iw_samples,
            "nll_images": args.nll_images, "inception_mode": args.inception_mode, "smoke": bool(args.smoke)}


def train_overrides(name: str, seed: int, run_dir: Path, sets: dict[str, Path], args) -> list[str]:
    b = budget(name, args)
    sets_overrides = {"${edges}": folder_overrides("fmnist_edges", sets["edges"]), "${shoes}": folder_overrides("fmnist_shoes", sets["shoes"])}
    out = []
    for o in ROWS[name]["train"]:
        out += sets_overrides.get(o, [o.replace("${steps}", str(b["steps"]))])
    out += [f"trainer.seed={seed}", "trainer.progress_bar=false", "logger=jsonl", "trainer.eval_every=0"]
    if args.smoke:
        out += ["data.num_workers=0", "trainer.log_every=2", "trainer.sample_every=0", f"data.train_images={SMOKE['train_images']}"]
    return out


def compose(config: str, overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_module

    import genlab.config  # noqa: F401  (registers genlab's resolvers)

    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return hydra_compose(config, overrides=overrides)


def evaluate(metrics: list[str], seed: int, args, ckpt: Path | None = None, fake: Path | None = None, out: Path | None = None,
             features: str = "inception") -> dict:
    """genlab.evaluate.run on a run dir (or a folder of samples against Fashion-MNIST's test split)."""
    from genlab import evaluate as genlab_eval

    n = args.fid_samples
    overrides = [f"seed={seed}", f"n_samples={n}", f"n_real={n}", f"inception.resize={args.inception_mode}", "inception.download=false",
                 f"out={out}", f"features={features}", f"metrics=[{','.join(metrics)}]"]
    if "nll" in metrics:
        overrides += [f"iw_samples={args.iw_samples}", f"max_images={args.nll_images}"]
    overrides += [f"ckpt={ckpt}"] if ckpt else [f"fake={fake}", "data=fashion_mnist", "split=test"]
    return genlab_eval.run(compose("eval", overrides))


def evaluate_row(name: str, seed: int, args, out_dir: Path, **source) -> dict:
    """The row's own metrics (Inception features), then the domain metrics on the Fashion-MNIST
    classifier's features, merged as fmnist/<metric>; each half keeps its protocol."""
    start = time.perf_counter()
    record = evaluate(ROWS[name]["metrics"], seed, args, out=out_dir / "benchmark.eval.json", **source)
    domain = evaluate(DOMAIN[name], seed, args, out=out_dir / "benchmark.eval_fmnist.json", features="fashion_mnist", **source)
    metrics = record["metrics"] | {DOMAIN_PREFIX + k: v for k, v in domain["metrics"].items()}
    return {"metrics": metrics, "protocol": record["protocol"], "protocol_domain": domain["protocol"],
            **({DOMAIN_PREFIX + "per_class": domain["per_class"]} if "per_class" in domain else {}),
            "eval_wall_s": round(time.perf_counter() - start, 2)}


def fresh_run_dir(root: Path, name: str, seed: int) -> Path:
    """The (row, seed)'s run directory, emptied first when an interrupted sitting left one (its
    result was never recorded): the row trains again from scratch, so that its wall time is whole."""
    run_dir = root / "runs" / f"{name}_seed{seed}"
    if run_dir.exists():
        print(f"{run_dir}: left by an interrupted sitting, removed; the row trains again from step 0", flush=True)
        shutil.rmtree(run_dir)
    return run_dir


def run_genlab(name: str, seed: int, root: Path, sets: dict[str, Path], args) -> dict:
    from genlab import train
    from genlab.report import load_run

    run_dir = fresh_run_dir(root, name, seed)
    overrides = train_overrides(name, seed, run_dir, sets, args)
    cfg = compose("train", overrides)
    start = time.perf_counter()
    result = train.run(cfg, run_dir=run_dir, overrides=[])
    train_s = time.perf_counter() - start
    if result["interrupted"]:  # the trainer saved and returned on the signal: the sitting ends, nothing is recorded
        sys.exit(f"{name} seed {seed}: training stopped by {result['interrupted']} at step {result['step']}; nothing recorded for it")
    load = os.getloadavg()[0]
    run = load_run(run_dir)
    batch = int(cfg.data.batch_size)
    return {**evaluate_row(name, seed, args, run_dir, ckpt=run_dir), "overrides": overrides, "steps": int(result["step"]),
            "batch_size": batch, "train_wall_s": round(train_s, 2), "load_1min_after_training": round(load, 2),
            "images_per_s": round(run.images_per_s, 1) if run.images_per_s else round(result["step"] * batch / result["wall_s"], 1),
            "images_per_s_source": "median of the trainer's perf/images_per_s" if run.images_per_s else "steps x batch / training wall time",
            "run_dir": str(run_dir)}


def reference_generator(main_py: Path, nz: int, ngf: int, nc: int):
    """The Generator class of pytorch/examples' dcgan/main.py, read from the reference's own
    file at run time (its module runs training on import, so the class is taken alone)."""
    import torch.nn as nn

    tree = ast.parse(main_py.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Generator")
    namespace = {"nn": nn, "nz": nz, "ngf": ngf, "nc": nc}
    exec(compile(ast.Module(body=[cls], type_ignores=[]), str(main_py), "exec"), namespace)  # noqa: S102
    return namespace["Generator"](1)


def run_reference(name: str, seed: int, root: Path, sets: dict[str, Path], args) -> dict:
    """pytorch/examples' dcgan trained on the Fashion-MNIST training PNGs for the row's epochs,
    then n samples written as 32x32 grey PNGs and evaluated as `genlab eval fake=`."""
    import torch
    import torch.nn.functional as F

    main_py = Path(args.reference_dir) / ROWS[name]["reference"]
    if not main_py.is_file():
        raise FileNotFoundError(f"{main_py} not found: fetch pytorch/examples and give --reference-dir <its root>")
    b = budget(name, args)
    epochs = max(1, round(b["steps"] / FMNIST_STEPS_PER_EPOCH)) if not args.smoke else 1
    run_dir = fresh_run_dir(root, name, seed)
    run_dir.mkdir(parents=True)
    cmd = [sys.executable, str(main_py), "--dataset", "folder", "--dataroot", str(sets["folder"] / "train"), "--batchSize", "128",
           "--niter", str(epochs), "--manualSeed", str(seed + 1), "--outf", str(run_dir), "--workers", "0" if args.smoke else "2"]
    start = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    train_s = time.perf_counter() - start
    load = os.getloadavg()[0]
    steps = sum(1 for line in (run_dir / "train.log").read_text().splitlines() if line.startswith("[") and "Loss_D" in line)
    n_images = len(list((sets["folder"] / "train" / "all").glob("*.png")))
    # samples in train mode (batch-norm batch statistics), as the reference draws its grids
    netG = reference_generator(main_py, 100, 64, 3)
    netG.load_state_dict(torch.load(run_dir / f"netG_epoch_{epochs - 1}.pth", weights_only=True))
    netG.train()
    fake_dir = run_dir / "samples_32"
    from PIL import Image

    fake_dir.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start_i in range(0, args.fid_samples, 128):
            k = min(128, args.fid_samples - start_i)
            x = netG(torch.randn(k, 100, 1, 1, generator=g))                       # (k, 3, 64, 64) in [-1, 1]
            x = F.interpolate(x.mean(1, keepdim=True), size=32, mode="area")       # grey 32x32, as the test split
            for j, im in enumerate(x.add(1).mul(127.5).round().clamp(0, 255).byte().squeeze(1).numpy()):
                Image.fromarray(im).save(fake_dir / f"{start_i + j:05d}.png")
    record = evaluate_row(name, seed, args, run_dir, fake=fake_dir)
    record["protocol"] |= {"reference_samples": "netG of the last epoch in train mode, 64x64 RGB averaged to grey and area-downsampled to 32x32"}
    return {**record, "command": cmd, "steps": steps, "batch_size": 128, "epochs": epochs, "train_images": n_images,
            "train_wall_s": round(train_s, 2), "load_1min_after_training": round(load, 2),
            "images_per_s": round(steps * 128 / train_s, 1) if steps else None,
            "images_per_s_source": "steps x batch / wall time of the reference process (includes its start-up)", "run_dir": str(run_dir)}


# ---- the table: pure functions (tests/test_benchmark.py) ----

def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt_mean_std(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    m, s = mean_std(finite)
    return f"{m:.4g}" if s is None else f"{m:.4g} ± {s:.2g}"


def shown_keys(show: list[str], metrics: dict) -> list[str]:
    """The metric names a row shows: each exact name, or every name it begins (log_likelihood_iw -> log_likelihood_iw1000)."""
    return [k for prefix in show for k in metrics if k == prefix or k.startswith(prefix) and prefix not in metrics]


def pending(results: dict, name: str, seed: int, want: dict) -> bool:
    """Whether (row, seed) still has to run: absent, failed, or run with another budget."""
    done = results.get(name, {}).get("seeds", {}).get(str(seed))
    return not done or "error" in done or done.get("budget") != want


def markdown(results: dict, rows: list[str], seeds: list[int], reasons: dict[str, str]) -> str:
    """One line per row: each shown metric as mean ± std over the seeds that ran, steps, wall
    time and images/s (means), the seeds, the commits, and the protocol in a footnote list."""
    lines = ["| row | metrics (mean ± std over seeds) | steps | train s | eval s | images/s | seeds | commit |",
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for name in rows:
        spec, entry = ROWS[name], results.get(name, {})
        runs = [r for s, r in sorted(entry.get("seeds", {}).items()) if "error" not in r and int(s) in seeds]
        failed = [f"seed {s}: {r['error']}" for s, r in sorted(entry.get("seeds", {}).items()) if "error" in r and int(s) in seeds]
        if not runs:
            why = "; ".join(failed) or reasons.get(name)
            lines.append(f"| {name} ({spec['family']}) | {'not run: ' + why if why else 'not run yet'} | | | | | | |")
            continue
        show = spec["show"] + [DOMAIN_PREFIX + m for m in DOMAIN[name]]
        shown = ", ".join(f"{k} {fmt_mean_std([r['metrics'].get(k) for r in runs])}" for k in shown_keys(show, runs[0]["metrics"]))
        shown = shown or ", ".join(f"{k} {fmt_mean_std([r['metrics'].get(k) for r in runs])}" for k in runs[0]["metrics"] if not k.startswith("n_"))
        mean = lambda key: fmt_mean_std([r.get(key) for r in runs])  # noqa: E731
        commits = ", ".join(sorted({r["commit"][:10] for r in runs}))
        used = ",".join(str(s) for s in sorted(int(s) for s, r in entry["seeds"].items() if "error" not in r and int(s) in seeds))
        lines.append(f"| {name} ({spec['family']}) | {shown}{' (failed ' + '; '.join(failed) + ')' if failed else ''} | {runs[0]['steps']} "
                     f"| {mean('train_wall_s')} | {mean('eval_wall_s')} | {mean('images_per_s')} | {used} | {commits} |")
        notes.append(f"- **{name}**: {protocol_line(runs[0])}")
    return "\n".join(lines + ["", "Protocol of each row (first seed; every seed's full record is in results.json):", ""] + notes) + "\n"


def protocol_line(r: dict) -> str:
    p, b = r.get("protocol", {}), r.get("budget", {})
    parts = [f"budget {b.get('steps')} steps at batch {r.get('batch_size')}" + (f" ({r['epochs']} epochs of {r['train_images']} images)" if "epochs" in r else "")]
    m = r.get("metrics", {})
    counts = {k: int(v) for k, v in m.items() if k.startswith(("n_generated", "n_reference"))}
    parts += [f"{k} {v}" for k, v in counts.items()]
    if "feature_network" in p:
        parts += [f"{p['feature_network']}, weights {Path(str(p.get('weights'))).name} sha256 {str(p.get('weights_sha256'))[:16]}",
                  f"resize {p.get('resize_mode')}, {p.get('inception_runtime')} fp{p.get('inception_precision')}",
                  f"generated: {p.get('generated')}", f"reference: {p.get('reference')}"]
    parts += [f"{k} {p[k]}" for k in ("split", "images") if k in p]
    if "iw_samples" in p.get("options", {}) and any(k.startswith("log_likelihood_iw") for k in m):
        parts.append(f"IWAE k={p['options']['iw_samples']} on the first {p['options']['max_images']} test images")
    if "reference_samples" in p:
        parts.append(p["reference_samples"])
    d = r.get("protocol_domain", {})
    if "classifier_sha256" in d:
        parts.append(f"{DOMAIN_PREFIX}: {d['classifier']} (test accuracy {d.get('classifier_test_accuracy')}), "
                     f"{Path(str(d.get('classifier_weights'))).name} sha256 {str(d['classifier_sha256'])[:16]}, "
                     f"{int(m.get(DOMAIN_PREFIX + 'n_generated', 0))} generated vs {int(m.get(DOMAIN_PREFIX + 'n_reference', 0))} reference")
    if r.get("load_1min_after_training") is not None:
        parts.append(f"load average {r['load_1min_after_training']} at the end of training (2 cores; above ~1.2 the times are shared)")
    if b.get("smoke"):
        parts.append("SMOKE budget (not a result)")
    return "; ".join(str(x) for x in parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW", help=f"rows to run: {', '.join(ROWS)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per row")
    ap.add_argument("--out", default=str(REPO / "benchmarks"), help="results.json, results.md and runs/ go here")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/genlab/benchmark"), help="where the two-domain PNG sets are written")
    ap.add_argument("--fid-samples", type=int, default=5000, help="generated and reference images per FID (and per direction)")
    ap.add_argument("--iw-samples", type=int, default=1000, help="importance samples per image for the VAE's IWAE bound")
    ap.add_argument("--nll-images", type=int, default=1000, help="test images for the VAE's ELBO and IWAE bound")
    ap.add_argument("--inception-mode", default="tf", choices=["tf", "pytorch_fid", "clean"])
    ap.add_argument("--reference-dir", default=None, help="a checkout of pytorch/examples (its dcgan/main.py)")
    ap.add_argument("--smoke", action="store_true", help=f"tiny budget {SMOKE}: checks that the rows run, gives no result")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the estimated time, run nothing")
    args = ap.parse_args()
    if args.smoke:
        args.fid_samples, args.iw_samples, args.nll_images = (min(v, SMOKE[k]) for v, k in
                                                              ((args.fid_samples, "fid_samples"), (args.iw_samples, "iw_samples"), (args.nll_images, "nll_images")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    seeds = list(range(args.seeds))
    reasons = {"ref_dcgan": "give --reference-dir <pytorch/examples checkout>"} if not args.reference_dir else {}
    todo = [(n, s) for n in args.rows for s in seeds if pending(results, n, s, budget(n, args)) and n not in reasons]
    total = 0.0
    for n in args.rows:
        k = sum(1 for m, _ in todo if m == n)
        train_s = ROWS[n]["s_per_1k"] * budget(n, args)["steps"] / 1000
        fid_s = fid_sides(n) * args.fid_samples * FID_S_PER_1K / 1000
        total += k * (train_s + fid_s)
        print(f"{n:14} {budget(n, args)['steps']:6d} steps x {k} seed(s) to run: ~{train_s / 60:.0f} min training + ~{fid_s / 60:.0f} min FID a seed"
              + (f"  (skipped: {reasons[n]})" if n in reasons else ""), flush=True)
    print(f"estimated {total / 3600:.1f} h in all (reference statistics once more per data set; 2-core CPU, OMP_NUM_THREADS=1)", flush=True)
    if args.dry_run:
        return
    # a SIGTERM ends the sitting as Ctrl-C does: the row in progress is not recorded, and a
    # reference's training process is killed with it (subprocess.run kills its child on an exception)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("stopped by SIGTERM; the row in progress is not recorded"))
    sets = build_sets(Path(args.cache), SMOKE["train_images"] if args.smoke else None)
    for name, seed in todo:
        print(f"== {name} seed {seed}", flush=True)
        try:
            r = (run_reference if "reference" in ROWS[name] else run_genlab)(name, seed, out, sets, args)
        except Exception as e:  # noqa: BLE001  (the row records its failure; the table says so)
            if "killed by signal" in str(e):  # `pkill -f` reached the data loader's workers: the sitting was stopped, the row did not fail
                sys.exit(f"{name} seed {seed}: {str(e).strip()}; the sitting stops, nothing recorded for it")
            r = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
            print(f"{name} seed {seed} failed: {r['error']}", flush=True)
        r |= {"budget": budget(name, args), "commit": commit(), "host": platform.node(), "python": platform.python_version(),
              "torch_threads": os.environ.get("OMP_NUM_THREADS"), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        results.setdefault(name, {"family": ROWS[name]["family"], "seeds": {}})["seeds"][str(seed)] = r
        path.write_text(json.dumps(results, indent=2) + "\n")
        (out / "results.md").write_text(markdown(results, list(ROWS), seeds, reasons))
    (out / "results.md").write_text(markdown(results, list(ROWS), seeds, reasons))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
