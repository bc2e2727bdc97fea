"""The CLI end to end in subprocesses, as a user runs it (its one-line errors: tests/test_faults.py)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

QUIET = ["trainer.progress_bar=false", "logger=jsonl"]


def genlab(*args, cwd, check=True):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_help_lists_the_verbs(tmp_path):
    out = genlab("--help", cwd=tmp_path).stdout
    verbs = [line.split()[0] for line in out.split("verbs:\n", 1)[1].splitlines() if line.startswith("  ")]
    assert verbs == ["train", "eval", "sample", "export", "classifier", "report"]


def test_train_help_shows_config_groups(tmp_path):
    from test_configs import options

    out = genlab("train", "--help", cwd=tmp_path).stdout
    for group in ("model", "data", "loss"):  # every file of the group, in order, and nothing else (no shared bases)
        assert f"{group}: {', '.join(options(group))}\n" in out
    assert "data: celeba, cifar10, " in out and "digits, digits2edges, " in out and "_translation_data" not in out
    assert "loss: default, feature_matching, hinge, " in out and "model: ae, cgan, classifier, " in out
    for group in ("optim:", "scheduler:", "trainer:", "logger:", "experiment:"):
        assert group in out


def test_cfg_job_prints_the_composed_config(tmp_path):
    out = genlab("train", "model=vae", "optim.lr=3e-4", "--cfg", "job", cwd=tmp_path).stdout
    assert "_target_: genlab.models.vae.VAE" in out and "lr: 0.0003" in out


def test_train_then_sample_and_eval_from_its_checkpoint(tmp_path):
    genlab("train", "model=vae", "trainer.max_steps=30", "trainer.log_every=10", "trainer.eval_every=15", "trainer.sample_every=15", "trainer.ckpt_every=15", *QUIET, cwd=tmp_path)
    (run,) = list((tmp_path / "outputs").glob("*/*"))
    assert {"last.pt", "best.pt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "samples" / "samples_0000030.png").is_file()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"train/loss", "train/elbo", "val/elbo", "perf/images_per_s", "lr/main"} <= set().union(*lines)

    out = genlab("sample", f"ckpt={run}", "interp.steps=5", "chain.steps=4", cwd=tmp_path).stdout
    samples = run / "samples" / "last"
    for name in ("recon.png", "prior.png", "interp.png", "interp.gif", "slerp.png", "traverse.png", "traverse.gif"):
        assert (samples / name).is_file(), out
    for png in (run / "samples" / "samples_0000030.png", samples / "recon.png", samples / "prior.png", samples / "traverse.png"):
        assert Image.open(png).mode == "L", png  # the digits are grey: so are their grids

    genlab("eval", f"ckpt={run}", "iw_samples=10", cwd=tmp_path)
    record = json.loads((run / "checkpoints" / "last.eval.json").read_text())
    assert record["protocol"]["split"] == "test" and record["protocol"]["images"] == 359
    m = record["metrics"]
    # per image, elbo = -(recon_nll + kl) in float32, then averaged in float64: equal to float32 rounding
    assert m["elbo"] == pytest.approx(-(m["recon_nll"] + m["kl"]), rel=1e-6)
    assert m["log_likelihood_iw10"] > m["elbo"] - 1.0 and m["psnr"] > 0


SIDE = 32  # the digits' image size


def grid_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a grid of digit-sized images with save_grid's 2-pixel padding."""
    return cols * (SIDE + 2) + 2, rows * (SIDE + 2) + 2


def grid_cells(grid: Image.Image, rows: int, cols: int) -> list[list[bytes]]:
    """The pixels of each image of a grid, by row and column."""
    return [[grid.crop((2 + c * (SIDE + 2), 2 + r * (SIDE + 2), 2 + c * (SIDE + 2) + SIDE, 2 + r * (SIDE + 2) + SIDE)).tobytes()
             for c in range(cols)] for r in range(rows)]


def test_denoising_autoencoder_samples_by_markov_chain(tmp_path):
    genlab("train", "model=dae", "trainer.max_steps=5", f"hydra.run.dir={tmp_path / 'run'}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={tmp_path / 'run'}", "modes=[chain,prior]", "chain.steps=6", "chain.every=2", cwd=tmp_path)
    samples = tmp_path / "run" / "samples" / "last"
    assert {p.name for p in samples.iterdir()} == {"chain.png", "chain.gif", "prior.png"}
    # chain.chains=8 rows of the states at steps 0, 2, 4, 6; n=64 prior samples in rows of ncol=8
    chain = Image.open(samples / "chain.png")
    assert (chain.size, chain.mode) == (grid_size(8, 4), "L")
    for row in grid_cells(chain, 8, 4):
        assert len(set(row)) == 4  # each snapshot of a chain differs from the others: the chain moves
    prior = Image.open(samples / "prior.png")
    assert (prior.size, prior.mode) == (grid_size(8, 8), "L")
    # every state 0..6 as a frame of the 8 chains, then back (6 frames ... 1): 7 + 5 frames
    gif = Image.open(samples / "chain.gif")
    assert (gif.n_frames, gif.size) == (12, grid_size(1, 8))


