"""The adversarial component: every adversarial model trains with every loss, with its
penalties, critic repeats and clipping really applied; the relativistic objectives pinned
to hand-computed values; DiffAugment's policies, shared draws and reach into every family."""

import importlib.resources
import json
import math

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from test_contract import MODELS as MODEL_CONFIGS
from test_contract import config_class, discriminator_norm_keys, small_settings
from torch import nn

from genlab import GenlabError
from genlab.config import adversarial_model_configs, build
from genlab.losses.adversarial import (AdversarialLoss, Critic, FeatureMatching, LeastSquares, NonSaturating, Objective, RelativisticAverage,
                                       RelativisticHinge, Wasserstein)
from genlab.losses.diffaugment import DiffAugment, cutout, translation
from genlab.models.base import AdversarialModel, Translates
from genlab.models.cyclegan import CycleGAN
from genlab.models.gan import GAN
from genlab.models.pix2pix import Pix2Pix
from genlab.nets.translation import PatchDiscriminator
from genlab.train import build_trainer

LOSS_CONFIGS = importlib.resources.files("genlab.configs").joinpath("loss")
LOSSES = sorted(p.name.removesuffix(".yaml") for p in LOSS_CONFIGS.iterdir() if p.name.endswith(".yaml"))
TINY = ["trainer.max_steps=2", "trainer.eval_batches=1", "trainer.sample_every=0", "trainer.eval_every=0", "trainer.ckpt_every=0", "data.batch_size=4"]
# every adversarial model config (its class an AdversarialModel), each at the small sizes of
# test_contract.small_settings, which trains in a fraction of a second
MODELS = adversarial_model_configs()


def test_a_model_config_takes_a_loss_exactly_when_its_class_is_adversarial():
    for name in MODEL_CONFIGS:
        node = yaml.safe_load(importlib.resources.files("genlab.configs").joinpath("model", f"{name}.yaml").read_text())
        assert (node.get("loss") == "${loss}") == issubclass(config_class(name), AdversarialModel), name
    assert {"gan", "gan_mlp", "cgan", "pix2pix", "cyclegan"} <= set(MODELS)


def test_every_objective_has_a_loss_config():
    """A new Objective in genlab is reachable as loss=<name> (and then trains with every model, below)."""
    used = {(yaml.safe_load(LOSS_CONFIGS.joinpath(f"{name}.yaml").read_text()).get("objective") or {}).get("_target_") for name in LOSSES}
    defined = {f"{c.__module__}.{c.__qualname__}" for c in _subclasses(Objective) if c.__module__.startswith("genlab.")}
    assert defined and defined <= used, sorted(defined - used)


def _subclasses(cls: type) -> set[type]:
    return {s for c in cls.__subclasses__() for s in {c, *_subclasses(c)}}


def test_each_family_keeps_its_references_objective_scale_and_phase_order():
    assert (GAN.default_objective, GAN.d_scale, GAN.generator_first) == (NonSaturating, 1.0, False)
    assert (Pix2Pix.default_objective, Pix2Pix.d_scale, Pix2Pix.generator_first) == (NonSaturating, 0.5, False)  # D first, as the reference
    assert (CycleGAN.default_objective, CycleGAN.d_scale, CycleGAN.generator_first) == (LeastSquares, 0.5, True)


def train_two_steps(make_cfg, tmp_path, model: str, overrides: list[str]):
    cfg = make_cfg("train", [*small_settings(model), *overrides, *TINY])
    net = build(cfg.model, "model")
    trainer = build_trainer(cfg, net, tmp_path)
    trainer.fit()
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return cfg, net, trainer, logged


