"""Each family's defaults against its reference implementation: the formulas are written here
again from the reference code (torch.nn.functional's criteria on the networks themselves),
not with genlab's objectives, and compared with what the models and the trainer compute."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab import checkpoint
from genlab.config import build
from genlab.device import select_device
from genlab.ema import EMA
from genlab.losses.adversarial import AdversarialLoss
from genlab.losses.penalties import grad_scaler, gradient_penalty, r1_penalty
from genlab.models.base import in_test_mode
from genlab.train import build_trainer
from test_adversarial import TINY, optimizer_steps
from test_contract import small_settings

CYCLE = [*small_settings("cyclegan"), "model.pool_size=0", *TINY]
PIX = [*small_settings("pix2pix"), "data.image_size=64", "model.generator.num_downs=6", *TINY]  # 6 halvings: one dropout block


def _batch(net, cfg, n=4):
    from genlab.data.loading import eval_loader

    return next(iter(eval_loader(cfg.data, "test", batch_size=n)))


def test_cyclegan_losses_are_the_reference_code(make_cfg):
    """cycle_gan_model.py: backward_G = GANLoss(D_A(G_A(A)), True) + GANLoss(D_B(G_B(B)), True)
    + lambda_A L1(G_B(G_A(A)), A) + lambda_B L1(G_A(G_B(B)), B) + lambda_idt terms, GANLoss('lsgan')
    = MSELoss; backward_D_basic = (MSE(D(real), 1) + MSE(D(fake), 0)) * 0.5, per discriminator."""
    cfg = make_cfg("train", CYCLE)
    net = build(cfg.model, "model")
    batch = _batch(net, cfg)
    a, b = batch["A"], batch["B"]
    torch.manual_seed(0)
    ctx = {}
    g_loss, g_logs = net.training_step(batch, "g", ctx)
    fake_b, fake_a = net.G(a), net.F(b)
    ones = lambda t: torch.ones_like(t)  # noqa: E731
    mse, l1 = F.mse_loss, F.l1_loss
    reference_g = (mse(net.D_B(fake_b), ones(net.D_B(fake_b))) + mse(net.D_A(fake_a), ones(net.D_A(fake_a)))
                   + 10 * l1(net.F(fake_b), a) + 10 * l1(net.G(fake_a), b) + 10 * 0.5 * (l1(net.F(a), a) + l1(net.G(b), b)))
    assert g_loss.item() == pytest.approx(reference_g.item(), rel=1e-5)
    d_loss, d_logs = net.training_step(batch, "d", ctx)
    ref_da = 0.5 * (mse(net.D_A(a), ones(net.D_A(a))) + mse(net.D_A(fake_a), torch.zeros_like(net.D_A(fake_a))))
    ref_db = 0.5 * (mse(net.D_B(b), ones(net.D_B(b))) + mse(net.D_B(fake_b), torch.zeros_like(net.D_B(fake_b))))
    assert d_logs["d_A"].item() == pytest.approx(ref_da.item(), rel=1e-5)
    assert d_logs["d_B"].item() == pytest.approx(ref_db.item(), rel=1e-5)
    assert d_loss.item() == pytest.approx((ref_da + ref_db).item(), rel=1e-5)  # each network gets its own loss's gradient


def test_pix2pix_steps_d_then_g_on_the_same_fake_as_the_reference(make_cfg):
    """pix2pix_model.py: forward() makes fake_B = G(A) once; backward_D = (BCE(D(A, B), 1) +
    BCE(D(A, fake_B.detach()), 0)) * 0.5 and D steps; then backward_G = BCE(D(A, fake_B), 1)
    + 100 L1(fake_B, B) against the updated D, on the same fake_B (dropout masks and all)."""
    cfg = make_cfg("train", PIX)
    net = build(cfg.model, "model")
    assert [p.name for p in net.phases] == ["d", "g"]
    batch = _batch(net, cfg)
    a, b = batch["A"], batch["B"]
    made = []
    net.generator.register_forward_hook(lambda m, i, out: made.append(out.detach().clone()))
    bn = next(m for m in net.generator.modules() if isinstance(m, nn.BatchNorm2d))
    ctx = {}
    d_loss, _ = net.training_step(batch, "d", ctx)
    stats_after_d = bn.running_mean.clone()
    D = lambda x, y: net.discriminator(torch.cat([x, y], 1))  # noqa: E731
    real, fake = D(a, b), D(a, made[0])
    reference_d = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    assert d_loss.item() == pytest.approx(reference_d.item(), rel=1e-5)
    with torch.no_grad():  # "D steps": any change of D, which G's loss must then see
        for p in net.discriminator.parameters():
            p.add_(0.01)
    rng = torch.get_rng_state()
    g_loss, logs = net.training_step(batch, "g", ctx)
    assert torch.equal(torch.get_rng_state(), rng)  # the replay ran on a forked RNG
    assert torch.equal(made[1], made[0])  # the same G(A): dropout on (train mode) yet the same masks
    assert torch.equal(bn.running_mean, stats_after_d)  # batch norm counted the batch once
    fake = D(a, made[0])
    reference_g = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)) + 100 * F.l1_loss(made[0], b)
    assert g_loss.item() == pytest.approx(reference_g.item(), rel=1e-5)
    with torch.no_grad():  # without the replay, dropout draws other masks: the check above can fail
        assert not torch.equal(net.generator(a), made[0])


def test_pix2pix_tests_in_train_mode_and_eval_leaves_the_model_as_it_was(make_cfg, tmp_path):
    """test.py without --eval: dropout on and batch norm on the test batch's statistics;
    model.test_mode=eval is PyTorch's eval mode. Evaluating never changes the model."""
    cfg = make_cfg("train", PIX)
    net = build(cfg.model, "model")
    trainer = build_trainer(cfg, net, tmp_path)
    trainer.fit()
    model, *_ = checkpoint.load_trained(tmp_path, select_device("cpu"))
    assert model.test_mode == "train" and model.generator.training
    a = _batch(model, cfg)["A"]
    with torch.no_grad():
        assert not torch.equal(model.translate(a), model.translate(a))  # dropout at test time
    buffers = [b.clone() for b in trainer.eval_model.buffers()]
    flags = [m.training for m in trainer.eval_model.modules()]
    trainer.eval_model.eval()  # as if it had been in eval mode: the test mode sets train mode, and afterwards eval again
    with trainer.evaluator.evaluating(trainer.eval_model) as m:
        assert all(x.training for x in m.modules())
        m.translate(a)
    assert all(torch.equal(x, y) for x, y in zip(buffers, trainer.eval_model.buffers()))
    assert not any(m.training for m in trainer.eval_model.modules())  # back as it was
    assert all(flags)  # the live model was training before
    cfg_eval = make_cfg("train", [*PIX, "model.test_mode=eval"])
    net_eval = build(cfg_eval.model, "model")
    with in_test_mode(net_eval) as m, torch.no_grad():
        assert not any(x.training for x in m.modules()) and torch.equal(m.translate(a), m.translate(a))


