"""A contributor's extension, the documented way, from outside genlab: an adversarial family
(an AdversarialModel subclass in a module of one's own, its YAML in an extra config folder
on Hydra's search path) and an adversarial objective (an Objective subclass and its loss
YAML) train through genlab.train.run with no edit of genlab; a checkpoint of them reads back
through the allow list only once genlab.allowlist.register names them."""

import json
import re
import textwrap

import pytest
import torch

import genlab
from genlab import GenlabError, allowlist, checkpoint
from genlab.allowlist import ALLOWED_TARGETS, register
from genlab.train import run

FAMILY = '''
import torch
import torch.nn.functional as F

from genlab.losses.adversarial import Objective
from genlab.models.base import AdversarialModel, SamplesPrior


class SquaredHinge(Objective):
    """D: E relu(1 - D(x))^2 + E relu(1 + D(G(z)))^2; G: -E D(G(z))."""

    def d(self, real, fake):
        return F.relu(1 - real).pow(2).mean() + F.relu(1 + fake).pow(2).mean()

    def g(self, real, fake):
        return -fake.mean()


class FlatGAN(AdversarialModel, SamplesPrior):
    """A GAN of flattened images; the shared set-up (loss, phases, penalty checks) is AdversarialModel's."""

    ema_modules = ("generator",)
    monitor = None
    claimed_modes = ("prior",)
    claimed_metrics = ("modes", "stacked_modes")

    def __init__(self, generator, discriminator, loss, z_dim):
        super().__init__(loss, discriminator=discriminator)
        self.generator, self.discriminator, self.z_dim = generator, discriminator, z_dim

    def param_groups(self):
        return {"d": list(self.discriminator.parameters()), "g": list(self.generator.parameters())}

    def discriminators(self):
        return (self.discriminator,)

    def training_step(self, batch, phase, ctx):
        real = batch["image"]
        D = self.adversarial.critic(self.discriminator)
        if phase == "d_reg":
            return self.adversarial.d_reg_loss(D, real)
        fake = self.generator(torch.randn(len(real), self.z_dim, device=real.device))
        if phase == "d":
            return self.adversarial.d_loss(D, real, fake)
        loss = self.adversarial.g_loss(D, real, fake)
        return loss, {"loss": loss}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        return {"d_real": self.discriminator(batch["image"])}

    @property
    def sample_shape(self):
        return tuple(self.generator.net.out_shape)

    @torch.no_grad()
    def sample(self, n, labels=None):
        return self.generator(torch.randn(n, self.z_dim, device=next(self.parameters()).device))
'''
MODEL_YAML = """
_target_: throwaway_family.FlatGAN
z_dim: 8
loss: ${loss}
generator:
  _target_: genlab.nets.mlp.MLPGenerator
  z_dim: ${model.z_dim}
  out_shape: ${data.shape}
  hidden: [16]
  final_activation: ${data.output_activation}
discriminator:
  _target_: genlab.nets.mlp.MLPDiscriminator
  in_shape: ${data.shape}
  hidden: [16]
"""
LOSS_YAML = """
defaults:
  - default

objective:
  _target_: throwaway_family.SquaredHinge
n_critic: 2
"""
TINY = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0", "data.batch_size=4"]


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """The family's module on sys.path, its configs in tmp_path/configs, and a registry of
    one's own (left as it was afterwards)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "throwaway_family.py").write_text(textwrap.dedent(FAMILY))
    for group, name, text in (("model", "flat_gan", MODEL_YAML), ("loss", "squared_hinge", LOSS_YAML)):
        (tmp_path / "configs" / group).mkdir(parents=True)
        (tmp_path / "configs" / group / f"{name}.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.setattr(allowlist, "_registered", set())
    return [f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "model=flat_gan", "loss=squared_hinge"]


def test_a_family_and_a_loss_of_ones_own_train_and_read_back_once_registered(extension, make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    result = run(make_cfg("train", [*extension, *TINY]), run_dir=run_dir, overrides=[])
    assert result["step"] == 2
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"train/d/d_real", "train/d/loss", "train/g/loss"} <= set().union(*logged)
    state, _ = _read_unchecked(run_dir)
    # the loss config's two critic steps on each of the two steps; the objective is the loss's, not the family's default
    assert [max(int(s["step"]) for s in state["optimizers"][g]["state"].values()) for g in ("d", "g")] == [4, 2]
    assert state["config"]["model"]["loss"]["objective"]["_target_"] == "throwaway_family.SquaredHinge"

    path = re.escape(str(run_dir / "checkpoints" / "last.pt"))
    with pytest.raises(GenlabError, match=rf"^refusing model._target_=throwaway_family.FlatGAN from {path}: not a genlab component$"):
        checkpoint.load(run_dir)
    import throwaway_family

    register(throwaway_family.FlatGAN)
    with pytest.raises(GenlabError, match=r"^refusing model.loss.objective._target_=throwaway_family.SquaredHinge from .*: not a genlab component$"):
        checkpoint.load(run_dir)
    register(throwaway_family.SquaredHinge)
    trained = genlab.load(run_dir)
    assert type(trained.model) is throwaway_family.FlatGAN and type(trained.model.adversarial.objective) is throwaway_family.SquaredHinge
    x = trained.sample(3, seed=0)
    assert x.shape == (3, 1, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_a_loss_applies_to_a_model_by_its_class(extension, make_cfg, tmp_path):
    """loss= is for AdversarialModel subclasses, one's own included; the refusal lists the shipped adversarial configs."""
    from genlab.config import adversarial_model_configs
    from genlab.validation import check_applies

    choices = {"model": "flat_gan", "loss": "squared_hinge"}
    check_applies(make_cfg("train", extension), choices, ["loss.n_critic=3"])
    (tmp_path / "configs" / "model" / "flat_gan.yaml").write_text("_target_: genlab.models.vae.VAE\n")
    shipped = ", ".join(adversarial_model_configs())
    assert "gan, gan_mlp" in shipped
    with pytest.raises(GenlabError, match=rf"^loss=squared_hinge does not apply to model=flat_gan: only adversarial models \({re.escape(shipped)}\) "):
        check_applies(make_cfg("train", extension), choices, [])