def optimizer_steps(trainer, group: str) -> int:
    return max(int(s["step"]) for s in trainer.optimizers[group].state_dict()["state"].values())


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_adversarial_model_trains_with_every_loss(model, loss, make_cfg, tmp_path):
    penalised = loss in ("wgan_gp", "r1")
    norms = [f"{key}.norm=layer" for key in discriminator_norm_keys(model)] if penalised else []
    cfg, net, trainer, logged = train_two_steps(make_cfg, tmp_path, model, [f"loss={loss}", *norms])
    spec = OmegaConf.to_container(cfg.loss)
    assert isinstance(net, AdversarialModel) and isinstance(net.adversarial, AdversarialLoss)
    # the schedule the loss asks for: critic repeats, a lazy R1 phase, the family's order
    d = [("d", spec["n_critic"], 1)] + ([("d_reg", 1, spec["r1_every"])] if spec["r1_gamma"] and spec["r1_every"] > 1 else [])
    expected = [("g", 1, 1), *d] if net.generator_first else [*d, ("g", 1, 1)]
    assert [(p.name, p.repeats, p.every) for p in net.phases] == expected
    lazy_steps = 1 if len(d) == 2 else 0  # step 0 of 2 runs the lazy phase
    assert optimizer_steps(trainer, "d") == 2 * spec["n_critic"] + lazy_steps and optimizer_steps(trainer, "g") == 2
    own = net.default_objective.__name__  # the model's paper objective unless one is chosen
    assert type(net.adversarial.objective).__name__ == (spec["objective"]["_target_"].rsplit(".", 1)[-1] if spec["objective"] else own)
    keys = set().union(*logged)
    # one discriminator logs d_real, several d_real_A, d_real_B, ...
    suffixes = sorted(k.removeprefix("train/d/d_real") for k in keys if k.startswith("train/d/d_real"))
    assert len(suffixes) == len(net.discriminators())
    # the penalty is in the loss the critic minimises: Wasserstein's d = E C(G(z)) - E C(x)
    if spec["gp_weight"]:
        row = next(r for r in logged if any(k.startswith("train/d/gp") for k in r))
        d_scale = 0.5 if isinstance(net, Translates) else 1.0  # pix2pix and CycleGAN halve (real + fake), as their reference
        for s in suffixes:
            d_loss = d_scale * (row[f"train/d/d_fake{s}"] - row[f"train/d/d_real{s}"]) + 10.0 * row[f"train/d/gp{s}"]
            assert row[f"train/d/{'d' + s if s else 'loss'}"] == pytest.approx(d_loss, rel=1e-4, abs=1e-5)
    else:
        assert not any("/gp" in k for k in keys)
    if spec["r1_gamma"]:  # lazy R1, scaled by its interval: 0.5 * 10 * 16 * r1 (CycleGAN: one such term per critic)
        row = next(r for r in logged if "train/d_reg/loss" in r)
        r1 = sum(row[f"train/d_reg/r1{s}"] for s in suffixes)
        assert row["train/d_reg/loss"] == pytest.approx(0.5 * 10.0 * 16 * r1, rel=1e-5)
    else:
        assert not any("r1" in k for k in keys)
    params = [p for D in net.discriminators() for p in D.parameters()]
    if spec["clip"]:  # clipping binds: the N(0, 0.02) init has weights beyond 0.01
        assert max(p.abs().max().item() for p in params) == pytest.approx(0.01)
    else:
        assert max(p.abs().max().item() for p in params) > 0.01
    assert all(math.isfinite(v) for r in logged for k, v in r.items() if k.startswith("train/"))