def test_multirun_sweep_gives_each_combination_its_run_dir(tmp_path):
    genlab("train", "-m", "optim.lr=1e-3,3e-4", "model=ae,vae", "trainer.max_steps=2", *QUIET, cwd=tmp_path)
    runs = sorted((tmp_path / "multirun").glob("*/*/*/checkpoints/last.pt"))
    assert len(runs) == 4
    overrides = sorted((r.parent.parent / ".hydra" / "overrides.yaml").read_text() for r in runs)
    assert sum("model=vae" in o for o in overrides) == 2 and sum("optim.lr=0.0003" in o or "optim.lr=3e-4" in o for o in overrides) == 2


def test_works_from_any_directory_with_configs_inside_the_wheel(tmp_path):
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("genlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"genlab/configs/train.yaml", "genlab/configs/model/vae.yaml", "genlab/configs/trainer/debug.yaml", "genlab/configs/_translation_data.yaml", "genlab/cli.py"} <= names


def test_conditional_gan_trains_samples_classes_and_latent_tools(tmp_path):
    run = tmp_path / "cgan"
    genlab("train", "experiment=cgan_digits", "trainer.max_steps=3", "model.generator.base_channels=16",
           "model.discriminator.base_channels=16", f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={run}", "modes=[prior,classes,fixed_z,interp,slerp,arith]", "labels=[3,3,7]", "n=6", "ncol=3",
           "arith.a=[1,2]", "arith.b=[3]", "arith.c=[4,5,6]", cwd=tmp_path)
    files = {p.name for p in (run / "samples" / "last").iterdir()}
    assert {"prior.png", "classes.png", "fixed_z.png", "interp.png", "slerp.png", "arith.png", "interp.gif"} <= files
    # labels=[3,3,7] gives three class rows of ncol=3 images of 32 px (2 px padding)
    classes = Image.open(run / "samples" / "last" / "classes.png")
    assert (classes.size, classes.mode) == (grid_size(3, 3), "L")


def test_gan_on_ring8_reports_mode_coverage(tmp_path):
    run = tmp_path / "ring"
    genlab("train", "experiment=gan_ring8", "trainer.max_steps=20", f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("eval", f"ckpt={run}", "mode_samples=500", cwd=tmp_path)
    record = json.loads((run / "checkpoints" / "last.eval.json").read_text())
    assert set(record["metrics"]) == {"modes_covered", "modes_total", "high_quality"} and record["metrics"]["modes_total"] == 8
    genlab("sample", f"ckpt={run}", "modes=[prior]", cwd=tmp_path)
    # one 256-px scatter plot: the data's density in green, the samples' in red, no blue
    prior = Image.open(run / "samples" / "last" / "prior.png")
    assert (prior.size, prior.mode) == ((256, 256), "RGB")
    red, green, blue = (band.getextrema() for band in prior.split())
    assert red[1] > 0 and green[1] > 0 and blue == (0, 0)


def test_glo_trains_and_interpolates_between_training_images(tmp_path):
    run = tmp_path / "glo"
    genlab("train", "experiment=glo_digits", "trainer.max_steps=3", "model.generator.base_channels=16", "model.fit_steps=2",
           f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={run}", "modes=[prior,interp,arith]", "arith.a=[0]", "arith.b=[1]", "arith.c=[2]", cwd=tmp_path)
    samples = run / "samples" / "last"
    assert {p.name for p in samples.iterdir()} == {"prior.png", "interp.png", "interp.gif", "arith.png"}
    # n=64 samples in rows of 8; interp.pairs=8 rows of interp.steps=10; one row of a, b, c and a - b + c
    sizes = {name: (Image.open(samples / name).size, Image.open(samples / name).mode) for name in ("prior.png", "interp.png", "arith.png")}
    assert sizes == {"prior.png": (grid_size(8, 8), "L"), "interp.png": (grid_size(8, 10), "L"), "arith.png": (grid_size(1, 4), "L")}
