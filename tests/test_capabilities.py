"""Every model class declares what `genlab sample` modes and `genlab eval` metrics it offers
(`claimed_modes`, `claimed_metrics`); for every config in configs/model/ its capabilities
(genlab/models/base.py) give exactly those, and each claimed mode really runs on it."""

import pytest
import torch
from omegaconf import open_dict
from test_contract import MODELS, small_settings

from genlab import GenlabError, sample
from genlab.config import build
from genlab.data.loading import eval_loader
from genlab.metrics.registry import applies, model_metrics
from genlab.models.base import DecodesLatents, Reconstructs


@pytest.mark.parametrize("name", MODELS)
def test_each_model_supports_exactly_what_it_claims_and_each_claim_runs(name, make_cfg, tmp_path):
    train_cfg = make_cfg("train", small_settings(name))
    torch.manual_seed(0)
    model = build(train_cfg.model, "model").eval()
    loader = eval_loader(train_cfg.data, "test", batch_size=16)
    modes, metrics = type(model).claimed_modes, type(model).claimed_metrics
    assert set(sample.supported_modes(model)) == set(modes) and len(modes) == len(set(modes))
    # the model's side of each metric: its capabilities; the data's side decides the rest
    assert {m for m, metric in model_metrics().items() if all(isinstance(model, c) for c in metric.needs)} == set(metrics)
    assert {m for m, metric in model_metrics().items() if applies(metric, model, loader.dataset)} <= set(metrics)
    cfg = make_cfg("sample", ["ckpt=unused", "n=4", "ncol=2", "interp.pairs=2", "interp.steps=3", "traverse.dims=2", "traverse.steps=3",
                              "chain.chains=2", "chain.steps=2", "chain.every=1", "gif=false", "arith.a=[0]", "arith.b=[1]", "arith.c=[2,3]"])
    with open_dict(cfg):
        cfg.train_data = train_cfg.data
    split = model.latent_split if isinstance(model, DecodesLatents) and model.latent_split else "test"
    batch = next(iter(eval_loader(train_cfg.data, split, batch_size=16)))
    with torch.no_grad():
        for mode in modes:
            files = sample.MODE_FUNCTIONS[mode](model, batch, cfg, tmp_path / mode, loader.dataset)
            assert files and all(f.is_file() for f in files), mode


@pytest.mark.parametrize(("overrides", "metrics"), [(["experiment=gan_ring8"], ["modes"]), (["model=cgan"], ["class_accuracy", "ifid"]),
                                                     (["model=vae"], ["recon", "nll"])])
def test_the_data_decides_which_claimed_metrics_apply(overrides, metrics, make_cfg):
    train_cfg = make_cfg("train", overrides)
    model = build(train_cfg.model, "model")
    dataset = eval_loader(train_cfg.data, "test", batch_size=16).dataset
    assert [m for m, metric in model_metrics().items() if applies(metric, model, dataset)] == metrics


def test_capabilities_are_declared_not_sniffed():
    """A model with every method of a capability but without declaring it has none of it."""
    from torch import nn

    from genlab.models.base import GenerativeModel

    class LooksLikeAVae(GenerativeModel):
        def encode(self, x): ...
        def reconstruct(self, x): ...
        def posterior(self, x): ...
        def sample(self, n, labels=None): ...
        def translate(self, x, direction="AtoB"): ...

    model = LooksLikeAVae()
    assert sample.supported_modes(model) == []
    assert not any(applies(metric, model, None) for metric in model_metrics().values())
    with pytest.raises(TypeError):  # a declared capability must be implemented in full

        class Half(nn.Module, Reconstructs):
            def encode(self, x): ...

        Half()


def test_the_capability_signatures_refuse_what_they_cannot_do(make_cfg):
    vae = build(make_cfg("train", ["model=vae"]).model, "model")
    with pytest.raises(GenlabError, match="labels= needs a conditional model"):
        vae.sample(2, labels=[1])
    pix2pix = build(make_cfg("train", ["experiment=pix2pix_digit_edges", "model.generator.base_channels=8"]).model, "model")
    with pytest.raises(GenlabError, match="direction=BtoA: Pix2Pix translates AtoB"):
        pix2pix.translate(torch.zeros(1, 1, 32, 32), "BtoA")
