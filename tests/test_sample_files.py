"""`genlab sample grid=false` and `format=npz`: one file per sample, or one uint8 array, drawn
in batches from a seeded state, so torch-fidelity on the written folder gives genlab eval's
FID of the same checkpoint."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from genlab import GenlabError, checkpoint, evaluate, sample, train
from genlab.data.digits import Digits
from genlab.images import save_image, to_uint8

TINY = ["trainer.progress_bar=false", "logger=jsonl", "trainer.log_every=1", "trainer.eval_batches=1", "trainer.max_steps=2",
        "trainer.eval_every=0", "trainer.sample_every=0", "data.batch_size=8", "optim.lr=0.03",
        "model.generator.base_channels=8", "model.discriminator.base_channels=8"]
N = 24


def compose_cfg(name, overrides):
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    made = {}

    def get(name):
        if name not in made:
            made[name] = tmp_path_factory.mktemp(name)
            train.run(compose_cfg("train", [f"model={name}", *TINY]), run_dir=made[name])
        return made[name]

    return get


def sample_cfg(ckpt, out, *extra):
    return compose_cfg("sample", [f"ckpt={ckpt}", "modes=[prior]", f"n={N}", "batch_size=10", "progress=false", f"out={out}", *extra])


def test_grid_false_writes_one_png_per_sample_of_the_seeded_batches(runs, tmp_path):
    sample.run(sample_cfg(runs("gan"), tmp_path, "grid=false", "seed=5"))
    files = sorted((tmp_path / "prior").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(N)]
    model, *_ = checkpoint.load_trained(runs("gan"), torch.device("cpu"))
    torch.manual_seed(5)
    with torch.no_grad():
        expected = torch.cat([to_uint8(model.sample(b)) for b in (10, 10, 4)])  # (N, 1, 32, 32)
    got = torch.stack([torch.from_numpy(np.array(Image.open(f)))[None] for f in files])
    assert torch.equal(got, expected) and Image.open(files[0]).mode == "L"


def test_npz_holds_the_same_samples_as_the_folder_and_a_conditional_models_labels(runs, tmp_path):
    sample.run(sample_cfg(runs("cgan"), tmp_path / "png", "grid=false"))
    sample.run(sample_cfg(runs("cgan"), tmp_path / "npz", "format=npz"))
    with np.load(tmp_path / "npz" / "prior.npz") as f:
        arr, labels = f["arr_0"], f["arr_1"]
    assert arr.shape == (N, 32, 32, 1) and arr.dtype == np.uint8
    pngs = np.stack([np.array(Image.open(tmp_path / "png" / "prior" / f"{i:06d}.png")) for i in range(N)])
    assert np.array_equal(arr[..., 0], pngs)
    assert labels.tolist() == [*range(10), *range(10), *range(4)]  # every class in turn, per batch of 10
    rows = (tmp_path / "png" / "prior" / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,label" and rows[13] == "000012.png,2"
    assert not list((tmp_path / "npz").glob(".*tmp*"))


def test_grid_false_with_a_grid_only_mode_is_one_line(runs, tmp_path):
    cfg = compose_cfg("sample", [f"ckpt={runs('gan')}", "modes=[prior,interp]", "grid=false", f"out={tmp_path}"])
    with pytest.raises(GenlabError, match=r"grid=false and format=npz apply to modes prior and translate; interp only draw grids"):
        sample.run(cfg)
    with pytest.raises(GenlabError, match=r"format='tiff' is not one of png, npz"):
        sample.run(sample_cfg(runs("gan"), tmp_path, "format=tiff"))


def test_torch_fidelity_on_the_written_folder_gives_genlab_evals_fid(runs, tmp_path):
    import torch_fidelity
    from test_fid import random_fid_inception

    real = tmp_path / "real"
    images = Digits("test").images[:N]
    for i, x in enumerate(images):
        save_image(x, real / f"{i:04d}.png")
    weights = tmp_path / "inception.pth"
    torch.save(random_fid_inception(to_uint8(Digits("train").images[:16]).expand(-1, 3, -1, -1)).state_dict(), weights)
    ckpt = runs("gan")
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "sample", f"ckpt={ckpt}", "modes=[prior]", f"n={N}", "grid=false",
                           "batch_size=10", "seed=3", f"out={tmp_path / 'fake'}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = evaluate.run(compose_cfg("eval", [f"ckpt={ckpt}", "metrics=[fid]", f"n_samples={N}", "seed=3", "inception.batch_size=10",
                                               f"real={real}", f"inception.weights={weights}", "inception.download=false",
                                               f"out={tmp_path / 'eval.json'}", "inception.workers=0"]))
    reference = torch_fidelity.calculate_metrics(input1=str(tmp_path / "fake" / "prior"), input2=str(real), fid=True, cuda=False,
                                                 feature_extractor_weights_path=str(weights), batch_size=N, cache=False, verbose=False)
    ours, theirs = record["metrics"]["fid"], reference["frechet_inception_distance"]
    print(f"genlab eval FID {ours:.6f}, torch-fidelity on the written folder {theirs:.6f}, relative difference {abs(ours - theirs) / theirs:.2e}")
    assert theirs > 1  # samples unlike the digits: a match is not one of two zeros
    assert ours == pytest.approx(theirs, rel=1e-4)