def test_ema_ramp_up_is_stylegan2_adas_and_averages_batch_norm_statistics():
    """training_loop.py: ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup); ema_beta =
    0.5 ** (batch_size / ema_nimg); in steps with decay d: half-life min(ln 0.5 / ln d, t * rampup)."""

    class Tiny(nn.Module):
        ema_modules = ("net",)

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))

    model, batch = Tiny(), 64
    ema = EMA(model, 0.999, rampup=0.05)
    for step in (0, 1, 10, 938, 3000, 100_000):
        cur_nimg = step * batch
        ema_nimg = min(-batch / math.log2(0.999), cur_nimg * 0.05)  # the kimg whose beta is 0.999
        reference = 0.5 ** (batch / max(ema_nimg, 1e-8))
        assert ema.beta(step) == pytest.approx(reference, rel=1e-9, abs=1e-12)
    assert EMA(model, 0.999, rampup=None).beta(0) == 0.999
    with torch.no_grad():
        model.net[1].running_mean.fill_(1.0)
        model.net[1].num_batches_tracked.fill_(7)
    ema.update(model, step=2000)  # beta = 0.5 ** (1 / 100)
    beta = 0.5 ** (1 / 100)
    assert torch.allclose(ema.module.net[1].running_mean, torch.full((3,), 1 - beta))  # averaged like the weights
    assert int(ema.module.net[1].num_batches_tracked) == 7  # counters are copied


