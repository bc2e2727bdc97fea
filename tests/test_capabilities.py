"""Every model config declares the capabilities that `genlab sample` modes and `genlab eval`
metrics need (genlab/models/base.py), and each mode and metric it claims really runs on it."""

import importlib.resources

import pytest
import torch
from omegaconf import open_dict

from genlab import GenlabError, sample
from genlab.config import build
from genlab.data.loading import eval_loader
from genlab.metrics.registry import applies, model_metrics
from genlab.models.base import DecodesLatents, Reconstructs

SETTINGS = {"pix2pix": ["experiment=pix2pix_digit_edges"], "cyclegan": ["experiment=cyclegan_digits2edges"], "gan_mlp": ["experiment=gan_ring8"]}
LATENT = ["interp", "slerp", "arith"]
# what each model config claims: its sample modes and its model metrics
CLAIMS = {
    "ae": (["recon", *LATENT], ["recon"]),
    "linear_ae": (["recon", *LATENT], ["recon"]),
    "sparse_ae": (["recon", *LATENT], ["recon"]),
    "conv_ae": (["recon", *LATENT], ["recon"]),
    "stacked_ae": (["recon", *LATENT], ["recon"]),
    "dae": (["recon", "prior", *LATENT, "chain"], ["recon"]),
    "vae": (["recon", "prior", *LATENT, "traverse"], ["recon", "nll"]),
    "conv_vae": (["recon", "prior", *LATENT, "traverse"], ["recon", "nll"]),
    "gan": (["prior", *LATENT], []),
    "gan_mlp": (["prior", *LATENT], ["modes"]),
    "cgan": (["prior", *LATENT, "classes", "fixed_z"], ["class_accuracy", "ifid"]),
    "classifier": ([], []),
    "glo": (["prior", *LATENT], []),
    "pix2pix": (["translate"], ["translation"]),
    "cyclegan": (["translate"], ["translation"]),
}
MODELS = sorted(p.name.removesuffix(".yaml") for p in importlib.resources.files("genlab.configs").joinpath("model").iterdir() if p.name.endswith(".yaml"))


def test_every_model_config_has_its_claims_written_down():
    assert sorted(CLAIMS) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_each_model_supports_exactly_what_it_claims_and_each_claim_runs(name, make_cfg, tmp_path):
    modes, metrics = CLAIMS[name]
    train_cfg = make_cfg("train", SETTINGS.get(name, [f"model={name}"]) + [f"model.{k}=8" for k in _small(name)])
    torch.manual_seed(0)
    model = build(train_cfg.model, "model").eval()
    loader = eval_loader(train_cfg.data, "test", batch_size=16)
    assert sample.supported_modes(model) == modes
    assert [m for m, metric in model_metrics().items() if applies(metric, model, loader.dataset)] == metrics
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


def _small(name: str) -> list[str]:
    """Narrow networks, so that the test is quick."""
    return {"gan": ["generator.base_channels", "discriminator.base_channels"], "cgan": ["generator.base_channels", "discriminator.base_channels"],
            "glo": ["generator.base_channels"], "pix2pix": ["generator.base_channels", "discriminator.base_channels"],
            "cyclegan": ["generator_AB.base_channels", "discriminator_A.base_channels"]}.get(name, [])


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
