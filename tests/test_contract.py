"""The trainer contract: every model's phases give finite losses and gradients only on their
own parameter group; the trainer runs multi-optimizer schedules (n_critic repeats, lazy
phases, ctx shared between phases) for models beyond the autoencoders."""

import functools
import importlib.resources
import json

import pytest
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from torch import nn

from genlab.config import build, model_class
from genlab.models.base import GenerativeModel, SamplesPrior
from genlab.models.phase import Phase
from genlab.train import build_trainer

MODEL_CONFIGS = importlib.resources.files("genlab.configs").joinpath("model")
MODELS = sorted(p.name.removesuffix(".yaml") for p in MODEL_CONFIGS.iterdir() if p.name.endswith(".yaml"))
# network sizes the small settings give wherever a model config sets them
SMALL = {"base_channels": 8, "n_blocks": 1}


def config_class(name: str) -> type:
    """The class of configs/model/<name>.yaml."""
    return model_class(yaml.safe_load(MODEL_CONFIGS.joinpath(f"{name}.yaml").read_text()))


def settings(name: str) -> list[str]:
    """model=<name> on data it trains on offline: its class's example_overrides (a two-domain
    family's offline experiment)."""
    return [f"model={name}", *config_class(name).example_overrides]


@functools.cache
def small_settings(name: str) -> tuple[str, ...]:
    """settings(name) with narrow networks: every base_channels and n_blocks that the composed
    model config sets (not those that follow another by interpolation) made small."""
    from hydra import compose, initialize_config_module

    base = settings(name)
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        model = compose(config_name="train", overrides=base).model
    return (*base, *(f"model.{path}={SMALL[path.rsplit('.', 1)[-1]]}" for path in _literal_keys(model, SMALL)))


def discriminator_norm_keys(name: str) -> list[str]:
    """The config keys of the discriminators whose norm configs/model/<name>.yaml sets
    (model.discriminator, model.discriminator_A; not one that follows another by interpolation)."""
    model = OmegaConf.create(yaml.safe_load(MODEL_CONFIGS.joinpath(f"{name}.yaml").read_text()))
    return [f"model.{path.rsplit('.', 1)[0]}" for path in _literal_keys(model, {"norm"}) if path.startswith("discriminator")]


def _literal_keys(node: DictConfig, names, prefix: str = "") -> list[str]:
    found = []
    for key in node:
        if OmegaConf.is_interpolation(node, key):
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            found += _literal_keys(value, names, f"{prefix}{key}.")
        elif key in names:
            found.append(f"{prefix}{key}")
    return found


class TwoPlayer(GenerativeModel, SamplesPrior):
    """A tiny GAN-shaped model: generator phase first (it leaves its fakes in ctx, as
    CycleGAN's does), then the discriminator n_critic times, then a lazy regulariser."""

    phases = (Phase("g", "g"), Phase("d", "d", repeats=2), Phase("d_reg", "d", every=2))
    ema_modules = ("generator",)
    monitor = ("val/d_real", "max")

    def __init__(self, image_shape=(1, 32, 32), z_dim=8):
        super().__init__()
        self.image_shape = self.sample_shape = image_shape
        self.z_dim = z_dim
        d = image_shape[0] * image_shape[1] * image_shape[2]
        self.generator = nn.Sequential(nn.Linear(z_dim, d), nn.Tanh(), nn.Unflatten(1, image_shape))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(d, 1))
        self.phase_log = []

    def param_groups(self):
        return {"g": list(self.generator.parameters()), "d": list(self.discriminator.parameters())}

    def training_step(self, batch, phase, ctx):
        self.phase_log.append(phase)
        real = batch["image"]
        if phase == "g":
            fake = self.generator(torch.randn(real.shape[0], self.z_dim, device=real.device))
            ctx["fake"] = fake.detach()
            loss = nn.functional.softplus(-self.discriminator(fake)).mean()
            return loss, {"loss_g": loss}
        if phase == "d":
            loss = nn.functional.softplus(-self.discriminator(real)).mean() + nn.functional.softplus(self.discriminator(ctx["fake"])).mean()
            return loss, {"loss_d": loss}
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(real).sum(), real, create_graph=True)
        r1 = grad.pow(2).flatten(1).sum(1).mean()
        return r1, {"r1": r1}

    @torch.no_grad()
    def evaluate_batch(self, batch):
        return {"d_real": torch.sigmoid(self.discriminator(batch["image"])).flatten()}

    @torch.no_grad()
    def sample(self, n, labels=None):
        return self.generator(torch.randn(n, self.z_dim, device=self.generator[0].weight.device))

    @torch.no_grad()
    def visuals(self, batch):
        return {"samples": self.sample(16)}