@pytest.mark.parametrize("model", MODELS)
def test_diffaugment_reaches_every_discriminator_input(model, make_cfg, tmp_path):
    """With cutout, everything each discriminator sees in a training step (real and fake, in
    both phases) has a zeroed square; pix2pix's input and output halves share it."""
    cfg = make_cfg("train", [*small_settings(model), "model.diffaugment=[cutout]", *TINY])
    net = build(cfg.model, "model")
    seen = []
    for D in net.discriminators():
        D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    trainer = build_trainer(cfg, net, tmp_path)
    batch = next(trainer.stream)
    ctx = {"step": 0}
    for phase in net.phases:
        trainer._run_phase(phase, batch, ctx)
    assert len(seen) == 3 * len(net.discriminators())  # real and fake in d, fake in g, for every discriminator
    for x in seen:
        zero = (x == 0).all(1)  # (B, H, W): pixels zero in every channel
        side = x.shape[-1] // 2
        assert (zero.flatten(1).sum(1) >= (side // 2) ** 2).all()  # at least a quarter of the square survives the border


def test_diffaugment_is_refused_where_it_cannot_apply(make_cfg):
    cfg = make_cfg("train", ["experiment=gan_ring8", "model.diffaugment=[color]"])
    with pytest.raises(GenlabError, match=r"model.diffaugment augments images; this model makes samples of shape \(2,\); drop it"):
        build(cfg.model, "model")
    cfg = make_cfg("train", ["model=gan", "model.diffaugment=[colour]"])
    with pytest.raises(GenlabError, match="model.diffaugment has 'colour'; choose from color, translation, cutout"):
        build(cfg.model, "model")
    cfg = make_cfg("train", [*small_settings("cyclegan"), "model.gan=false", "model.diffaugment=[color]"])
    with pytest.raises(GenlabError, match="trains no discriminator for model.diffaugment"):
        build(cfg.model, "model")


def test_a_loss_the_cycle_only_ablation_cannot_use_is_refused(make_cfg):
    cfg = make_cfg("train", [*small_settings("cyclegan"), "model.gan=false", "loss=hinge"])
    with pytest.raises(GenlabError, match=r"model.gan=false \(the cycle-only ablation\) trains no discriminator, so loss= has nothing to apply to"):
        build(cfg.model, "model")
    assert [p.name for p in build(make_cfg("train", [*small_settings("cyclegan"), "model.gan=false"]).model, "model").phases] == ["g"]


@pytest.mark.parametrize(("model", "key"), [(m, keys[0]) for m in MODELS if (keys := discriminator_norm_keys(m))])
def test_penalties_refuse_a_batch_norm_discriminator_naming_its_key(model, key, make_cfg):
    cfg = make_cfg("train", [*small_settings(model), "loss=wgan_gp", f"{key}.norm=batch"])
    with pytest.raises(GenlabError, match=rf"gradient penalty \(loss.gp_weight\) needs a discriminator without batch norm.*set {key}.norm=layer"):
        build(cfg.model, "model")


# -- the component's pieces -----------------------------------------------------------------
def test_relativistic_averages_are_per_patch_over_the_batch():
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    per_patch = [RelativisticHinge().d(real[:, :, i, j], fake[:, :, i, j]) for i in range(2) for j in range(2)]
    assert RelativisticHinge().d(real, fake).item() == pytest.approx(torch.stack(per_patch).mean().item(), rel=1e-6)


def test_the_generator_loss_sees_d_real_only_where_the_objective_is_relativistic():
    D = Critic(nn.Linear(2, 1))
    real, other, fake = torch.randn(4, 2), torch.randn(4, 2) + 3, torch.randn(4, 2)
    assert RelativisticAverage().generator_loss(D, real, fake) != RelativisticAverage().generator_loss(D, other, fake)
    assert NonSaturating().generator_loss(D, real, fake) == NonSaturating().generator_loss(D, other, fake)


def test_feature_matching_works_with_a_patch_discriminator():
    D = Critic(PatchDiscriminator(1, 4, n_layers=1, norm="none"))
    real, fake = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16, requires_grad=True)
    loss = FeatureMatching().generator_loss(D, real, fake)
    _, fr = D.features(real)
    _, ff = D.features(fake)
    assert loss.item() == pytest.approx((fr.mean(0) - ff.mean(0)).pow(2).sum().item(), rel=1e-6)
    loss.backward()
    assert fake.grad.abs().sum() > 0


def test_conditional_gradient_penalty_is_taken_on_the_output_half_of_the_pair():
    """pix2pix's critic sees cat([A, x]): the penalty's gradient is w.r.t. x alone. A linear
    critic whose x-weights have norm 2 (and A-weights norm 5) has GP (2 - 1)^2 = 1 and R1 4."""
    net = nn.Conv2d(2, 1, 2, bias=False)
    with torch.no_grad():
        net.weight[:, 0] = 2.5  # 4 pixels of A: norm 5
        net.weight[:, 1] = 1.0  # 4 pixels of x: norm 2
    a, real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    loss = AdversarialLoss(Wasserstein(), gp_weight=10.0)
    D = loss.critic(lambda x: net(x).flatten(), pair=a)
    total, logs = loss.d_loss(D, real, fake)
    assert logs["gp"].item() == pytest.approx(1.0, rel=1e-6)
    assert total.item() == pytest.approx((D(fake).mean() - D(real).mean()).item() + 10.0, rel=1e-5)
    r1_loss = AdversarialLoss(NonSaturating(), r1_gamma=10.0, r1_every=4)
    assert r1_loss.d_reg_loss(D, real)[1]["r1"].item() == pytest.approx(4.0, rel=1e-6)
    assert r1_loss.d_reg_loss(D, real)[0].item() == pytest.approx(0.5 * 10 * 4 * 4.0, rel=1e-6)


def test_clipping_runs_after_critic_steps_only():
    D = nn.Linear(4, 1)
    with torch.no_grad():
        D.weight.uniform_(-1, 1)
    loss = AdversarialLoss(Wasserstein(), clip=0.01)
    loss.after_step("g", D)
    assert D.weight.abs().max() > 0.5
    loss.after_step("d", D)
    assert D.weight.abs().max() <= 0.01


# -- DiffAugment ------------------------------------------------------------------------------
def test_translation_shifts_by_whole_pixels_within_an_eighth_and_fills_zeros():
    torch.manual_seed(1)
    x = torch.rand(8, 2, 16, 16) + 1  # no zeros of its own
    (out,) = translation((x,))
    for img, moved in zip(x, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(moved, torch.roll(img, (-dy, -dx), (1, 2)) * _inside(16, dy, dx))]
        assert len(matches) == 1


def _inside(n: int, dy: int, dx: int) -> torch.Tensor:
    rows, cols = torch.arange(n) + dy, torch.arange(n) + dx
    return (((rows >= 0) & (rows < n))[:, None] & ((cols >= 0) & (cols < n))[None, :]).float()


def test_cutout_zeroes_one_square_of_half_the_side():
    torch.manual_seed(2)
    x = torch.rand(16, 1, 16, 16) + 1
    (out,) = cutout((x,))
    for img, cut in zip(x, out):
        zero = cut[0] == 0
        rows, cols = zero.any(1), zero.any(0)
        assert torch.equal(zero, rows[:, None] & cols[None, :])  # one rectangle: the 8x8 square, clipped at the borders
        assert 4 <= rows.sum() <= 8 and 4 <= cols.sum() <= 8
        assert torch.equal(cut[~zero[None]], img[~zero[None]])


def test_color_is_an_affine_map_per_image_with_the_papers_ranges():
    torch.manual_seed(3)
    x = torch.rand(32, 1, 8, 8) * 2 - 1
    (out,) = DiffAugment(["color"])(x)
    # one channel: saturation is the identity; out = contrast * (x + b - m) + m, m the mean of x + b
    xc, oc = x.flatten(1) - x.flatten(1).mean(1, keepdim=True), out.flatten(1) - out.flatten(1).mean(1, keepdim=True)
    contrast = (oc * xc).sum(1) / (xc * xc).sum(1)
    assert torch.allclose(oc, contrast[:, None] * xc, atol=1e-5)
    assert (contrast >= 0.5).all() and (contrast <= 1.5).all()
    brightness = out.flatten(1).mean(1) - x.flatten(1).mean(1)
    assert (brightness.abs() <= 0.5).all() and brightness.std() > 0.1


def test_tensors_of_one_call_share_the_draw_and_gradients_flow_through():
    torch.manual_seed(4)
    a = torch.rand(4, 3, 16, 16, requires_grad=True)
    out_a, out_b = DiffAugment(["color", "translation", "cutout"])(a, a.detach().clone())
    assert torch.allclose(out_a, out_b)
    out_a.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


@pytest.mark.parametrize(("spec", "policies"), [(None, None), ([], None), ("color,cutout", ("color", "cutout")), (["cutout", "color", "translation"], ("color", "translation", "cutout"))])
def test_diffaugment_policies_parse_from_a_list_or_a_string(spec, policies):
    parsed = DiffAugment.parse(spec)
    assert (parsed is None and policies is None) or parsed.policies == policies
