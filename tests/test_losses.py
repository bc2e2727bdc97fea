"""Loss terms against closed forms and independent references."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.losses.kl import gaussian_kl
from genlab.losses.reconstruction import negative_log_likelihood, output_to_image, reconstruction_error
from genlab.losses.sparsity import kl_sparsity_penalty, l1_activation_penalty
from genlab.models.autoencoder import corrupt


def test_kl_of_the_prior_itself_is_zero():
    assert gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]


def test_kl_known_values():
    # KL(N(1, 1) || N(0, 1)) = 1/2; KL(N(0, e) || N(0, 1)) = (e - 1 - 1) / 2
    assert gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[0.0]])).item() == pytest.approx(0.5)
    assert gaussian_kl(torch.tensor([[0.0]]), torch.tensor([[1.0]])).item() == pytest.approx((math.e - 2) / 2)
    # dimensions add up
    assert gaussian_kl(torch.ones(1, 4), torch.zeros(1, 4)).item() == pytest.approx(2.0)


def test_kl_matches_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(1, 3, generator=g, dtype=torch.float64), torch.randn(1, 3, generator=g, dtype=torch.float64)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, std).log_prob(z).sum(1)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    mc = (q - p).mean().item()
    assert gaussian_kl(mu, logvar).item() == pytest.approx(mc, rel=5e-3)


def test_gaussian_nll_is_the_normal_log_density():
    out, x = torch.rand(2, 1, 3, 3) * 2 - 1, torch.rand(2, 1, 3, 3) * 2 - 1
    ref = -stats.norm.logpdf(x.numpy(), loc=out.numpy(), scale=0.3).reshape(2, -1).sum(1)
    np.testing.assert_allclose(negative_log_likelihood(out, x, "mse", 0.3).numpy(), ref, rtol=1e-5)


def test_laplace_nll_is_the_laplace_log_density():
    out, x = torch.rand(2, 4) * 2 - 1, torch.rand(2, 4) * 2 - 1
    ref = -stats.laplace.logpdf(x.numpy(), loc=out.numpy(), scale=0.2).sum(1)
    np.testing.assert_allclose(negative_log_likelihood(out, x, "l1", 0.2).numpy(), ref, rtol=1e-5)


def test_bernoulli_nll_uses_unit_targets_and_logits():
    logits = torch.tensor([[0.0, 2.0]])
    x = torch.tensor([[1.0, -1.0]])  # targets 1 and 0 after [-1, 1] -> [0, 1]
    p = torch.sigmoid(logits)
    expected = -(torch.log(p[0, 0]) + torch.log(1 - p[0, 1]))
    assert negative_log_likelihood(logits, x, "bce").item() == pytest.approx(expected.item(), rel=1e-6)
    assert output_to_image(logits, "bce")[0].tolist() == pytest.approx([0.0, 2 * p[0, 1].item() - 1])


def test_reconstruction_error_is_the_per_pixel_mean():
    out, x = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert reconstruction_error(out, x, "mse").tolist() == [1.0, 1.0]
    assert reconstruction_error(out, 0.5 * x, "l1").tolist() == [0.5, 0.5]


def test_l1_activation_penalty_value():
    h = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert l1_activation_penalty(h).item() == pytest.approx((3 + 3) / 2)


def test_kl_sparsity_penalty_value_and_minimum_at_target():
    rho = 0.1
    h = torch.tensor([[0.2, 0.1], [0.4, 0.1]])  # unit means 0.3 and 0.1
    expected = rho * math.log(rho / 0.3) + (1 - rho) * math.log((1 - rho) / 0.7)
    assert kl_sparsity_penalty(h, rho).item() == pytest.approx(expected, rel=1e-5)
    assert kl_sparsity_penalty(torch.full((4, 3), rho), rho).item() == pytest.approx(0.0, abs=1e-6)


def test_corruptions():
    torch.manual_seed(0)
    x = torch.full((1, 1, 100, 100), 0.5)
    masked = corrupt(x, "mask", 0.3)
    assert ((masked == 0).float().mean().item()) == pytest.approx(0.3, abs=0.02)
    assert set(masked.unique().tolist()) == {0.0, 0.5}
    salted = corrupt(x, "salt_pepper", 0.2)
    assert set(salted.unique().tolist()) == {-1.0, 0.5, 1.0}
    assert ((salted != 0.5).float().mean().item()) == pytest.approx(0.2, abs=0.02)
    noisy = corrupt(x, "gaussian", 0.1)
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
