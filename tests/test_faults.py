"""Faults a user or a machine throws at genlab: crafted checkpoints (nothing runs), bad
command lines and data (one line, exit code 2), signals, kill -9 and a full disk (nothing
finished is lost, nothing is left behind). scripts/fault_trials.py runs the long random-kill
trials by hand; these are the fast cases."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from genlab import GenlabError, RunError, checkpoint, evaluate, export, sample, train
from genlab import load as genlab_load
from genlab.allowlist import ALLOWED_TARGETS
from genlab.validation import check_command_line

QUIET = ["trainer.progress_bar=false", "logger=jsonl"]
TINY = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0", *QUIET]


def genlab(*args, cwd, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(proc) -> str:
    """The single line a failing command printed on stderr (logs go to stdout)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- crafted checkpoints: opening one never runs code from it ------------------------------
class RunsShell:
    """Unpickling this runs a shell command: what torch.load(weights_only=False) would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A genuine 2-step run, and its safetensors export, that the crafted ones start from."""
    run = tmp_path_factory.mktemp("trained")
    train.run(_cfg(["model=vae", *TINY]), run_dir=run)
    export.run(_cfg([f"ckpt={run}", "format=safetensors", f"out={run / 'safetensors'}"], "export"))
    return run


def _crafted(trained: Path, tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(checkpoint, marker file the payload would create) of one of KINDS."""
    marker = tmp_path / f"marker_{kind}"
    touch = f"touch {marker}"
    path = tmp_path / f"{kind}.pt"
    if kind in ("not_a_zip", "torn_zip"):  # not a torch file at all; a zip cut short
        path.write_bytes(b"garbage" if kind == "not_a_zip" else b"PK\x03\x04 not really a zip")
        return path, marker
    if kind == "foreign":  # a torch file of someone else's
        torch.save({"weights": torch.zeros(2)}, path)
        return path, marker
    if kind == "safetensors_target":  # an export folder whose config.json names a foreign _target_
        path = shutil.copytree(trained / "safetensors", tmp_path / kind)
        config = json.loads((path / "config.json").read_text())
        config["config"]["model"] = {"_target_": "os.system", "_args_": [touch]}
        (path / "config.json").write_text(json.dumps(config))
        return path, marker
    real, _ = checkpoint.load(trained)
    config = {k: v for k, v in real["config"].items()}
    if kind in ("pickle", "global"):  # code in the checkpoint's own pickle; an import of a class that could run code
        payload = RunsShell(touch) if kind == "pickle" else subprocess.Popen
        torch.save({"genlab_format": 1, "config": config, "payload": payload}, path)
        return path, marker
    if kind == "torch_load":  # a second file, loaded with weights_only=False by a stored _target_
        evil = tmp_path / "evil.pkl"
        evil.write_bytes(pickle.dumps(RunsShell(touch)))
        config["model"] = {"_target_": "torch.load", "f": str(evil), "weights_only": False}
    elif kind == "os_system":
        config["model"] = {"_target_": "os.system", "_args_": [touch]}
    elif kind == "torch_os_system":  # an allowed module's attribute path to a foreign function
        config["model"] = {"_target_": "torch.os.system", "_args_": [touch]}
    elif kind == "genlab_os_system":
        config["model"] = {"_target_": "genlab.checkpoint.os.system", "_args_": [touch]}
    elif kind == "data_target":
        config["data"] = {**config["data"], "dataset": {"_target_": "subprocess.call", "args": ["touch", str(marker)]}}
    elif kind == "interpolation":  # a resolver in a stored (always resolved) config
        config["model"] = {**config["model"], "latent_dim": "${oc.env:HOME}"}
    torch.save({**real, "config": config}, path)
    return path, marker


def _cfg(overrides: list[str], name: str = "train"):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose(config_name=name, overrides=overrides)


# the refusal of each kind, whole; a prefix (ending in "(") where torch's own error follows
REFUSALS = {
    "not_a_zip": "cannot read checkpoint {path}: it is corrupt or not a genlab checkpoint (",
    "torn_zip": "cannot read checkpoint {path}: it is corrupt or not a genlab checkpoint (",
    "foreign": "{path} is not a genlab checkpoint (no genlab_format key); pass a file written by genlab train",
    "pickle": "cannot read checkpoint {path}: it is corrupt or not a genlab checkpoint (",
    "global": "cannot read checkpoint {path}: it is corrupt or not a genlab checkpoint (",
    "torch_load": "refusing model._target_=torch.load from {path}: not a genlab component",
    "os_system": "refusing model._target_=os.system from {path}: not a genlab component",
    "torch_os_system": "refusing model._target_=torch.os.system from {path}: not a genlab component",
    "genlab_os_system": "refusing model._target_=genlab.checkpoint.os.system from {path}: not a genlab component",
    "data_target": "refusing data.dataset._target_=subprocess.call from {path}: not a genlab component",
    "interpolation": "refusing model.latent_dim='${{oc.env:HOME}}' from {path}: a stored config holds resolved values, not interpolations",
    "safetensors_target": "refusing model._target_=os.system from {path}/config.json: not a genlab component",
}
KINDS = list(REFUSALS)


def assert_refused(message: str, kind: str, path: Path) -> None:
    expected = REFUSALS[kind].format(path=path)
    assert message.startswith(expected) if expected.endswith("(") else message == expected, message
    assert "\n" not in message


@pytest.mark.parametrize("verb", ["train", "eval", "sample", "load"])
@pytest.mark.parametrize("kind", KINDS)
def test_crafted_checkpoints_run_nothing_through_any_verb(kind, verb, trained, tmp_path):
    path, marker = _crafted(trained, tmp_path, kind)
    with pytest.raises(GenlabError) as e:
        if verb == "train":
            train.run(_cfg([f"resume={path}", *QUIET]), run_dir=tmp_path / "resumed", overrides=[])
        elif verb == "eval":
            evaluate.run(_cfg([f"ckpt={path}"], "eval"))
        elif verb == "sample":
            sample.run(_cfg([f"ckpt={path}"], "sample"))
        else:
            genlab_load(path)
    assert_refused(str(e.value), kind, path)
    assert not marker.exists()


@pytest.mark.parametrize(("verb", "kind"), [("train", "torch_load"), ("eval", "torch_load"), ("sample", "torch_load"), ("eval", "not_a_zip")])
def test_crafted_checkpoint_gives_one_line_from_the_command_line(verb, kind, trained, tmp_path):
    path, marker = _crafted(trained, tmp_path, kind)
    args = {"train": ["train", f"resume={path}", *QUIET], "eval": ["eval", f"ckpt={path}"], "sample": ["sample", f"ckpt={path}"]}[verb]
    proc = genlab(*args, cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line.startswith("genlab: error: ")
    assert_refused(line.removeprefix("genlab: error: "), kind, path)
    assert not marker.exists()


def test_every_shipped_target_is_on_the_allow_list():
    """Every _target_ a run's config can hold (Hydra's own settings, such as the sweep
    callback, never reach a checkpoint) names an allowed component, and each allowed name
    is something that exists."""
    import importlib.resources

    import yaml
    from hydra.utils import get_object

    def targets(node):
        if isinstance(node, dict):
            found = {node["_target_"]} if "_target_" in node else set()
            return found.union(*(targets(v) for k, v in node.items() if k != "hydra"))
        return set().union(*(targets(v) for v in node)) if isinstance(node, list) else set()

    configs = Path(str(importlib.resources.files("genlab.configs")))
    shipped = set().union(*(targets(yaml.safe_load(p.read_text())) for p in configs.rglob("*.yaml")))
    assert len(shipped) > 30 and shipped <= ALLOWED_TARGETS, sorted(shipped - ALLOWED_TARGETS)
    for name in ALLOWED_TARGETS:
        assert callable(get_object(name)), name


# -- the command line: one line naming the key, the value and the fix -----------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_steps=abc"], "trainer.max_steps='abc' is not a whole number; give an integer >= 1"),
        (["optim.lr=-0.001"], "optim.lr=-0.001 is out of range; give a number > 0"),
        (["data.batch_size=0"], "data.batch_size=0 is out of range; give an integer >= 1"),
        (["data.image_size=abc"], "data.image_size='abc' is not a whole number; give an integer >= 1"),
        (["trainer.ckpt_every=-5"], "trainer.ckpt_every=-5 is out of range; give an integer >= 0"),
        (["trainer.ema_decay=1.5"], "trainer.ema_decay=1.5 is out of range; give a number >= 0 and < 1"),
        (["optim.betas=[0.5]"], "optim.betas=[0.5] is not two numbers in [0, 1)"),
        (["trainer.precision=16"], "trainer.precision=16 is not one of 32, bf16, fp16"),
        # a renamed key: the old name gives the new one
        (["trainer.inception.mode=clean"], "trainer.inception.mode is now trainer.inception.resize (same values: tf, pytorch_fid, clean); "
                                           "give trainer.inception.resize=..."),
        (["trainer.inception.resize=bilinear"], "trainer.inception.resize='bilinear' is not one of tf, pytorch_fid, clean"),
        (["trainer.max_step=3"], "unknown key trainer.max_step (in trainer.max_step=3); did you mean trainer.max_steps?"),
        (["+trainer.max_step=3"], "+trainer.max_step=3 adds a key that nothing reads; did you mean trainer.max_steps?"),
        (["+trainer.max_steps=3"], "trainer.max_steps is already a key of the train config; set it without the +"),
        (["~trainer.sed"], "cannot delete trainer.sed: not a key of the train config; did you mean trainer.seed?"),
        (["model=vea"], "model=vea is not an option of model (did you mean vae?); choose one of"),
        (["model=nosuchmodel"], "model=nosuchmodel is not an option of model; choose one of"),  # nothing close: no guess
        (["model=vae", "loss=hinge"], "loss=hinge does not apply to model=vae"),
        (["model=ae", "loss.n_critic=5"], "loss.n_critic=5 does not apply to model=ae"),
        (["+optim_groups.main.lr=-1"], "optim_groups.main.lr=-1 is out of range"),
        (["optim_groups.d.lr=1e-4"], "per-group optimizer settings are added with a +: +optim_groups.d.lr=1e-4"),
        (["resume=/no/such/run"], "no checkpoint at /no/such/run"),
        (["model=gan", "model.diffaugment=color,cutout"],
         "model.diffaugment=color,cutout is a sweep; add -m to sweep over it, or give one value: a list as model.diffaugment=[color,cutout]"),
        (["model=pix2pix"], "model.generator.in_channels reads data.channels_A, which data=digits does not have; "
                            "choose a data set that does: cityscapes, digit_edges, digits2edges, edges2shoes, facades"),
    ],
)
def test_bad_command_lines_are_refused_in_one_line(overrides, message):
    with pytest.raises(GenlabError) as e:
        check_command_line("train", overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "data=image_folder", "data.dataset.root=/no/such/folder"], "data.dataset.root=/no/such/folder is not a folder; point it at a folder of images"),
        (["train", "data=image_folder"], "data.dataset.root has no value; set it on the command line: data.dataset.root=..."),
        (["train", "data=cifar10", "data.dataset.root=/no/such/root"],
         "data set 'cifar10' is not under /no/such/root; run with data.dataset.download=true (needs internet), or put torchvision's CIFAR10 files there"),
        (["train", "trainer.precision=fp16", "trainer.device=cpu"], "trainer.precision=fp16 needs a CUDA device; use trainer.precision=bf16 on CPU"),
        (["train", "model=ae", "model.recon_loss=huber"], "model.recon_loss='huber' is not one of mse, bce, l1"),
        (["train", "model.likelihood=poisson"], "model.likelihood='poisson' is not one of mse, bce, l1"),
        (["eval", "ckpt=/no/such/run"], "no checkpoint at /no/such/run; pass a run directory (with checkpoints/last.pt) or a .pt file"),
        (["sample"], "ckpt has no value; set it on the command line: ckpt=..."),
    ],
)
def test_values_refused_after_composing_reach_the_command_line_as_one_line(args, message, tmp_path):
    """What only the composed config, the data or the device can tell, through the real command."""
    proc = genlab(*args, *(QUIET if args[0] == "train" else []), cwd=tmp_path)
    assert proc.returncode == 2
    assert one_line_error(proc).startswith(f"genlab: error: {message}")


def test_an_unknown_verb_names_the_verbs_and_prints_the_usage(tmp_path):
    from genlab.cli import USAGE, VERBS

    proc = genlab("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == f"genlab: error: unknown verb 'frobnicate'; choose one of {', '.join(VERBS)}\n\n{USAGE}\n"


def test_good_command_lines_pass(tmp_path):
    for overrides in (["model=gan", "loss=wgan_gp", "+optim_groups.d.lr=4e-4"], ["+model.encoder.bias=false"],
                      ["experiment=dcgan", "trainer.max_steps=10"], ["model=ae,vae", "optim.lr=1e-3,3e-4"]):
        check_command_line("train", overrides, multirun="," in "".join(overrides))
    check_command_line("eval", ["fake=/x", "real=/y", "n_samples=10"])
    check_command_line("sample", ["ckpt=/x", "modes=[prior]", "n=4"])


def test_a_mistyped_resume_path_creates_nothing(tmp_path):
    proc = genlab("train", "resume=outputs/no-such-run", *QUIET, cwd=tmp_path)
    assert proc.returncode == 2 and "no checkpoint at outputs/no-such-run" in one_line_error(proc)
    assert list(tmp_path.iterdir()) == []


def test_eval_of_two_folders_defaults_to_fid(tmp_path):
    for name, seed in (("fake", 0), ("real", 1)):
        folder = tmp_path / name
        folder.mkdir()
        g = torch.Generator().manual_seed(seed)
        for i in range(4):
            Image.fromarray(torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()).save(folder / f"{i}.png")
    proc = genlab("eval", f"fake={tmp_path / 'fake'}", f"real={tmp_path / 'real'}", "inception.download=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^fid\s+\d", proc.stdout, re.M), proc.stdout


# -- resume: an override is applied or refused, never silently dropped ------------------------
def test_resume_applies_a_new_learning_rate_to_the_optimizer(tmp_path):
    train.run(_cfg(["model=ae", *TINY, "scheduler=cosine"]), run_dir=tmp_path)
    overrides = ["trainer.max_steps=4", "optim.lr=0.0005"]
    train.run(_cfg([f"resume={tmp_path}", *overrides]), run_dir=tmp_path, overrides=overrides)
    state, _ = checkpoint.load(tmp_path)
    assert state["config"]["optim"]["lr"] == 0.0005
    (group,) = state["optimizers"]["main"]["param_groups"]
    assert group["initial_lr"] == 0.0005 and state["schedulers"]["main"]["base_lrs"] == [0.0005]
    from genlab.schedules import warmup_cosine_factor

    assert group["lr"] == pytest.approx(0.0005 * warmup_cosine_factor(4, 4), abs=1e-12)
    assert warmup_cosine_factor(3, 4) > 0.1  # the resumed steps really ran at the new, scheduled rate



@pytest.mark.parametrize(("override", "message"), [("trainer.seed=7", "trainer.seed cannot change when resuming"),
                                                   ("data.batch_size=8", "data.batch_size cannot change when resuming"),
                                                   ("model=vae", "this run was trained with model=None"),
                                                   ("trainer.max_stepz=9", "trainer.max_stepz is not a key of the resumed run's config")])
def test_resume_refuses_what_it_cannot_apply(override, message, tmp_path):
    train.run(_cfg(["model=ae", *TINY]), run_dir=tmp_path)
    with pytest.raises(GenlabError, match=re.escape(message)):
        train.run(_cfg([f"resume={tmp_path}", *QUIET]), run_dir=tmp_path, overrides=[override])


def test_options_the_model_ignores_are_refused(tmp_path):
    with pytest.raises(GenlabError, match=re.escape("trainer.ema_decay=0.9 does not apply: CycleGAN keeps no EMA")):
        train.run(_cfg(["experiment=cyclegan_digits2edges", "trainer.ema_decay=0.9", *TINY]), run_dir=tmp_path)
    with pytest.raises(GenlabError, match=re.escape("trainer.eval_metrics=['fid'] needs a model that samples images")):
        train.run(_cfg(["model=ae", "trainer.eval_metrics=[fid]", *TINY]), run_dir=tmp_path)


# -- data: a bad file is one line naming it, with or without loader workers -------------------
def _image_folder(root: Path, n: int = 20, size=(16, 16)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(torch.full((*size[::-1], 3), 10 * i, dtype=torch.uint8).numpy()).save(root / f"img_{i:02d}.png")
    return root


IMAGE_FOLDER = ["data=image_folder", "data.image_size=16", "data.batch_size=4", "model=ae", *TINY]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_is_one_line_with_or_without_workers(workers, tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "img_09.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # in the test split, read for the first grid
    proc = genlab("train", *IMAGE_FOLDER, f"data.dataset.root={root}", f"data.num_workers={workers}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line.startswith(f"genlab: error: cannot read image {root / 'img_09.png'}: ") and line.endswith("or set data.skip_bad_images=true")


def test_skip_bad_images_skips_and_counts_them(tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "img_03.png").write_bytes(b"not an image")
    Image.new("RGB", (1, 40)).save(root / "img_05.png")  # one pixel wide
    proc = genlab("train", *IMAGE_FOLDER, f"data.dataset.root={root}", "data.skip_bad_images=true", "data.num_workers=2",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipped 2 of 18 images of split 'train'" in proc.stdout


def test_a_degenerate_image_names_the_file(tmp_path):
    root = _image_folder(tmp_path / "images")
    Image.new("RGB", (1, 40)).save(root / "img_05.png")
    with pytest.raises(GenlabError, match=re.escape(f"image {root / 'img_05.png'} is 1x40 pixels, too small to use")):
        train.run(_cfg([*IMAGE_FOLDER, f"data.dataset.root={root}"]), run_dir=tmp_path / "run")


def test_an_odd_width_pair_names_the_file(tmp_path):
    from genlab.data.translation import AlignedFolders

    root = tmp_path / "facades" / "train"
    root.mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(root / "good.png")
    Image.new("RGB", (63, 32)).save(root / "odd.png")
    data = AlignedFolders(str(tmp_path / "facades"), load_size=32, crop_size=32)
    with pytest.raises(GenlabError, match=re.escape(f"image {root / 'odd.png'} is 63 pixels wide: an A|B pair needs an even width")):
        data[data.files.index(root / "odd.png")]
    assert AlignedFolders(str(tmp_path / "facades"), load_size=32, crop_size=32, skip_bad_images=True).files == [root / "good.png"]


# -- non-finite and diverging losses ------------------------------------------------------------
def test_a_nan_names_a_checkpoint_whose_own_loss_was_finite(tmp_path):
    cfg = ["model=ae", "optim=sgd", "optim.momentum=0", "trainer.max_steps=100", "trainer.ckpt_every=1", "trainer.keep_last=0",
           "trainer.eval_every=0", "trainer.sample_every=0", *QUIET]
    with pytest.raises(RunError, match=r"is (nan|inf) at step 1; there is no checkpoint yet; lower optim.lr or set trainer.grad_clip$"):
        train.run(_cfg([*cfg, "optim.lr=1e12"]), run_dir=tmp_path / "at_once")
    # diverges over a few steps: the weights of the last one are already beyond repair. Through
    # the command line: one line, exit code 1, and the fix (not trainer.precision=32: it already is)
    proc = genlab("train", *cfg, "optim.lr=10", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 1
    named = re.fullmatch(r"genlab: error: the loss of phase 'main' is (nan|inf) at step (\d+); the last good checkpoint (\S+) \(step (\d+)\) "
                         r"is intact; lower optim.lr or set trainer.grad_clip", one_line_error(proc))
    assert named, proc.stderr
    failed, good, good_step = int(named.group(2)), named.group(3), int(named.group(4))
    state, _ = checkpoint.load(good)
    assert good_step == failed - 1 and state["step"] == good_step
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    # resuming it reproduces the failure one step later, not at once: its own step's loss is finite
    with pytest.raises(RunError, match=f"at step {failed};"):
        train.run(_cfg([f"resume={tmp_path}", *QUIET]), run_dir=tmp_path, overrides=[])


def test_a_diverging_loss_is_warned_once(tmp_path, caplog):
    cfg = ["model=vae", "model.likelihood=mse", "model.obs_scale=1e-6", "trainer.max_steps=4", "trainer.log_every=1", "trainer.eval_every=0",
           "trainer.sample_every=0", "trainer.ckpt_every=0", *QUIET]
    with caplog.at_level("WARNING", logger="genlab.trainer"):
        train.run(_cfg(cfg), run_dir=tmp_path)
    warnings = [r.message for r in caplog.records if "the training is diverging" in r.message]
    assert len(warnings) == 1


# -- checkpoints under signals, kill -9 and a full disk -----------------------------------------
def test_second_ctrl_c_during_a_checkpoint_write_finishes_it_and_stops(tmp_path, monkeypatch):
    from genlab import trainer as trainer_module

    real_write = checkpoint.atomic_write

    def interrupted_write(path, write):  # Ctrl-C twice while the bytes go to disk
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return real_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", interrupted_write)
    cfg = ["model=ae", "trainer.max_steps=50", "trainer.ckpt_every=1", "trainer.eval_every=0", "trainer.sample_every=0", *QUIET]
    with pytest.raises(trainer_module.Aborted) as e:
        train.run(_cfg(cfg), run_dir=tmp_path)
    assert e.value.exit_code == 130 and "aborted by a second Ctrl-C" in str(e.value) and "\n" not in str(e.value)
    state, _ = checkpoint.load(tmp_path)  # the write in progress was finished, not torn
    assert state["step"] >= 1
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", "train", *QUIET], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # inside main(), importing torch
        maps = Path(f"/proc/{proc.pid}/maps").read_text() if proc.poll() is None else ""
        if "libtorch" in maps:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip() == "genlab: interrupted"


def test_a_ctrl_c_that_a_library_swallowed_still_stops_with_one_line(tmp_path):
    """A SIGINT whose exception a library catches and drops (seen once during start-up: the run
    trained on): the CLI remembers it and exits 130, and the trainer does not start training."""
    from genlab import StartUpInterrupts

    script = ("import os, signal, sys\nfrom genlab import cli\n"
              "def verb(name, args):\n"
              "    try:\n        os.kill(os.getpid(), signal.SIGINT); [None for _ in range(10**6)]\n"
              "    except KeyboardInterrupt:\n        pass  # a library's except\n"
              "cli._run_verb = verb\ncli.main(['train'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr.strip()) == (130, "genlab: interrupted")

    interrupts = StartUpInterrupts()
    interrupts.tripped = True
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        result = train.run(_cfg(["model=ae", "trainer.max_steps=5", "trainer.eval_every=0", "trainer.sample_every=0", *QUIET]),
                           run_dir=tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result["interrupted"] == "SIGINT" and result["step"] == 0


def test_kill_9_leaves_a_loadable_checkpoint_and_resume_cleans_up(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genlab.cli", "train", "model=conv_vae", "trainer.max_steps=100000", "trainer.ckpt_every=1",
           "trainer.keep_last=2", "trainer.eval_every=0", "trainer.sample_every=0", *QUIET, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "step_0000003.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    (run / "checkpoints" / ".last.pt.999999999.tmp").write_bytes(b"half")  # as a kill during a write leaves it
    state, _ = checkpoint.load(run)
    step = state["step"]
    overrides = [f"trainer.max_steps={step + 1}"]
    train.run(_cfg([f"resume={run}", *overrides, *QUIET]), run_dir=run, overrides=overrides)
    assert checkpoint.load(run)[0]["step"] == step + 1
    assert not list((run / "checkpoints").glob(".*.tmp"))


def _tmpfs(path: Path, size_bytes: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)], capture_output=True).returncode == 0


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    probe = tmp_path / "probe"
    train.run(_cfg(["model=ae", *TINY]), run_dir=probe)
    size = (probe / "checkpoints" / "last.pt").stat().st_size
    run = tmp_path / "small_disk"
    mounted = _tmpfs(run, int(size * 1.6))  # room for one checkpoint, not for its replacement beside it
    if not mounted:  # no mount rights: the same failure from the write itself, on the second checkpoint
        import builtins

        from genlab import atomic

        opened = {"n": 0}

        def open_on_full_disk(path, mode="r", *args, **kwargs):
            f = builtins.open(path, mode, *args, **kwargs)
            opened["n"] += 1
            if opened["n"] > 1:
                def write(data):
                    raise OSError(errno.ENOSPC, "No space left on device")
                f.write = write
            return f

        monkeypatch.setattr(atomic, "open", open_on_full_disk, raising=False)
    try:
        cfg = ["model=ae", "trainer.max_steps=50", "trainer.ckpt_every=1", "trainer.keep_last=0", "trainer.eval_every=0",
               "trainer.sample_every=0", *QUIET]
        with pytest.raises(RunError) as e:
            train.run(_cfg(cfg), run_dir=run)
        message = str(e.value)
        assert e.value.exit_code == 1 and re.fullmatch(
            r"no space left on \S+ \(mounted at \S+\) writing the checkpoint of step \d+; the previous checkpoint \S+last\.pt \(step \d+\) is intact", message), message
        assert checkpoint.load(run)[0]["step"] >= 1
        assert not list((run / "checkpoints").glob(".*.tmp"))
    finally:
        if mounted:
            subprocess.run(["umount", str(run)], check=False)


def test_ctrl_c_after_the_verb_has_finished_is_ignored(monkeypatch):
    """Once the verb's work is done or saved, a late second Ctrl-C during interpreter shutdown
    must not kill the process by signal (exit -2 instead of 130)."""
    from genlab import cli

    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(cli, "_run_verb", lambda verb, args: None)
    try:
        cli.main(["train"])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
