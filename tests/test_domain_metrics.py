"""Domain classifiers, stacked data sets and the metrics through them (stacked_modes,
class_accuracy, ifid, features=<data set>), against independent computations: a
nearest-image oracle for the stacked modes, the classifier's own test accuracy, per-class
FIDs one by one and torch-fidelity's formulas on the same features. The classifier here is
a tiny one trained for a few steps; the real recipe's accuracy is a slow test."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from genlab import GenlabError
from genlab.data.digits import Digits
from genlab.data.loading import eval_loader
from genlab.data.stacked import StackedDataset
from genlab.metrics.registry import METRICS, scalars
from genlab import classifier
from genlab.metrics import domain
from genlab.metrics.classes import mode_statistics, stacked_modes
from genlab.models.base import Conditional, GenerativeModel, SamplesPrior

TINY = ["trainer.max_steps=40", "model.net.channels=[8,8,8]", "model.net.feature_dim=16", "data.batch_size=32"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache holding a tiny digits classifier (40 steps: about 80% accurate)."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(path))
        domain._domain_net.cache_clear()
        rng = torch.get_rng_state()
        classifier.train_classifier("digits", 32, TINY, progress=False, device="cpu")
        assert torch.equal(rng, torch.get_rng_state())  # training leaves the process's random state alone
        yield path
    domain._domain_net.cache_clear()


@pytest.fixture
def net(cache, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(cache))
    return domain.domain_net("digits", 32)


def test_the_cached_classifier_is_named_by_its_sha256_and_stores_its_true_test_accuracy(net):
    assert net.path.name == f"digits-32px-{net.sha256[:12]}.pt" and net.path.parent.name == "classifiers"
    test = Digits("test")
    predicted = net.predict(test.images)
    assert net.accuracy == pytest.approx((predicted == test.labels).double().mean().item(), abs=1e-9)
    assert net.training["steps"] == 40 and "model.net.feature_dim=16" in net.training["recipe"] and net.feature_dim == 16
    assert 0.3 < net.accuracy < 1  # 40 steps learn something


def test_a_tampered_classifier_is_refused_in_one_line(net, tmp_path):
    saved = torch.load(net.path, weights_only=True)
    saved["weights"]["head.1.bias"] += 1
    bad = tmp_path / net.path.name
    torch.save(saved, bad)
    with pytest.raises(GenlabError, match="does not match its sha256") as e:
        domain.load_classifier(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(GenlabError, match="features=svhn is not inception or a data set with a classifier"):
        domain.extractor("svhn", 32, "cpu")


def test_a_classifier_not_cached_is_trained_by_genlab_classifier_in_a_process_of_its_own(net, tmp_path, monkeypatch):
    """No cached classifier: domain_net runs `genlab classifier` (here, a stand-in that caches
    the fixture's file), without torchrun's environment, and loads what it cached; a failed
    run is one line."""
    calls = []

    def run(command, env, **kwargs):
        calls.append((command, env))
        (tmp_path / "classifiers").mkdir(exist_ok=True)
        shutil.copy(net.path, tmp_path / "classifiers" / net.path.name)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(domain.subprocess, "run", run)
    domain._domain_net.cache_clear()
    try:
        assert domain.domain_net("digits", 32).sha256 == net.sha256
        (command, env), = calls
        assert command == [sys.executable, "-m", "genlab.cli", "classifier", "data=digits", "image_size=32"]
        assert "WORLD_SIZE" not in env and "RANK" not in env and env["GENLAB_CACHE"] == str(tmp_path)
        monkeypatch.setattr(domain.subprocess, "run", lambda command, env, **kw: subprocess.CompletedProcess(command, 2))
        with pytest.raises(GenlabError, match=r"^training the mnist classifier failed \(genlab classifier data=mnist image_size=32 "
                                              r"exited with 2; its error is above\); nothing was cached$"):
            domain.domain_net("mnist", 32)
    finally:
        domain._domain_net.cache_clear()


def test_stacked_samples_are_three_base_images_and_a_function_of_seed_split_and_index():
    d = StackedDataset("digits", "test", size=64)
    again, other = StackedDataset("digits", "test", size=64), StackedDataset("digits", "test", seed=1, size=64)
    base = Digits("test")
    for i in (0, 17, 63):
        item = d[i]
        assert torch.equal(item["image"], again[i]["image"]) and item["image"].shape == (3, 32, 32)
        r, g, b = (int(base.labels[j]) for j in d.picks[i])
        assert int(item["label"]) == 100 * r + 10 * g + b
        assert all(torch.equal(item["image"][c], base.images[j][0]) for c, j in enumerate(d.picks[i]))
    assert not np.array_equal(d.picks, other.picks)
    batch = d.arrays()["image"][torch.tensor([3, 5])]
    assert torch.equal(batch[1], d[5]["image"])


def _oracle(base: Digits):
    """A perfect classifier of the base images: the label of the same image, found by a random
    projection of its pixels (equal images project equally; distinct ones almost surely not)."""
    w = torch.randn(base.images[0].numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    keys, order = (base.images.flatten(1).double() @ w).sort()
    assert (keys.diff() > 1e-9).all()

    def classify(x):
        q = x.flatten(1).double() @ w
        i = torch.searchsorted(keys, q - 1e-10).clamp(max=len(keys) - 1)  # (matrix products round by batch)
        assert torch.equal(base.images[order[i], 0], x[:, 0])  # every channel is that base image
        return base.labels[order[i]]

    return classify


def test_real_stacked_images_cover_nearly_every_mode_and_one_image_covers_one():
    d = StackedDataset("digits", "train", size=26000)
    images = d.arrays()["image"]
    batches = (images[torch.arange(i, min(i + 2000, len(d)))] for i in range(0, len(d), 2000))
    real = stacked_modes(batches, _oracle(d.base))
    assert real == mode_statistics(d.labels)  # the oracle reads every channel right: the true histogram
    assert real["stacked_modes"] >= 995 and real["stacked_kl"] < 0.05  # 26,000 draws of 1,000 equally likely modes
    one = images[torch.zeros(500, dtype=torch.long)]
    collapsed = stacked_modes([one] * 52, _oracle(d.base))
    assert collapsed["stacked_modes"] == 1 and collapsed["stacked_kl"] == pytest.approx(math.log(1000), abs=1e-12)


class Replay(GenerativeModel, SamplesPrior):
    """A "generator" that returns real images of a data set, in order."""

    def __init__(self, images, labels=None):
        super().__init__()
        self.images, self.labels, self.sample_shape, self.at = images, labels, tuple(images.shape[1:]), {}
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample(self, n, labels=None):
        pool = self.images if labels is None else self.images[self.labels == labels[0]]
        key = None if labels is None else labels[0]
        start = self.at.get(key, 0)
        self.at[key] = start + n
        return pool[torch.arange(start, start + n) % len(pool)]


class ConditionalReplay(Replay, Conditional):
    num_classes = 10

    def class_labels(self, n, labels=None):
        return torch.as_tensor(list(labels or range(10))).repeat(n)[:n]


def test_stacked_modes_metric_classifies_each_channel_with_the_base_sets_classifier(net, make_cfg):
    loader = eval_loader(make_cfg("train", ["data=stacked_digits", "data.dataset.size=600"]).data, "test")
    data = loader.dataset.dataset
    model = Replay(data.arrays()["image"][torch.arange(600)])
    out = METRICS["stacked_modes"].compute(model, loader, "cpu", {"stacked_samples": 600})
    x = (model.images.add(1).mul(127.5).round() / 127.5 - 1)
    modes = sum(net.predict(x[:, c : c + 1]) * w for c, w in enumerate((100, 10, 1)))
    assert scalars(out) == mode_statistics(modes)
    assert out["protocol"]["stacked_modes"]["classifier_sha256"] == net.sha256 and out["protocol"]["stacked_modes"]["samples"] == 600


def test_real_images_of_the_asked_class_get_the_classifiers_test_accuracy(net, make_cfg):
    loader = eval_loader(make_cfg("train").data, "test")
    test = Digits("test")
    out = METRICS["class_accuracy"].compute(ConditionalReplay(test.images, test.labels), loader, "cpu", {"class_samples": None})
    predicted = net.predict(((test.images + 1) * 127.5).round() / 127.5 - 1)  # the images as files hold them (uint8)
    assert out["class_accuracy"] == pytest.approx((predicted == test.labels).double().mean().item(), abs=1e-12)
    assert out["class_accuracy"] == pytest.approx(net.accuracy, abs=0.02)  # the test accuracy, up to the 8-bit rounding
    by_hand = [(predicted[test.labels == c] == c).double().mean().item() for c in range(10)]
    assert out["per_class"]["class_accuracy"] == pytest.approx(by_hand, abs=1e-12)
    assert out["protocol"]["class_accuracy"]["samples_per_class"] == torch.bincount(test.labels).tolist()


def test_ifid_is_the_mean_of_the_per_class_fids_computed_one_by_one(net, make_cfg):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    cfg = make_cfg("eval", ["ckpt=unused", "features=digits", "class_samples=60"])
    loader = eval_loader(make_cfg("train").data, "train")
    train = Digits("train")
    noisy = (train.images + 0.3 * torch.randn(train.images.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    out = METRICS["ifid"].compute(ConditionalReplay(noisy, train.labels), loader, "cpu", cfg)
    ext = domain.DomainExtractor(net)
    u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    fids = []
    for c in range(10):
        fake = ConditionalReplay(noisy, train.labels).sample(60, labels=[c])
        real = train.images[train.labels == c]
        stats = [fid_features_to_statistics(ext(u8(x))[0]) for x in (fake, real)]
        fids.append(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])
    assert out["per_class"]["ifid"] == pytest.approx(fids, rel=1e-6)
    assert out["ifid"] == pytest.approx(np.mean(fids), rel=1e-6)
    assert out["protocol"]["ifid"]["weights_sha256"] == net.sha256 and out["protocol"]["ifid"]["samples_per_class"] == [60] * 10


def test_fid_kid_and_is_on_domain_features_agree_with_torch_fidelity(net):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    from genlab.metrics.image_quality import ImageQuality, Source

    ext = domain.DomainExtractor(net)
    iq = ImageQuality(None, "tf", "cpu", extractor=ext, progress=False)
    train, test = Digits("train"), Digits("test")
    u8 = lambda x: ((x + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    fake_u8, real_u8 = u8(train.images[:300]), u8(test.images)
    src = lambda x, name: Source(name, len(x), lambda: iter(x.split(64)))  # noqa: E731
    out = iq.compare(src(fake_u8, "fake"), src(real_u8, "real"), ["fid", "kid", "is"], splits=5, kid_subsets=10, kid_subset_size=100)
    (f_feat, f_logits), (r_feat, _) = ext(fake_u8), ext(real_u8)
    fid = fid_statistics_to_metric(fid_features_to_statistics(f_feat), fid_features_to_statistics(r_feat), verbose=False)["frechet_inception_distance"]
    kid = kid_features_to_metric(f_feat, r_feat, kid_subsets=10, kid_subset_size=100, verbose=False, rng_seed=2020)
    isc = isc_features_to_metric(f_logits, splits=5)
    assert out["fid"] == pytest.approx(fid, rel=1e-6)
    assert out["kid_mean"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-6)
    assert out["is_mean"] == pytest.approx(isc["inception_score_mean"], rel=1e-9)
    assert iq.protocol["weights_sha256"] == net.sha256 and iq.protocol["classifier_test_accuracy"] == net.accuracy


@pytest.mark.parametrize("model,data,metric,says", [
    ("gan", "digits", "class_accuracy", "needs a conditional model (model=cgan)"),
    ("cgan", "stacked_digits", "ifid", "needs a conditional model (model=cgan) of a labelled set with a domain classifier"),
    ("gan", "digits", "stacked_modes", "needs a model that samples images of a stacked data set"),
    ("ae", "stacked_digits", "stacked_modes", "needs a model that samples images of a stacked data set"),
])
def test_each_new_metric_refuses_what_it_does_not_apply_to_in_one_line(model, data, metric, says, make_cfg, tmp_path):
    from genlab.config import build
    from genlab.evaluate import chosen_metrics
    from genlab.train import build_trainer

    cfg = make_cfg("train", [f"model={model}", f"data={data}", "data.dataset.size=64"] if "stacked" in data else [f"model={model}", f"data={data}"])
    m = build(cfg.model, "model")
    with pytest.raises(GenlabError, match=r"metric '\w+' " + says.replace("(", r"\(").replace(")", r"\)")) as e:
        chosen_metrics([metric], m, eval_loader(cfg.data, "test").dataset)
    assert "\n" not in str(e.value)
    cfg.trainer.eval_metrics = [metric]
    with pytest.raises(GenlabError, match=f"trainer.eval_metrics has '{metric}'"):
        build_trainer(cfg, m, tmp_path)


def test_new_metrics_are_not_computed_by_auto(make_cfg):
    from genlab.config import build
    from genlab.evaluate import chosen_metrics

    cfg = make_cfg("train", ["model=cgan", "model.generator.base_channels=8", "model.discriminator.base_channels=8"])
    assert chosen_metrics(["auto"], build(cfg.model, "model"), eval_loader(cfg.data, "test").dataset) == ([], ["fid"])


def _cli(args, cache, cwd):
    env = {**os.environ, "GENLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_stacked_modes_as_validation_metric_keeps_best_pt_and_genlab_eval_prints_per_class_tables(cache, tmp_path):
    """One 2-step GAN on stacked digits validated by stacked_modes, and one cGAN evaluated by
    class_accuracy and ifid, through the command line."""
    small = ["model.generator.base_channels=8", "model.discriminator.base_channels=8", "trainer.max_steps=2", "trainer.eval_every=2",
             "trainer.sample_every=0", "trainer.ckpt_every=0", "logger=jsonl", "trainer.progress_bar=false", "data.batch_size=8"]
    r = _cli(["train", "model=gan", "data=stacked_digits", "data.dataset.size=64", "trainer.eval_metrics=[stacked_modes]",
              "trainer.stacked_samples=300", f"hydra.run.dir={tmp_path / 'gan'}", *small], cache, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    logged = [json.loads(line) for line in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    val = next(x for x in logged if "val/stacked_modes" in x)
    assert 1 <= val["val/stacked_modes"] <= 300 and 0 <= val["val/stacked_kl"] <= math.log(1000) + 1e-9
    best = torch.load(tmp_path / "gan" / "checkpoints" / "best.pt", weights_only=True)["best"]
    assert best["name"] == "val/stacked_modes"
    r = _cli(["train", "experiment=cgan_digits", f"hydra.run.dir={tmp_path / 'cgan'}", *small], cache, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli(["eval", f"ckpt={tmp_path / 'cgan'}", "metrics=[class_accuracy,ifid]", "features=digits", "class_samples=40", "split=train"], cache, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((tmp_path / "cgan" / "checkpoints" / "last.eval.json").read_text())
    assert set(record["per_class"]) == {"class_accuracy", "ifid"} and len(record["per_class"]["ifid"]) == 10
    assert record["metrics"]["ifid"] == pytest.approx(np.mean(record["per_class"]["ifid"]))
    sha = next(cache.glob("classifiers/digits-32px-*.pt")).stem.rsplit("-", 1)[1]
    assert record["protocol"]["class_accuracy"]["classifier_sha256"].startswith(sha) and record["protocol"]["ifid"]["weights_sha256"].startswith(sha)
    assert "per class" in r.stdout and "class_accuracy" in r.stdout
    r = _cli(["eval", f"ckpt={tmp_path / 'cgan'}", "metrics=[stacked_modes]"], cache, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "needs a model that samples images of a stacked data set" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name,target", [("digits", 0.97)])
def test_the_real_recipe_reaches_its_accuracy(name, target, tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    net = domain.load_classifier(classifier.train_classifier(name, 32, progress=False))
    assert net.accuracy >= target
