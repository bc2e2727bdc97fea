"""Precision and recall on VGG16 features, against torch-fidelity 0.4.0 (its extractor and its
PRC computation) on the same images with the same (random, seeded) weights."""

import copy
import hashlib
import json
import os
import subprocess
import sys
import urllib.error

import pytest
import torch
import torchvision

from genlab import GenlabError
from genlab.data.digits import Digits
from genlab.images import to_uint8
from genlab.metrics import vgg16
from genlab.metrics.scores import precision_recall
from genlab.metrics.image_quality import ImageQuality, Source
from genlab.metrics.inception import FIDInception


@pytest.fixture(scope="module")
def vgg_setup(tmp_path_factory):
    """Seeded random VGG16 weights saved as a torchvision state dict, a random (uncalibrated)
    FID Inception file, and digits as uint8 RGB."""
    root = tmp_path_factory.mktemp("vgg16")
    torch.manual_seed(0)
    net = torchvision.models.vgg16()
    torch.save(net.state_dict(), root / "vgg16_random.pth")
    torch.save(FIDInception().state_dict(), root / "inception_random.pth")
    fake = to_uint8(Digits("train").images[:6]).expand(-1, 3, -1, -1).contiguous()
    real = to_uint8(Digits("test").images[:6]).expand(-1, 3, -1, -1).contiguous()
    sha256 = hashlib.sha256((root / "vgg16_random.pth").read_bytes()).hexdigest()
    return {"net": net, "weights": root / "vgg16_random.pth", "sha256": sha256, "inception": root / "inception_random.pth",
            "fake": fake, "real": real, "root": root}


def torch_fidelity_vgg16(net, monkeypatch):
    """torch-fidelity's own PRC extractor, its pretrained loader handed our random network."""
    import torch_fidelity.feature_extractor_vgg16 as module

    monkeypatch.setattr(module, "torchvision_load_pretrained_vgg16", lambda **kwargs: copy.deepcopy(net))
    return module.FeatureExtractorVGG16("vgg16", ["fc2_relu"])


def source(images, name):
    return Source(name, len(images), lambda: iter([images]))


def test_vgg16_features_equal_torch_fidelitys_on_the_same_uint8_images(vgg_setup, monkeypatch):
    reference = torch_fidelity_vgg16(vgg_setup["net"], monkeypatch)
    ours = vgg16.VGG16Extractor(str(vgg_setup["weights"]), torch.device("cpu"))
    odd = torch.randint(0, 256, (1, 3, 45, 37), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)  # non-square, upsampled
    for images in (vgg_setup["fake"][:2], odd):
        expected = reference(images)[0]
        got = ours(images)
        assert got.shape == (len(images), 4096) and got.dtype == torch.float32
        assert expected.abs().max() > 0.1 and (expected > 0).any() and (expected == 0).any()  # a ReLU output of sane size
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert ours.weights_sha256 == vgg_setup["sha256"]


def test_vgg16_resize_is_bit_for_bit_torch_fidelitys_tf1_bilinear():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    g = torch.Generator().manual_seed(0)
    for h, w in ((32, 32), (28, 28), (45, 37), (300, 500), (224, 224)):
        x = torch.randint(0, 256, (2, 3, h, w), generator=g).float()
        expected = interpolate_bilinear_2d_like_tensorflow1x(x, size=(224, 224), align_corners=False)
        assert torch.equal(vgg16.resize_tf1_bilinear_float32(x, 224), expected)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_equal_torch_fidelitys_prc(k):
    from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

    g = torch.Generator().manual_seed(k)
    real = torch.cat([torch.randn(150, 8, generator=g), torch.randn(100, 8, generator=g) + 3])  # two modes
    fake = torch.cat([torch.randn(120, 8, generator=g) * 1.3 + 0.2, torch.randn(60, 8, generator=g) - 3])  # one found, one invented
    precision, recall = precision_recall(real, fake, k, batch=64)
    assert 0.05 < precision < 0.95 and 0.05 < recall < 0.95  # neither trivial
    # torch-fidelity's convention: features_1 generated, features_2 real
    for reference in (calculate_precision_recall_full(fake, real, k, 10000), calculate_precision_recall_part(fake, real, k, 50)):
        assert precision == pytest.approx(reference[0], abs=1e-6) and recall == pytest.approx(reference[1], abs=1e-6)


