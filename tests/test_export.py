"""`genlab export`: ONNX files run in onnxruntime and TorchScript files run in torch give
genlab's own outputs (to 1e-4) on the same inputs, with dynamic batch and, for translation
generators, dynamic height and width."""

import json
import subprocess
import sys
import warnings

import onnxruntime
import pytest
import torch
from hydra import compose, initialize_config_module

from genlab import GenlabError, checkpoint, export, train

TINY = ["trainer.progress_bar=false", "logger=jsonl", "trainer.log_every=1", "data.batch_size=16", "trainer.eval_batches=1",
        "trainer.max_steps=5", "optim.lr=0.03"]  # a high rate: a few steps move the weights far from their near-zero init
RUNS = {
    "cyclegan": ["experiment=cyclegan_digits2edges", "model.generator_AB.base_channels=8", "model.generator_AB.n_blocks=2",
                 "model.discriminator_A.base_channels=8", "data.batch_size=4", "optim.lr=2e-3"],
    "gan": ["model=gan", "model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "cgan": ["model=cgan", "model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "conv_ae": ["model=conv_ae"],
}
TOL = 1e-4


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A checkpoint of each family, trained a few steps, made on first use."""
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = tmp_path_factory.mktemp(name)
            train.run(compose_cfg("train", [*TINY, *RUNS[name]]), run_dir=made[name])
        return made[name]

    return get


def load(run_dir):
    """The model as the exported graphs run it: in eval mode (contract["graph_mode"])."""
    model, *_ = checkpoint.load_trained(run_dir, torch.device("cpu"))
    return model.eval()


def run_exported(file, fmt: str, *inputs: torch.Tensor) -> torch.Tensor:
    """The exported file on these inputs, in onnxruntime or torch (independently of genlab.export)."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(file))
    with torch.no_grad():
        return module(*inputs)


def assert_matches(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert got.shape == expected.shape
    assert expected.std() > 0.05  # outputs that vary: a match is not a match of constants
    diff = float((got - expected).abs().max())
    print(f"{what} {tuple(expected.shape)}: max |exported - genlab| = {diff:.2e}")  # the figures, with pytest -s
    assert diff < TOL, diff


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_translation_generator_export_matches_genlab_at_two_sizes(fmt, run, tmp_path):
    ckpt = run("cyclegan")
    out = tmp_path / fmt
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "export", f"ckpt={ckpt}", f"format={fmt}", "direction=AtoB", f"out={out}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contract = json.loads((out / "contract.json").read_text())
    entry = contract["files"]["translate_AtoB"]
    assert entry["size_multiple"] == 4 and entry["inputs"]["x"]["shape"] == ["batch", 1, "height", "width"]
    assert entry["inputs"]["x"]["range"] == [-1, 1] and contract["model"] == "CycleGAN" and set(contract["files"]) == {"translate_AtoB"}
    model = load(ckpt)
    for shape in [(2, 1, 32, 48), (1, 1, 20, 12)]:  # neither is the traced 32 x 32 with batch 2
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = model.translate(x, "AtoB")
        assert_matches(run_exported(out / entry["file"], fmt, x), expected, f"{fmt} CycleGAN G")
    if fmt == "onnx":  # batch, height and width are symbols of the graph, not numbers
        dims = onnxruntime.InferenceSession(str(out / entry["file"]), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        assert isinstance(dims[0], str) and isinstance(dims[2], str) and isinstance(dims[3], str) and dims[1] == 1


@pytest.mark.parametrize(("family", "fmt"), [("gan", "onnx"), ("gan", "torchscript"), ("cgan", "torchscript"),
                                           pytest.param("cgan", "onnx", marks=pytest.mark.slow)])
def test_gan_decoder_export_matches_genlab(family, fmt, run, tmp_path):
    result = export.run(compose_cfg("export", [f"ckpt={run(family)}", f"format={fmt}", f"out={tmp_path}"]))
    entry = result["files"]["decode"]
    assert result["test_mode"] == "train" and result["graph_mode"] == "eval"  # the GANs sample in train mode; the files say theirs
    model = load(run(family))
    assert entry["inputs"]["z"]["shape"] == ["batch", 100] and entry["inputs"]["z"]["prior"] == "standard normal"
    assert entry["outputs"]["x"]["shape"] == ["batch", 1, 32, 32]
    z = torch.randn(5, 100)
    if family == "cgan":
        labels = [3, 1, 4, 1, 5]
        assert entry["inputs"]["labels"] == {"shape": ["batch"], "dtype": "int64", "range": [0, 9]}
        assert_matches(run_exported(tmp_path / entry["file"], fmt, z, torch.tensor(labels)), model.decode(z, labels=labels), f"{fmt} cGAN decode")
    else:
        assert_matches(run_exported(tmp_path / entry["file"], fmt, z), model.decode(z), f"{fmt} GAN decode")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_autoencoder_encoder_and_decoder_exports_match_genlab(fmt, run, tmp_path):
    result = export.run(compose_cfg("export", [f"ckpt={run('conv_ae')}", f"format={fmt}", f"out={tmp_path}"]))
    assert set(result["files"]) == {"encode", "decode"}
    model = load(run("conv_ae"))
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        code = model.encode(x)
        assert_matches(run_exported(tmp_path / result["files"]["encode"]["file"], fmt, x), code, f"{fmt} conv AE encode")
        assert_matches(run_exported(tmp_path / result["files"]["decode"]["file"], fmt, code), model.decode(code), f"{fmt} conv AE decode")
    assert result["files"]["decode"]["inputs"]["z"]["shape"] == ["batch", 64]


@pytest.mark.parametrize(("overrides", "message"), [
    (["format=tflite"], "format='tflite' is not one of onnx, torchscript, safetensors"),
    (["direction=AtoB"], "direction='AtoB': GAN translates nothing"),
])
def test_export_refuses_in_one_line(overrides, message, run):
    with pytest.raises(GenlabError, match=message):
        export.run(compose_cfg("export", [f"ckpt={run('gan')}", *overrides]))


@pytest.mark.parametrize(("overrides", "files", "latent", "multiple"), [
    (["model=vae"], ["encode", "decode"], "standard normal", 1),
    (["model=conv_ae"], ["encode", "decode"], None, 1),  # its decoder takes the encoder's codes
    (["model=dae"], ["encode", "decode"], None, 1),
    (["model=gan"], ["decode"], "standard normal", 1),
    (["model=glo"], ["decode"], "gaussian fitted to the training codes", 1),
    (["experiment=pix2pix_digit_edges"], ["translate_AtoB"], None, 32),  # U-Net of 5 downsamplings
    (["experiment=cyclegan_digits2edges"], ["translate_AtoB", "translate_BtoA"], None, 4),  # ResNet generators
])
def test_what_each_family_exports(overrides, files, latent, multiple):
    from genlab.config import build

    cfg = compose_cfg("train", overrides)
    model = build(cfg.model, "model").eval()
    found = export.parts(model, cfg.data, None)
    assert [p.name for p in found] == files
    decode = next((p for p in found if p.name == "decode"), None)
    assert (decode.contract["inputs"]["z"].get("prior") if decode else None) == latent
    assert export.size_multiple(model) == multiple
