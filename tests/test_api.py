"""genlab.load: each example of the README's Python section runs as written, after the
training command on its first line (with narrow networks and 2 steps), and a method a model
lacks is one clear error naming the methods it has."""

import os
import re
import shlex
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

import genlab
from genlab import GenlabError, train

README = Path(__file__).resolve().parent.parent / "README.md"
TINY = ["trainer.progress_bar=false", "logger=jsonl", "trainer.log_every=1", "trainer.eval_batches=1", "trainer.max_steps=2",
        "trainer.eval_every=0", "trainer.sample_every=0", "data.batch_size=8"]
NARROW = {  # per example (a word of its training command): narrow networks, so that each run takes seconds
    "dcgan": ["model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "cgan": ["model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "glo": ["model.generator.base_channels=8"],
    "pix2pix": ["model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "cyclegan": ["model.generator_AB.base_channels=8", "model.generator_AB.n_blocks=2", "model.discriminator_A.base_channels=8"],
}


def python_examples() -> list[str]:
    section = README.read_text().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def compose_train(overrides):
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose(config_name="train", overrides=overrides)


def test_the_readme_has_an_example_per_family():
    commands = " ".join(block.splitlines()[0] for block in python_examples())
    for family in ("model=vae", "model=conv_ae", "dcgan", "cgan", "glo", "pix2pix", "cyclegan"):
        assert family in commands


@pytest.mark.parametrize("block", python_examples(), ids=lambda b: b.splitlines()[0].rsplit("/", 1)[-1])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    first = block.splitlines()[0]
    assert first.startswith("# genlab train "), first
    args = shlex.split(first.removeprefix("# genlab train "))
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    overrides = [a for a in args if not a.startswith("hydra.")]
    narrow = next((v for k, v in NARROW.items() if k in first), [])
    train.run(compose_train([*overrides, *TINY, *narrow]), run_dir=tmp_path / run_dir)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    written = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    if ".save(" in block:
        assert written, "the example saves an image"


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pix2pix")
    train.run(compose_train(["experiment=pix2pix_digit_edges", *TINY, *NARROW["pix2pix"]]), run_dir=run_dir)
    return run_dir


def test_a_missing_capability_names_the_ones_the_model_has(pix2pix):
    model = genlab.load(pix2pix, device="cpu")
    assert model.capabilities == ["translate"] and model.step == 2 and model.config.model._target_.endswith("Pix2Pix")
    with pytest.raises(GenlabError, match=r"^Pix2Pix has no sample\(\); it has translate$"):
        model.sample(4)
    with pytest.raises(GenlabError, match=r"direction=BtoA: Pix2Pix translates AtoB"):
        model.translate(torch.zeros(1, 1, 32, 32), "BtoA")


def test_translate_is_what_the_network_gives_and_seeds_repeat(pix2pix):
    from genlab import checkpoint

    loaded = genlab.load(pix2pix, device="cpu")
    model, *_ = checkpoint.load_trained(pix2pix, torch.device("cpu"))
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = model.translate(x, "AtoB")
    torch.testing.assert_close(loaded.translate(x), expected, rtol=0, atol=0)
    pil = loaded.to_pil(loaded.translate(x))
    assert len(pil) == 3 and pil[0].mode == "L" and pil[0].size == (32, 32)
    with pytest.raises(GenlabError, match=r"images are \(B, C, H, W\) tensors"):
        loaded.translate(x[0])


def test_sample_with_a_seed_repeats_and_leaves_the_global_state(tmp_path):
    train.run(compose_train(["model=gan", *TINY, *NARROW["dcgan"]]), run_dir=tmp_path)
    gan = genlab.load(tmp_path, device="cpu")
    state = torch.get_rng_state()
    a, b = gan.sample(4, seed=3), gan.sample(4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and a.shape == (4, 1, 32, 32) and a.abs().max() <= 1
    assert not torch.equal(gan.sample(4, seed=4), a)
    torch.testing.assert_close(gan.decode(gan.latents(4, seed=3)), a)


@pytest.mark.parametrize("name", ["cgan", "cyclegan"])
def test_a_safetensors_export_loads_to_the_same_model(name, tmp_path):
    import json

    from genlab import export

    overrides = {"cgan": ["model=cgan", *NARROW["cgan"]], "cyclegan": ["experiment=cyclegan_digits2edges", *NARROW["cyclegan"]]}[name]
    train.run(compose_train([*overrides, *TINY]), run_dir=tmp_path / "run")
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        cfg = compose(config_name="export", overrides=[f"ckpt={tmp_path / 'run'}", "format=safetensors", f"out={tmp_path / 'st'}"])
    export.run(cfg)
    folder = tmp_path / "st"
    contract = json.loads((folder / "contract.json").read_text())
    assert {f"{n}.safetensors" for n in contract["files"]} == {p.name for p in folder.glob("*.safetensors")}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: genlab") and "for 2 steps" in card
    original, exported = genlab.load(tmp_path / "run", device="cpu"), genlab.load(folder, device="cpu")
    assert exported.step == 2 and exported.capabilities == original.capabilities
    if name == "cgan":
        torch.testing.assert_close(exported.sample(6, labels=[1, 2], seed=0), original.sample(6, labels=[1, 2], seed=0), rtol=0, atol=0)
    else:
        x = torch.rand(2, 1, 32, 32) * 2 - 1
        for d in ("AtoB", "BtoA"):
            torch.testing.assert_close(exported.translate(x, d), original.translate(x, d), rtol=0, atol=0)
    sd = {k: v for k, v in original.model.state_dict().items()}
    assert set(exported.model.state_dict()) == set(sd)