def _read_unchecked(run_dir):
    path = checkpoint.resolve(run_dir)
    return torch.load(path, map_location="cpu", weights_only=True), path


def test_the_derived_allow_list_holds_genlab_components_only(monkeypatch):
    from test_contract import TwoPlayer

    monkeypatch.setattr(allowlist, "_registered", set())
    assert {"genlab.models.gan.GAN", "genlab.losses.adversarial.Hinge", "genlab.nets.mlp.MLP", "genlab.data.digits.Digits"} <= ALLOWED_TARGETS
    # genlab classes that are no component, names through a module's imports, other code
    for name in ("genlab.models.cyclegan.ImagePool", "genlab.trainer.Trainer", "genlab.checkpoint.os.system", "genlab.models.gan.torch.load",
                 "genlab.models.gan.GenlabError", "torch.load", "os.system", "test_contract.TwoPlayer", "genlab.cli.main"):
        assert name not in ALLOWED_TARGETS, name
    register(TwoPlayer)
    assert "test_contract.TwoPlayer" in ALLOWED_TARGETS


def test_register_takes_component_classes_only(monkeypatch):
    from torch import nn

    monkeypatch.setattr(allowlist, "_registered", set())

    class Local(nn.Module):
        pass

    for thing in (dict, print, Local):
        with pytest.raises(GenlabError, match=r"^genlab.allowlist.register takes classes defined at module level that derive from genlab.models.base.GenerativeModel"):
            register(thing)
    assert not allowlist._registered


def test_the_cli_trains_an_extension_on_the_search_path_and_reads_it_back_once_a_package_declares_it(extension, tmp_path):
    """From the command line: hydra.searchpath adds the folders' options; eval, sample and resume
    read the run back once an installed package lists the classes under the genlab.allowlist
    entry point group (here a dist-info folder on PYTHONPATH), and refuse it in one line before."""
    import os
    import subprocess
    import sys

    from test_cli import QUIET

    from pathlib import Path

    root = Path(genlab.__file__).resolve().parent.parent  # the genlab under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "code"), str(root), os.environ.get("PYTHONPATH", "")])}

    def genlab_cli(*args):
        return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    run_dir = tmp_path / "cli_run"
    proc = genlab_cli("train", *extension, *TINY, *QUIET, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    proc = genlab_cli("sample", f"ckpt={run_dir}", "modes=[prior]", "n=4")
    assert proc.returncode == 2 and proc.stderr.strip() == f"genlab: error: refusing model._target_=throwaway_family.FlatGAN from {run_dir / 'checkpoints' / 'last.pt'}: not a genlab component"
    dist = tmp_path / "code" / "throwaway_family-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-family\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[genlab.allowlist]\nFlatGAN = throwaway_family:FlatGAN\nSquaredHinge = throwaway_family:SquaredHinge\n")
    proc = genlab_cli("sample", f"ckpt={run_dir}", "modes=[prior]", "n=4")
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "samples" / "last" / "prior.png").is_file()
