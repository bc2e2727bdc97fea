"""Exact resume: 2 steps + resume + 2 steps == 4 straight steps, bit for bit; checkpoints
written atomically and left loadable by a crash or a signal."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from genlab import GenlabError, checkpoint, train
from test_contract import TwoPlayer, make_trainer

CADENCE = ["trainer.ckpt_every=2", "trainer.eval_every=2", "trainer.sample_every=2", "trainer.eval_batches=1"]
CASES = {
    "ae_with_augmentation": ["model=ae", "data.augment.hflip=true", "data.augment.crop_padding=2"],
    "dae_noise": ["model=dae", "model.corruption.kind=salt_pepper"],
    "vae_ema_scheduler": ["model=vae", "trainer.ema_decay=0.9", "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"],
    "conv_vae_batchnorm": ["model=conv_vae"],
    "conv_vae_channels_last_bf16": ["model=conv_vae", "trainer.channels_last=true", "trainer.precision=bf16"],
    "stacked_greedy_phases": ["model=stacked_ae", "model.greedy_pretrain_steps=1"],
    "dcgan_wgan_gp_n_critic": ["model=gan", "loss=wgan_gp", "loss.n_critic=2", "model.discriminator.norm=layer", "model.discriminator.base_channels=16", "model.generator.base_channels=16"],
    "cgan_hinge_ema": ["model=cgan", "loss=hinge", "trainer.ema_decay=0.9", "model.discriminator.base_channels=16", "model.generator.base_channels=16"],
    "mlp_gan_lazy_r1": ["model=gan_mlp", "loss=r1", "loss.r1_every=3"],
    "mlp_wgan_clip": ["model=gan_mlp", "loss=wgan", "loss.n_critic=2"],
    "glo_codes": ["model=glo", "model.generator.base_channels=16", "model.fit_steps=2"],
    "pix2pix_dropout": ["experiment=pix2pix_digit_edges", "model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "cyclegan_pools": ["experiment=cyclegan_digits2edges", "model.pool_size=3", "model.generator_AB.base_channels=8",
                       "model.generator_AB.n_blocks=2", "model.discriminator_A.base_channels=8"],
}


def assert_same_state(a: dict, b: dict, path="state"):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a} != {b}"


def final_state(run_dir):
    state, _ = checkpoint.load(run_dir)
    return {k: state[k] for k in ("step", "model", "ema", "optimizers", "schedulers", "data", "rng")}


@pytest.mark.parametrize("case", CASES)
def test_two_steps_resume_two_steps_equals_four_steps(case, make_cfg, tmp_path):
    overrides = [*CASES[case], *CADENCE]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.run(make_cfg("train", [*overrides, "trainer.max_steps=4"]), run_dir=straight)
    train.run(make_cfg("train", [*overrides, "trainer.max_steps=2"]), run_dir=split)
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed = train.run(make_cfg("train", [f"resume={split}", "trainer.max_steps=4"]), run_dir=split, overrides=["trainer.max_steps=4"])
    assert resumed["step"] == 4
    assert_same_state(final_state(straight), final_state(split))


def test_two_optimizer_model_resumes_exactly(make_cfg, tmp_path):
    cfg4 = make_cfg("train", ["trainer.max_steps=4", *CADENCE])
    cfg2 = make_cfg("train", ["trainer.max_steps=2", *CADENCE])
    torch.manual_seed(0)
    make_trainer(cfg4, TwoPlayer(), tmp_path / "a").fit()
    torch.manual_seed(0)
    make_trainer(cfg2, TwoPlayer(), tmp_path / "b").fit()
    torch.manual_seed(0)
    state, path = checkpoint.load(tmp_path / "b")
    make_trainer(cfg4, TwoPlayer(), tmp_path / "b").fit(resume=(state, path))
    assert_same_state(final_state(tmp_path / "a"), final_state(tmp_path / "b"))


def test_resume_keeps_the_runs_model(make_cfg, tmp_path):
    train.run(make_cfg("train", ["model=ae", "trainer.max_steps=1"]), run_dir=tmp_path)
    with pytest.raises(GenlabError, match="trained with model=None|trained with model="):
        train.run(make_cfg("train", [f"resume={tmp_path}", "model=vae"]), run_dir=tmp_path, overrides=["model=vae"])


def test_a_run_directory_holding_a_run_continues_it_or_refuses_another_config(make_cfg, tmp_path):
    """Training again into a directory with a last.pt (`make demo` twice, a fixed
    hydra.run.dir) continues the same config's run instead of overwriting its checkpoints and
    appending a second run to its metrics.jsonl; another config is refused and the finished
    run is left as it was."""
    overrides = ["model=ae", "trainer.max_steps=2", *CADENCE]
    train.run(make_cfg("train", overrides), run_dir=tmp_path)
    before = final_state(tmp_path)
    log_before = (tmp_path / "metrics.jsonl").read_text()
    again = train.run(make_cfg("train", overrides), run_dir=tmp_path)
    assert again["step"] == 2
    assert_same_state(before, final_state(tmp_path))
    assert [r["event"] for r in json.loads((tmp_path / "status.json").read_text())["history"]] == ["started", "resumed"]
    with pytest.raises(GenlabError, match=rf"^{tmp_path} already holds a run of another config \(step 2; differs in model.recon_loss, "
                                          rf"trainer.max_steps\): give resume={tmp_path} with your overrides"):
        train.run(make_cfg("train", ["model=ae", "model.recon_loss=l1", "trainer.max_steps=3", *CADENCE]), run_dir=tmp_path)
    assert_same_state(before, final_state(tmp_path))
    assert (tmp_path / "metrics.jsonl").read_text().startswith(log_before)


def test_checkpoint_keeps_last_best_and_step_files(make_cfg, tmp_path):
    train.run(make_cfg("train", ["model=ae", "trainer.max_steps=6", *CADENCE]), run_dir=tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "last.pt", "step_0000004.pt", "step_0000006.pt"]
    state, _ = checkpoint.load(tmp_path / "checkpoints" / "best.pt")
    assert state["best"]["name"] == "val/mse" and state["best"]["step"] in (2, 4, 6)


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save({"genlab_format": 1, "config": {}, "step": 1}, path)

    def crash(obj, f, *a, **k):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"genlab_format": 1, "config": {}, "step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)[0]["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_loadable_checkpoint_and_resumes(sig, tmp_path):
    cmd = [sys.executable, "-m", "genlab.cli", "train", "trainer.max_steps=1000000", "trainer.ckpt_every=0",
           "trainer.eval_every=0", "trainer.sample_every=0", "trainer.progress_bar=false", "logger=jsonl",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "metrics.jsonl").exists() and time.time() < deadline:  # training has begun
        time.sleep(0.2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig.value, out
    state, _ = checkpoint.load(tmp_path)
    assert state["step"] > 0
    assert f"resume with: genlab train resume={tmp_path}" in out
