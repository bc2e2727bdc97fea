"""The GAN family's math pinned to hand-computed values (every objective on one pair of logits), its schedule, GLO, and a check that
the adversarial game really trains (mode coverage on ring8)."""

import math

import pytest
import torch
from torch import nn

from genlab import train
from genlab.losses.adversarial import (FeatureMatching, Hinge, LeastSquares, Minimax, NonSaturating, RelativisticAverage, RelativisticHinge,
                                       Wasserstein)
from genlab.losses.penalties import gradient_penalty, r1_penalty
from genlab.losses.reconstruction import laplacian_pyramid, laplacian_pyramid_l1
from genlab.metrics.modes import mode_coverage
from genlab.models.gan import GAN, ConditionalGAN
from genlab.models.glo import GLO
from genlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.nets.mlp import MLPDiscriminator, MLPGenerator

REAL, FAKE = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -1.0])
sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731


def test_minimax_and_non_saturating_values():
    d = -(math.log(sig(1.0)) + math.log(sig(-2.0))) / 2 - (math.log(1 - sig(0.5)) + math.log(1 - sig(-1.0))) / 2
    assert Minimax().d(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert NonSaturating().d(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert Minimax().g(None, FAKE).item() == pytest.approx((math.log(1 - sig(0.5)) + math.log(1 - sig(-1.0))) / 2, rel=1e-6)
    assert NonSaturating().g(None, FAKE).item() == pytest.approx(-(math.log(sig(0.5)) + math.log(sig(-1.0))) / 2, rel=1e-6)


def test_wasserstein_hinge_and_least_squares_values():
    assert Wasserstein().d(REAL, FAKE).item() == pytest.approx(-0.25 - (-0.5))
    assert Wasserstein().g(None, FAKE).item() == pytest.approx(0.25)
    assert Hinge().d(REAL, FAKE).item() == pytest.approx((0 + 3) / 2 + (1.5 + 0) / 2)
    assert Hinge().g(None, FAKE).item() == pytest.approx(0.25)
    # the reference code's MSE to 1 and 0 (GANLoss('lsgan')); half=True is the paper's eq. (2)
    assert LeastSquares().d(REAL, FAKE).item() == pytest.approx((0 + 9) / 2 + (0.25 + 1) / 2)
    assert LeastSquares().g(None, FAKE).item() == pytest.approx((0.25 + 4) / 2)
    assert LeastSquares(half=True).d(REAL, FAKE).item() == pytest.approx(0.5 * (0 + 9) / 2 + 0.5 * (0.25 + 1) / 2)
    assert LeastSquares(half=True).g(None, FAKE).item() == pytest.approx(0.5 * (0.25 + 4) / 2)


def test_relativistic_average_gan_values():
    # C(x_r) - E C(x_f) = [1.25, -1.75]; C(x_f) - E C(x_r) = [1.0, -0.5]
    r, f = [1.25, -1.75], [1.0, -0.5]
    d = sum(softplus(-v) for v in r) / 2 + sum(softplus(v) for v in f) / 2
    g = sum(softplus(-v) for v in f) / 2 + sum(softplus(v) for v in r) / 2
    assert RelativisticAverage().d(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert RelativisticAverage().g(REAL, FAKE).item() == pytest.approx(g, rel=1e-6)


def test_relativistic_hinge_values():
    assert RelativisticHinge().d(REAL, FAKE).item() == pytest.approx((0 + 2.75) / 2 + (2.0 + 0.5) / 2)
    assert RelativisticHinge().g(REAL, FAKE).item() == pytest.approx((0 + 1.5) / 2 + (2.25 + 0) / 2)


def test_feature_matching_matches_batch_means():
    real = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1)
    fake = torch.tensor([[0.0, 0.0], [0.0, 4.0]], requires_grad=True)  # mean (0, 2)
    loss = FeatureMatching.match(real, fake)
    assert loss.item() == pytest.approx(2**2 + 1**2)
    loss.backward()
    assert fake.grad.tolist() == [[-2.0, 1.0], [-2.0, 1.0]]  # d/dfake of ||m_r - mean(fake)||^2


def test_gradient_penalty_uses_the_per_sample_norm_over_all_pixels():
    w = torch.full((1, 2, 2, 2), 0.5 ** 0.5)  # ||w|| over C, H, W = 2, every pixel |w_i| = 0.707
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((2.0 - 1) ** 2, rel=1e-6)
    # a sample-dependent gradient: C(x) = ||x||^2 / 2 has gradient x_hat at the interpolate
    torch.manual_seed(0)
    gp = gradient_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real, fake)
    torch.manual_seed(0)
    alpha = torch.rand(4, 1, 1, 1)
    x_hat = alpha * real + (1 - alpha) * fake
    assert gp.item() == pytest.approx((x_hat.flatten(1).norm(dim=1) - 1).pow(2).mean().item(), rel=1e-5)


def test_r1_is_the_squared_gradient_norm_on_real_data():
    real = torch.randn(3, 1, 4, 4)
    assert r1_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real).item() == pytest.approx(real.flatten(1).pow(2).sum(1).mean().item(), rel=1e-6)


def toy_gan(loss: dict, num_classes=0) -> GAN:
    return (ConditionalGAN if num_classes else GAN)(MLPGenerator(2, (2,), hidden=(8,), final_activation=None, num_classes=num_classes),
               MLPDiscriminator((2,), hidden=(8,), num_classes=num_classes), {"objective": NonSaturating(), **loss}, z_dim=2, num_classes=num_classes)


