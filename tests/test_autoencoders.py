"""The autoencoder family's defining properties, each against a closed form or a reference."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.models.autoencoder import Autoencoder, DenoisingAutoencoder
from genlab.models.base import SamplesPrior
from genlab.models.vae import VAE
from genlab.nets.mlp import MLP


def linear_ae(d: int, k: int) -> Autoencoder:
    return Autoencoder(MLP([d, k], activation=None), MLP([k, d], activation=None, out_shape=(1, 1, d)), image_shape=(1, 1, d))


def fit(model, x, steps, lr=1e-2, phase="main"):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = model.training_step({"image": x}, phase, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_linear_autoencoder_learns_the_pca_subspace():
    g = torch.Generator().manual_seed(0)
    d, k, n = 12, 3, 600
    basis = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    scales = torch.tensor([3.0, 2.5, 2.0] + [0.3] * (d - 3))  # a clear gap after the top 3
    x = (torch.randn(n, d, generator=g) * scales) @ basis.T + 0.7
    torch.manual_seed(0)
    model = fit(linear_ae(d, k), x.view(n, 1, 1, d), steps=3000)

    centered = (x - x.mean(0)).numpy().astype(np.float64)
    pca = np.linalg.svd(centered, full_matrices=False)[2][:k].T  # (d, k) top principal directions
    learned = np.linalg.qr(model.decoder.layers[0][0].weight.detach().numpy().astype(np.float64))[0]  # (d, k)
    cosines = np.linalg.svd(pca.T @ learned, compute_uv=False)  # cosines of the principal angles
    assert cosines.min() > 0.999


def test_sparsity_penalty_acts_on_activations_not_weights():
    torch.manual_seed(0)
    model = Autoencoder(
        MLP([16, 64], final_activation="relu"), MLP([64, 16], activation=None, out_shape=(1, 4, 4)),
        image_shape=(1, 4, 4), sparsity={"kind": "l1", "weight": 1.0},
    )
    x = torch.randn(8, 1, 4, 4)
    _, logs = model.training_step({"image": x}, "main", {})
    codes = model.encoder(x)
    assert logs["sparsity"].item() == pytest.approx(codes.abs().sum(1).mean().item(), rel=1e-6)
    # the penalty does not depend on the decoder: its gradient there is zero
    logs["sparsity"].backward()
    assert model.decoder.layers[0][0].weight.grad is None or model.decoder.layers[0][0].weight.grad.abs().max() == 0
    assert model.encoder.layers[0][0].weight.grad.abs().max() > 0
    # scaling the decoder's weights leaves it unchanged (a weight penalty would move)
    with torch.no_grad():
        model.decoder.layers[0][0].weight.mul_(10)
    assert model.training_step({"image": x}, "main", {})[1]["sparsity"].item() == pytest.approx(logs["sparsity"].item())


def _digits(n=512):
    from genlab.data.digits import Digits

    return Digits("train", image_size=16).images[:n]


def _trained_codes(sparsity):
    torch.manual_seed(0)
    model = Autoencoder(
        MLP([256, 512], final_activation="relu"), MLP([512, 256], activation=None, out_shape=(1, 16, 16)),
        image_shape=(1, 16, 16), sparsity=sparsity,
    )
    x = _digits()
    fit(model, x, steps=400, lr=1e-3)
    with torch.no_grad():
        h = model.encoder(x)
    return (h > 1e-3).float().mean().item(), model


def test_sparse_codes_are_sparser_than_unpenalised_ones():
    dense_share, _ = _trained_codes(None)
    sparse_share, _ = _trained_codes({"kind": "l1", "weight": 3e-4})
    assert sparse_share < 0.5 * dense_share


def test_kl_sparsity_drives_mean_activation_to_target():
    torch.manual_seed(0)
    model = Autoencoder(
        MLP([256, 128], final_activation="sigmoid"), MLP([128, 256], activation=None, out_shape=(1, 16, 16)),
        image_shape=(1, 16, 16), sparsity={"kind": "kl", "weight": 0.5, "rho": 0.05},
    )
    x = _digits()
    with torch.no_grad():
        before = model.encoder(x).mean().item()
    fit(model, x, steps=400, lr=1e-3)
    with torch.no_grad():
        after = model.encoder(x).mean().item()
    assert before > 0.3 and after == pytest.approx(0.05, abs=0.02)


def test_vae_elbo_equals_log_likelihood_when_the_posterior_is_exact():
    """Linear-Gaussian decoder x = W z + b + sigma * noise (probabilistic PCA): p(x) is the
    Gaussian N(b, W W^T + sigma^2 I). With orthogonal columns in W the exact posterior is
    diagonal, so an encoder set to it makes every importance weight equal p(x): the
    importance-sampled bound must equal log p(x), and the ELBO does in expectation."""
    torch.manual_seed(0)
    d, k, sigma = 6, 2, 0.5
    w = torch.linalg.qr(torch.randn(d, k, dtype=torch.float64))[0] * torch.tensor([2.0, 1.5], dtype=torch.float64)
    b = torch.randn(d, dtype=torch.float64) * 0.1
    enc = MLP([d, d], activation=None)
    dec = MLP([k, d], activation=None, out_shape=(1, 1, d))
    vae = VAE(enc, dec, image_shape=(1, 1, d), latent_dim=k, likelihood="mse", obs_scale=sigma).double()
    m_inv = torch.linalg.inv(w.T @ w + sigma**2 * torch.eye(k, dtype=torch.float64))
    with torch.no_grad():
        enc.layers[0][0].weight.copy_(torch.eye(d)), enc.layers[0][0].bias.zero_()
        vae.mu_head.weight.copy_(m_inv @ w.T), vae.mu_head.bias.copy_(-(m_inv @ w.T) @ b)
        vae.logvar_head.weight.zero_(), vae.logvar_head.bias.copy_(torch.log(sigma**2 * torch.diag(m_inv)))
        dec.layers[0][0].weight.copy_(w), dec.layers[0][0].bias.copy_(b)
    x = (torch.randn(5, k, dtype=torch.float64) @ w.T + b + sigma * torch.randn(5, d, dtype=torch.float64)).view(5, 1, 1, d)
    exact = stats.multivariate_normal(b.numpy(), (w @ w.T + sigma**2 * torch.eye(d, dtype=torch.float64)).numpy()).logpdf(x.view(5, d).numpy())
    np.testing.assert_allclose(vae.log_likelihood_bound(x, k=7, chunk=3).numpy(), exact, rtol=1e-9)
    # the one-sample ELBO (analytic KL) is exact in expectation
    with torch.no_grad():
        elbo = torch.stack([vae.terms(x)["elbo"] for _ in range(4000)]).mean(0)
    np.testing.assert_allclose(elbo.numpy(), exact, rtol=2e-3)


def test_importance_sampled_bound_is_tighter_than_the_elbo():
    torch.manual_seed(0)
    vae = VAE(MLP([16, 32]), MLP([4, 32, 16], out_shape=(1, 4, 4)), image_shape=(1, 4, 4), latent_dim=4)
    x = torch.rand(64, 1, 4, 4) * 2 - 1
    torch.manual_seed(1)
    elbo = torch.stack([vae.terms(x)["elbo"] for _ in range(200)]).mean(0)
    iw = vae.log_likelihood_bound(x, k=200)
    assert (iw > elbo).all()
    assert vae.terms(x)["elbo"].shape == (64,) and math.isfinite(iw.sum().item())


def test_vae_logged_terms_have_the_elbo_signs():
    torch.manual_seed(0)
    vae = VAE(MLP([16, 32]), MLP([4, 32, 16], out_shape=(1, 4, 4)), image_shape=(1, 4, 4), latent_dim=4, beta=4.0)
    loss, logs = vae.training_step({"image": torch.rand(8, 1, 4, 4) * 2 - 1}, "main", {})
    assert logs["recon_nll"] > 0 and logs["kl"] > 0
    assert logs["elbo"].item() == pytest.approx(-(logs["recon_nll"] + logs["kl"]).item(), rel=1e-6)
    assert loss.item() == pytest.approx((logs["recon_nll"] + 4.0 * logs["kl"]).item(), rel=1e-6)


def test_greedy_pretraining_trains_one_layer_pair_at_a_time():
    torch.manual_seed(0)
    model = Autoencoder(
        MLP([16, 8, 4], final_activation="relu"), MLP([4, 8, 16], out_shape=(1, 4, 4)),
        image_shape=(1, 4, 4), greedy_pretrain_steps=5,
    )
    assert [(p.name, p.start, p.stop) for p in model.phases] == [("layer1", 0, 5), ("layer2", 5, 10), ("main", 10, None)]
    groups = model.param_groups()
    assert {id(p) for p in groups["layer2"]} == {id(p) for p in [*model.encoder.layers[1].parameters(), *model.decoder.layers[0].parameters()]}
    loss, _ = model.training_step({"image": torch.randn(4, 1, 4, 4)}, "layer2", {})
    loss.backward()
    assert model.encoder.layers[0][0].weight.grad is None  # the layer below is frozen input
    assert model.encoder.layers[1][0].weight.grad is not None and model.decoder.layers[0][0].weight.grad is not None


def test_denoising_chain_starts_from_its_input_and_stays_in_range():
    torch.manual_seed(0)
    model = DenoisingAutoencoder(MLP([16, 8]), MLP([8, 16], out_shape=(1, 4, 4)), image_shape=(1, 4, 4), corruption={"kind": "mask", "level": 0.3})
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    states = model.chain(x0, 5)
    assert len(states) == 6 and torch.equal(states[0], x0)
    assert all(s.shape == x0.shape and s.abs().max() <= 1 for s in states)
    assert isinstance(model, SamplesPrior) and model.sample(2).shape == (2, 1, 4, 4)