def make_trainer(cfg, model, run_dir):
    return build_trainer(cfg, model, run_dir)


def check_phase_isolation(trainer, batch):
    """Each phase: finite loss; gradients on its own group only; other groups untouched."""
    model = trainer.model
    ctx = {"step": 0}
    for phase in model.phases:
        own = {id(p) for p in trainer.groups[phase.group]}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        for p in model.parameters():
            p.grad = None
        trainer._run_phase(phase, batch, ctx)
        assert all(torch.isfinite(v).all() for v in trainer.reporter._sums.values())
        changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
        for name, p in model.named_parameters():
            if id(p) not in own:
                assert p.grad is None, f"phase {phase.name} left a gradient on {name}"
                assert name not in changed, f"phase {phase.name} changed {name}"
        assert changed, f"phase {phase.name} changed no parameter"
        assert all(p.requires_grad for p in model.parameters()), "the trainer must unfreeze after the phase"


@pytest.mark.parametrize("name", MODELS)
def test_every_model_honours_the_contract(name, make_cfg, tmp_path):
    cfg = make_cfg("train", settings(name))
    torch.manual_seed(0)
    model = build(cfg.model, "model")
    trainer = make_trainer(cfg, model, tmp_path)
    batch = next(trainer.stream)
    check_phase_isolation(trainer, batch)
    metrics = model.eval().evaluate_batch(batch)
    assert metrics and all(v.shape == (16,) and torch.isfinite(v).all() for v in metrics.values())
    visuals = model.visuals(batch)
    assert visuals and all(v.dim() == 4 and v.min() >= -1 and v.max() <= 1 for v in visuals.values())
    if isinstance(model, SamplesPrior):
        x = model.sample(5)
        assert x.shape == (5, 1, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_two_optimizer_model_isolates_its_phases(make_cfg, tmp_path):
    trainer = make_trainer(make_cfg("train"), TwoPlayer(), tmp_path)
    check_phase_isolation(trainer, next(trainer.stream))


def test_trainer_runs_repeats_lazy_phases_and_fresh_batches(make_cfg, tmp_path):
    cfg = make_cfg("train", ["trainer.max_steps=4", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0", "+optim_groups.d.lr=0.004"])
    model = TwoPlayer()
    trainer = make_trainer(cfg, model, tmp_path)
    result = trainer.fit()
    # g, d, d, d_reg on even steps: steps 0 and 2 have the lazy phase
    assert model.phase_log == ["g", "d", "d", "d_reg", "g", "d", "d", "g", "d", "d", "d_reg", "g", "d", "d"]
    steps = {n: max(int(s["step"]) for s in o.state_dict()["state"].values()) for n, o in trainer.optimizers.items()}
    assert steps == {"g": 4, "d": 4 * 2 + 2}
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers.values()] == [1e-3, 0.004]
    # one batch per step plus one per extra critic repeat
    assert trainer.stream.state_dict() == {"epoch": 0, "position": 8}
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert result["step"] == 4 and [r["step"] for r in logged if "train/g/loss_g" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in logged if "train/d_reg/r1" in r] == [1, 3]
