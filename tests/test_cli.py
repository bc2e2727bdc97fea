"""The CLI end to end in subprocesses, as a user runs it, and its one-line errors."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

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
    from PIL import Image

    for png in (run / "samples" / "samples_0000030.png", samples / "recon.png", samples / "prior.png", samples / "traverse.png"):
        assert Image.open(png).mode == "L", png  # the digits are grey: so are their grids

    genlab("eval", f"ckpt={run}", "iw_samples=10", cwd=tmp_path)
    record = json.loads((run / "checkpoints" / "last.eval.json").read_text())
    assert record["protocol"]["split"] == "test" and record["protocol"]["images"] == 359
    m = record["metrics"]
    # per image, elbo = -(recon_nll + kl) in float32, then averaged in float64: equal to float32 rounding
    assert m["elbo"] == pytest.approx(-(m["recon_nll"] + m["kl"]), rel=1e-6)
    assert m["log_likelihood_iw10"] > m["elbo"] - 1.0 and m["psnr"] > 0


def test_denoising_autoencoder_samples_by_markov_chain(tmp_path):
    genlab("train", "model=dae", "trainer.max_steps=5", f"hydra.run.dir={tmp_path / 'run'}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={tmp_path / 'run'}", "modes=[chain,prior]", "chain.steps=6", "chain.every=2", cwd=tmp_path)
    assert {"chain.png", "chain.gif", "prior.png"} <= {p.name for p in (tmp_path / "run" / "samples" / "last").iterdir()}


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "model=nosuchmodel"], "model=nosuchmodel is not an option of model"),
        (["train", "trainer.max_stepz=3"], "unknown key trainer.max_stepz (in trainer.max_stepz=3); did you mean trainer.max_steps?"),
        (["train", "data=image_folder", "data.dataset.root=/no/such/folder"], "data.dataset.root=/no/such/folder is not a folder"),
        (["train", "data=image_folder"], "data.dataset.root has no value"),
        (["train", "data=cifar10", "data.dataset.root=/no/such/root"], "run with data.dataset.download=true"),
        (["train", "trainer.precision=fp16", "trainer.device=cpu"], "fp16 needs a CUDA device"),
        (["train", "model=ae", "model.recon_loss=huber"], "model.recon_loss='huber' is not one of mse, bce, l1"),
        (["train", "model.likelihood=poisson"], "model.likelihood='poisson' is not one of mse, bce, l1"),
        (["eval", "ckpt=/no/such/run"], "no checkpoint at /no/such/run"),
        (["sample"], "ckpt"),
        (["frobnicate"], "unknown verb 'frobnicate'"),
    ],
)
def test_bad_input_gives_one_clear_error(args, message, tmp_path):
    proc = genlab(*args, *QUIET, cwd=tmp_path, check=False) if args[0] == "train" else genlab(*args, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 not really a zip", "corrupt or not a genlab checkpoint"),
        ({"weights": torch.zeros(2)}, "not a genlab checkpoint (no genlab_format key)"),
        ({"f": subprocess.Popen}, "corrupt or not a genlab checkpoint"),  # loading would import code
        ({"genlab_format": 1, "config": {"model": {"_target_": "os.system"}}}, "refusing model._target_=os.system from"),
    ],
)
def test_corrupt_foreign_and_malicious_checkpoints_are_refused(content, message, tmp_path):
    from genlab import GenlabError, checkpoint

    path = tmp_path / "ckpt.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(GenlabError, match=re.escape(message)):
        checkpoint.load(path)


def test_checkpoint_errors_reach_the_user_as_one_line(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    proc = genlab("eval", f"ckpt={tmp_path / 'bad.pt'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("genlab: error: cannot read checkpoint")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_nan_loss_stops_with_the_fix_and_keeps_the_last_checkpoint(tmp_path):
    proc = genlab("train", "model=ae", "optim=sgd", "optim.momentum=0", "optim.lr=10", "trainer.max_steps=50", "trainer.ckpt_every=1",
                  f"hydra.run.dir={tmp_path}", *QUIET, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "lower optim.lr" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trainer.precision=32" not in proc.stderr  # it already is
    from genlab import checkpoint

    state, _ = checkpoint.load(tmp_path)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_conditional_gan_trains_samples_classes_and_latent_tools(tmp_path):
    run = tmp_path / "cgan"
    genlab("train", "experiment=cgan_digits", "trainer.max_steps=3", "model.generator.base_channels=16",
           "model.discriminator.base_channels=16", f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={run}", "modes=[prior,classes,fixed_z,interp,slerp,arith]", "labels=[3,3,7]", "n=6", "ncol=3",
           "arith.a=[1,2]", "arith.b=[3]", "arith.c=[4,5,6]", cwd=tmp_path)
    files = {p.name for p in (run / "samples" / "last").iterdir()}
    assert {"prior.png", "classes.png", "fixed_z.png", "interp.png", "slerp.png", "arith.png", "interp.gif"} <= files
    from PIL import Image

    # labels=[3,3,7] gives three class rows of ncol=3 images of 32 px (2 px padding)
    classes = Image.open(run / "samples" / "last" / "classes.png")
    assert classes.size == (3 * 34 + 2, 3 * 34 + 2) and classes.mode == "L"


def test_gan_on_ring8_reports_mode_coverage(tmp_path):
    run = tmp_path / "ring"
    genlab("train", "experiment=gan_ring8", "trainer.max_steps=20", f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("eval", f"ckpt={run}", "mode_samples=500", cwd=tmp_path)
    record = json.loads((run / "checkpoints" / "last.eval.json").read_text())
    assert set(record["metrics"]) == {"modes_covered", "modes_total", "high_quality"} and record["metrics"]["modes_total"] == 8
    genlab("sample", f"ckpt={run}", "modes=[prior]", cwd=tmp_path)
    assert (run / "samples" / "last" / "prior.png").is_file()


def test_glo_trains_and_interpolates_between_training_images(tmp_path):
    run = tmp_path / "glo"
    genlab("train", "experiment=glo_digits", "trainer.max_steps=3", "model.generator.base_channels=16", "model.fit_steps=2",
           f"hydra.run.dir={run}", *QUIET, cwd=tmp_path)
    genlab("sample", f"ckpt={run}", "modes=[prior,interp,arith]", "arith.a=[0]", "arith.b=[1]", "arith.c=[2]", cwd=tmp_path)
    assert {"prior.png", "interp.png", "arith.png"} <= {p.name for p in (run / "samples" / "last").iterdir()}