def test_schedule_follows_the_loss_recipe():
    assert [(p.name, p.repeats, p.every) for p in toy_gan({"n_critic": 5}).phases] == [("d", 5, 1), ("g", 1, 1)]
    lazy = toy_gan({"r1_gamma": 10.0, "r1_every": 16})
    assert [(p.name, p.every) for p in lazy.phases] == [("d", 1), ("d_reg", 16), ("g", 1)]
    batch = {"image": torch.randn(4, 2), "label": torch.zeros(4, dtype=torch.long)}
    loss, logs = lazy.training_step(batch, "d_reg", {})
    assert loss.item() == pytest.approx(0.5 * 10.0 * 16 * logs["r1"].item(), rel=1e-6)


def test_weight_clipping_after_the_critic_step():
    gan = toy_gan({"clip": 0.01})
    with torch.no_grad():
        for p in gan.discriminator.parameters():
            p.uniform_(-1, 1)
    gan.after_step("g")
    assert max(p.abs().max() for p in gan.discriminator.parameters()) > 0.5
    gan.after_step("d")
    assert max(p.abs().max() for p in gan.discriminator.parameters()) <= 0.01


def test_conditional_gan_draws_the_requested_classes():
    gan = toy_gan({}, num_classes=10)
    assert gan.class_labels(5, [3, 3, 7]).tolist() == [3, 3, 7, 3, 3]
    assert gan.class_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    z = torch.randn(2, 2)
    a, b = gan.decode(z, labels=[1, 1]), gan.decode(z, labels=[2, 2])
    assert not torch.allclose(a, b)  # the label reaches the generator


@pytest.mark.parametrize("cond", ["concat", "projection"])
def test_conditional_discriminators_depend_on_the_label(cond):
    torch.manual_seed(0)
    d = DCGANDiscriminator(1, 32, 8, num_classes=10, cond=cond)
    if cond == "projection":
        nn.init.normal_(d.embed.weight)
    x = torch.randn(2, 1, 32, 32)
    assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([5, 5])))
    g = DCGANGenerator(16, 1, 32, 8, num_classes=10)
    assert g(torch.randn(3, 16), torch.tensor([0, 1, 2])).shape == (3, 1, 32, 32)


def test_dcgan_init_and_shapes():
    g, d = DCGANGenerator(100, 3, 64), DCGANDiscriminator(3, 64)
    conv = g.net[0].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    x = g(torch.randn(2, 100))
    assert x.shape == (2, 3, 64, 64) and x.abs().max() <= 1
    logits, feats = d(x, features=True)
    assert logits.shape == (2,) and feats.shape == (2, 512 * 4 * 4)


def test_spectral_norm_bounds_the_layer_gain():
    torch.manual_seed(0)
    d = MLPDiscriminator((2,), hidden=(64,), spectral_norm=True)
    d.train()
    for _ in range(20):  # power iterations converge
        d(torch.randn(8, 2))
    d.eval()
    w = d.features[0][0].weight
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_laplacian_pyramid_l1():
    x = torch.rand(2, 3, 8, 8)
    bands = laplacian_pyramid(x, 2)
    assert [b.shape[-1] for b in bands] == [8, 4, 2]
    assert laplacian_pyramid_l1(x, x, 2).tolist() == [0.0, 0.0]
    # a constant offset d lives only in the low-pass level: 2^-4 * d * (3 * 2 * 2) / (3 * 8 * 8)
    assert laplacian_pyramid_l1(x + 0.5, x, 2)[0].item() == pytest.approx(2**-4 * 0.5 * 12 / 192, rel=1e-4)


def test_glo_codes_stay_on_the_unit_sphere_and_give_samples():
    torch.manual_seed(0)
    glo = GLO(DCGANGenerator(8, 1, 16, 8), num_codes=10, z_dim=8)
    opt = torch.optim.SGD(glo.parameters(), lr=1.0)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1, "index": torch.tensor([0, 3, 5, 9])}
    loss, _ = glo.training_step(batch, "main", {})
    loss.backward()
    assert glo.codes.weight.grad[[1, 2]].abs().sum() == 0 and glo.codes.weight.grad[3].abs().sum() > 0
    opt.step()
    glo.after_step("main")
    assert torch.allclose(glo.codes.weight.norm(dim=1), torch.ones(10), atol=1e-6)
    assert glo.sample(5).shape == (5, 1, 16, 16)
    assert torch.equal(glo.latents(2, batch), glo.codes.weight[[0, 3]])


def test_mode_coverage_counts():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = torch.cat([torch.zeros(30, 2), torch.full((25, 2), 0.05) + centers[1], torch.full((5, 2), 0.0) + centers[2], torch.full((40, 2), 5.0)])
    m = mode_coverage(samples, centers, std=0.02, min_count=20)
    assert m == {"modes_covered": 1, "modes_total": 3, "high_quality": pytest.approx(35 / 100)}


def test_non_saturating_gan_covers_the_ring(make_cfg, tmp_path):
    """The adversarial game really trains: 2,000 steps of experiment=gan_ring8 cover >= 6 of 8 modes
    (8 of 8, high-quality share 0.81 after 1,500 steps here)."""
    from genlab import checkpoint
    from genlab.data.loading import eval_loader
    from genlab.device import select_device
    from genlab.metrics.model_metrics import mode_metrics
    from omegaconf import OmegaConf

    overrides = ["experiment=gan_ring8", "loss=nonsat", "trainer.max_steps=2000", "trainer.progress_bar=false", "logger=jsonl",
                 "trainer.sample_every=0"]
    train.run(make_cfg("train", overrides, fast=False), run_dir=tmp_path)
    model, cfg, *_ = checkpoint.load_trained(tmp_path, select_device("cpu"))
    torch.manual_seed(0)
    m = mode_metrics(model, eval_loader(cfg.data, "test"), torch.device("cpu"), OmegaConf.create({"mode_samples": 2500}))
    assert m["modes_covered"] >= 6 and m["high_quality"] > 0.5, m