def test_pr_uses_vgg16_by_default_and_records_its_protocol(vgg_setup, monkeypatch):
    seen = []  # the VGG16 features of each batch, in order: fake, then real
    monkeypatch.setattr(vgg16.VGG16Extractor, "forward", lambda self, x, _f=vgg16.VGG16Extractor.forward: seen.append(_f(self, x)) or seen[-1])
    iq = ImageQuality(str(vgg_setup["inception"]), "tf", torch.device("cpu"), progress=False, pr_weights=str(vgg_setup["weights"]))
    results = iq.compare(source(vgg_setup["fake"][:2], "fake"), source(vgg_setup["real"][:2], "real"), ["pr"], pr_k=1)
    assert len(seen) == 2 and seen[0].shape == (2, 4096)
    assert (results["precision"], results["recall"]) == precision_recall(seen[1], seen[0], 1)
    protocol = iq.protocol["pr"]
    assert protocol["features"] == "vgg16" and protocol["layer"] == "fc2_relu" and protocol["dim"] == 4096
    assert protocol["weights_sha256"] == vgg_setup["sha256"] and protocol["resize"] == "tf1_bilinear_224" and protocol["k"] == 1
    assert protocol["samples"] == {"fake": {"generated": 2, "reference": 2}}
    assert iq.protocol["resize_mode"] == "tf"  # the Inception metrics keep theirs


def test_pr_features_inception_is_the_pool_features_and_needs_no_vgg16(vgg_setup, monkeypatch):
    monkeypatch.setattr(vgg16, "find_weights", lambda *a, **k: pytest.fail("pr_features=inception looked for VGG16 weights"))
    iq = ImageQuality(str(vgg_setup["inception"]), "tf", torch.device("cpu"), progress=False, pr_features="inception")
    fake, real = vgg_setup["fake"][:3], vgg_setup["real"][:3]
    results = iq.compare(source(fake, "fake"), source(real, "real"), ["pr"], pr_k=1)
    expected = precision_recall(iq.extractor(real)[0].float(), iq.extractor(fake)[0].float(), 1)
    assert (results["precision"], results["recall"]) == expected
    assert iq.protocol["pr"]["features"] == "inception" and iq.protocol["pr"]["dim"] == 2048 and iq.protocol["pr"]["resize"] == "tf"
    with pytest.raises(GenlabError, match=r"pr_features='vgg19' is not one of vgg16, inception"):
        ImageQuality(str(vgg_setup["inception"]), "tf", torch.device("cpu"), pr_features="vgg19")


def test_offline_without_weights_is_one_line_naming_the_url_the_folder_and_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for download in (True, False):
        with pytest.raises(GenlabError) as info:
            vgg16.find_weights(None, download=download)
        message = str(info.value)
        assert "\n" not in message and vgg16.WEIGHTS_URL in message and vgg16.WEIGHTS_SHA256 in message
        assert str(tmp_path / "hub" / "checkpoints") in message and "vgg16.weights=<path>" in message and "pr_features=inception" in message
        assert ("name resolution" in message) == download and ("vgg16.download=false" in message) != download


def test_a_hub_copy_with_another_hash_is_refused_as_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / vgg16.HUB_NAME).write_bytes(b"truncated")
    path = vgg16.find_weights(None, download=False)
    with pytest.raises(GenlabError, match=r"vgg16-397923af.pth has sha256 .*: a corrupt copy; delete it"):
        vgg16.load_vgg16(path)