def test_ema_samples_are_no_further_from_the_data_than_the_live_ones(make_cfg, tmp_path):
    """A short DCGAN run: the EMA's samples (ramp-up) are at least as close to the test images
    as the live weights' by an RBF-kernel MMD on pixels; without the ramp-up, the EMA, still
    mostly the random init, is far worse (the check can fail)."""
    overrides = ["model=gan", "model.generator.base_channels=16", "model.discriminator.base_channels=16", "optim.lr=2e-4",
                 "optim.betas=[0.5,0.999]", "trainer.max_steps=150", "trainer.ema_decay=0.999", "data.batch_size=32",
                 "trainer.sample_every=0", "trainer.eval_every=0", "trainer.ckpt_every=0", "trainer.log_every=50"]
    from genlab.data.loading import eval_loader

    real = torch.cat([b["image"] for _, b in zip(range(8), eval_loader(make_cfg("train", overrides).data, "test", batch_size=64))])[:400].flatten(1)

    def mmd(x):
        k = lambda p, q: torch.exp(-torch.cdist(p, q).pow(2) / (2 * p.shape[1] * 0.5))  # noqa: E731
        return (k(x, x).mean() + k(real, real).mean() - 2 * k(x, real).mean()).item()

    distances = {}
    for rampup in ("0.05", "null"):
        cfg = make_cfg("train", [*overrides, f"trainer.ema_rampup={rampup}"])
        torch.manual_seed(0)
        run = tmp_path / rampup
        build_trainer(cfg, build(cfg.model, "model"), run).fit()
        for weights in (True, False):
            model, *_ = checkpoint.load_trained(run, select_device("cpu"), use_ema=weights)
            torch.manual_seed(1)
            distances[rampup, weights] = mmd(model.sample(400).flatten(1))
    assert distances["0.05", False] == pytest.approx(distances["null", False], rel=1e-6)  # the EMA does not change training
    assert distances["0.05", True] <= distances["0.05", False] * 1.05
    assert distances["null", True] > 2 * distances["0.05", True]


def test_wgan_critic_schedule_is_the_reference_main(make_cfg, tmp_path):
    """WassersteinGAN main.py: Diters = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5."""
    loss = AdversarialLoss(n_critic=5, clip=0.01, critic_burst=100)
    reference = lambda g: 100 if g < 25 or g % 500 == 0 else 5  # noqa: E731
    assert [loss.critic_steps(g) for g in range(2000)] == [reference(g) for g in range(2000)]
    assert make_cfg("train", ["experiment=wgan"]).loss.critic_burst == 100
    assert make_cfg("train", ["experiment=wgan_gp"]).loss.critic_burst is None
    cfg = make_cfg("train", [*small_settings("gan"), "loss=wgan", "loss.critic_burst=3", "loss.critic_burst_steps=1", *TINY])
    trainer = build_trainer(cfg, build(cfg.model, "model"), tmp_path)
    trainer.fit()
    assert optimizer_steps(trainer, "d") == 3 + 5 and optimizer_steps(trainer, "g") == 2


def test_lazy_r1_corrects_the_discriminators_adam_as_stylegan2(make_cfg, tmp_path):
    """StyleGAN2 (Appendix B; stylegan2-ada's training_loop.py, mb_ratio = interval / (interval + 1)):
    lr * mb_ratio and betas ** mb_ratio for the lazily regularised network only."""
    base = [*small_settings("gan"), "loss=r1", "model.discriminator.norm=layer", "optim.lr=2e-3", "optim.betas=[0.0,0.99]", *TINY]
    for extra, c in (([], 16 / 17), (["loss.lazy_adam_correction=false"], 1.0)):
        cfg = make_cfg("train", [*base, *extra])
        trainer = build_trainer(cfg, build(cfg.model, "model"), tmp_path)
        d, g = trainer.optimizers["d"].param_groups[0], trainer.optimizers["g"].param_groups[0]
        assert d["lr"] == pytest.approx(2e-3 * c) and d["betas"] == pytest.approx((0.0, 0.99**c))
        assert g["lr"] == pytest.approx(2e-3) and g["betas"] == pytest.approx((0.0, 0.99))


def test_penalties_take_their_gradients_through_the_fp16_scaler():
    """The AMP docs' gradient-penalty recipe: autograd.grad of scaler.scale(output), then times
    1 / scale. A critic whose fp16 input gradient (1e-8) underflows without the scale."""
    x = torch.full((2, 4), 0.5)
    critic = lambda v: (v.half() * 1e-8).float().sum(1)  # noqa: E731  fp16 in the middle, as under autocast
    exact_r1 = 4 * 1e-16  # ||grad||^2 per sample
    assert r1_penalty(critic, x).item() == 0.0  # underflowed to zero
    assert gradient_penalty(critic, x, torch.zeros_like(x), target=0.0).item() == 0.0
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # 1e-8 * 2**10 is an fp16 number
    with grad_scaler(scaler):
        assert r1_penalty(critic, x).item() == pytest.approx(exact_r1, rel=1e-2)
        assert gradient_penalty(critic, x, torch.zeros_like(x), target=0.0).item() == pytest.approx(exact_r1, rel=1e-2)


def test_linear_decay_experiments_step_per_epoch_as_the_reference(make_cfg):
    for experiment in ("cyclegan_horse2zebra", "pix2pix_facades"):
        cfg = make_cfg("train", [f"experiment={experiment}"])
        assert cfg.scheduler.per_epoch is True and cfg.scheduler.decay_start == 0.5