def test_eval_without_vgg16_weights_offline_stops_before_any_image_in_one_line(vgg_setup, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "GENLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", f"fake={folder}", f"real={folder}", "metrics=[pr]", "vgg16.download=false",
                           f"inception.weights={vgg_setup['inception']}", f"out={tmp_path / 'out.json'}"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error: no VGG16 weights for precision/recall: downloads are off")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.slow
def test_eval_of_two_folders_gives_torch_fidelitys_precision_and_recall(vgg_setup, tmp_path):
    """End to end: genlab eval on folders of PNGs (decoded and resized in loader workers) and
    torch_fidelity.calculate_metrics(prc=True) reading the same folders and weights file."""
    import torch_fidelity
    from PIL import Image

    for side in ("fake", "real"):
        (tmp_path / side).mkdir()
        for i, x in enumerate(vgg_setup[side]):
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(tmp_path / side / f"{i}.png")
    out = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", f"fake={tmp_path / 'fake'}", f"real={tmp_path / 'real'}", "metrics=[pr]",
                           "pr_k=2", f"vgg16.weights={vgg_setup['weights']}", f"inception.weights={vgg_setup['inception']}",
                           "inception.workers=1", f"out={out}"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "GENLAB_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    reference = torch_fidelity.calculate_metrics(input1=str(tmp_path / "fake"), input2=str(tmp_path / "real"), prc=True, prc_neighborhood=2,
                                                 feature_extractor_weights_path=str(vgg_setup["weights"]), cuda=False, batch_size=6,
                                                 cache=False, verbose=False)
    assert record["metrics"]["precision"] == pytest.approx(reference["precision"], abs=1e-6)
    assert record["metrics"]["recall"] == pytest.approx(reference["recall"], abs=1e-6)
    pr = record["protocol"]["pr"]
    assert pr["features"] == "vgg16" and pr["weights_sha256"] == vgg_setup["sha256"] and pr["k"] == 2
    assert pr["samples"] == {str(tmp_path / "fake"): {"generated": 6, "reference": 6}}


def test_pr_features_and_vgg16_keys_are_checked_and_reach_the_trainers_image_metrics(make_cfg, monkeypatch):
    from types import SimpleNamespace

    from genlab.metrics import image_quality
    from genlab.evaluator import Evaluator
    from genlab.validation import check_values

    with pytest.raises(GenlabError, match=r"^pr_features='vgg19' is not one of vgg16, inception$"):
        check_values(make_cfg("eval", ["pr_features=vgg19"]), "eval")
    with pytest.raises(GenlabError, match=r"^trainer.vgg16.download='yes' is not true or false$"):
        check_values(make_cfg("train", ["trainer.vgg16.download=yes"]), "train")
    cfg = make_cfg("train", ["trainer.pr_features=inception", "trainer.vgg16.weights=/w/vgg16.pth", "trainer.vgg16.download=false"])
    check_values(cfg, "train")
    built = {}

    class Recorder:
        def __init__(self, *args, **kwargs):
            built.update(kwargs)

        def compare(self, fake, real, metrics):
            return {"precision": 0.5, "n_generated": 2}

    monkeypatch.setattr(image_quality, "ImageQuality", Recorder)
    monkeypatch.setattr(image_quality, "model_source", lambda *args: None)
    evaluator = SimpleNamespace(settings=cfg.trainer, _image_quality=None, device=torch.device("cpu"), image_reference=None, image_metrics=["pr"])
    model = SimpleNamespace(sample_shape=(1, 32, 32))
    assert Evaluator._image_metrics(evaluator, model=model) == {"precision": 0.5}
    assert (built["pr_features"], built["pr_weights"], built["pr_download"], built["extractor"]) == ("inception", "/w/vgg16.pth", False, None)


def test_the_model_card_names_the_features_of_precision_and_recall(tmp_path):
    from genlab.export import model_card

    protocol = {"weights_sha256": "a" * 64, "pr": {"features": "vgg16", "layer": "fc2_relu", "weights_sha256": vgg16.WEIGHTS_SHA256,
                                                   "resize": "tf1_bilinear_224", "k": 3}}
    (tmp_path / "last.eval.json").write_text(json.dumps({"metrics": {"precision": 0.75, "recall": 0.5}, "protocol": protocol}))
    contract = {"step": 10, "weights": "ema", "interface": ["sample"], "files": {"decode": {"file": "decode.onnx"}}}
    card = model_card(torch.nn.Linear(1, 1), {"choices": {"model": "gan"}}, tmp_path / "last.pt", contract)
    assert f"Precision/recall: vgg16 fc2_relu features, weights_sha256={vgg16.WEIGHTS_SHA256}, resize=tf1_bilinear_224, k=3" in card
