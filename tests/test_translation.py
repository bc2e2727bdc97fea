"""Image-to-image translation: data layouts, networks, losses, and the CLI path."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import GenlabError
from genlab.data.translation import AlignedFolders, UnalignedFolders, edge_map
from genlab.losses.adversarial import LeastSquares
from genlab.metrics.ssim import ssim
from genlab.models.cyclegan import CycleGAN, ImagePool
from genlab.nets.translation import PatchDiscriminator, ResnetGenerator, UnetGenerator


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_reference_network_sizes():
    """Parameter counts of the reference implementation's networks."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ResnetGenerator(3, 3, 64, 9)) == 11_378_179
    assert count(UnetGenerator(3, 3, 8)) == 54_413_955
    d = PatchDiscriminator(6, 64, 3)
    assert count(d) == 2_768_705 and d(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 patches
    assert PatchDiscriminator(3, 64, 0)(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)  # PixelGAN


def test_unaligned_layout_pairs_at_random_with_independent_lengths(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(5):
        save(tmp_path / "trainA" / f"{i}.png", rng.randint(0, 256, (40, 40, 3), dtype=np.uint8))
    for i in range(3):
        save(tmp_path / "trainB" / f"{i}.png", np.full((40, 40), 50 * i, dtype=np.uint8))
    ds = UnalignedFolders(str(tmp_path), "train", load_size=36, crop_size=32, channels_B=1)
    assert len(ds) == 5
    torch.manual_seed(0)
    items = [ds[0] for _ in range(20)]
    assert items[0]["A"].shape == (3, 32, 32) and items[0]["B"].shape == (1, 32, 32)
    assert len({round(float(it["B"].mean()), 3) for it in items}) > 1  # B partners vary
    serial = UnalignedFolders(str(tmp_path), "train", load_size=32, crop_size=32, channels_B=1, serial=True)
    assert [round(float(serial[i]["B"].mean()), 3) for i in (0, 3)] == [round(float(serial[0]["B"].mean()), 3)] * 2
    with pytest.raises(GenlabError, match="expected testA/ and testB/.*download_translation_data.py"):
        UnalignedFolders(str(tmp_path), "test")


@pytest.mark.parametrize("layout", ["side_by_side", "separate"])
def test_aligned_layouts_crop_and_flip_both_halves_alike(layout, tmp_path):
    a = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))  # a horizontal ramp
    b = 255 - a
    if layout == "side_by_side":
        save(tmp_path / "train" / "x.png", np.concatenate([a, b], 1))
    else:
        save(tmp_path / "A" / "train" / "x.png", a)
        save(tmp_path / "B" / "train" / "x.png", b)
    ds = AlignedFolders(str(tmp_path), "train", load_size=64, crop_size=48)
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[0]
        torch.testing.assert_close(item["A"], -item["B"], atol=0.02, rtol=0)  # B stays the negative of A
    flipped = AlignedFolders(str(tmp_path), "train", load_size=64, crop_size=48, direction="BtoA")
    torch.manual_seed(0)
    item = flipped[0]
    torch.testing.assert_close(item["B"], -item["A"], atol=0.02, rtol=0)


def test_edge_maps_are_binary_lines():
    x = -torch.ones(1, 1, 8, 8)
    x[..., 2:6, 2:6] = 1
    e = edge_map(x)
    assert set(e.unique().tolist()) == {-1.0, 1.0} and e[0, 0, 0, 0] == 1 and e[0, 0, 2, 2] == -1


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    x = torch.rand(2, 3, 32, 32)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    assert (ssim(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)) < 0.9).all()


def test_image_pool_returns_history_and_keeps_its_state():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: new images pass through
    out = pool.query(torch.full((64, 1, 1, 1), 9.0))
    assert set(out.flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0, 9.0} and (out != 9).any()
    clone = ImagePool(4)
    clone.set_extra_state(pool.get_extra_state())
    assert torch.equal(torch.stack(clone.images), torch.stack(pool.images))


def test_cyclegan_losses_and_ablations():
    gens = lambda: ResnetGenerator(1, 1, 4, 1)  # noqa: E731
    batch = {"A": torch.rand(2, 1, 16, 16) * 2 - 1, "B": torch.rand(2, 1, 16, 16) * 2 - 1}
    full = CycleGAN(gens(), gens(), PatchDiscriminator(1, 4, 1), PatchDiscriminator(1, 4, 1), {"objective": None})
    assert isinstance(full.adversarial.objective, LeastSquares) and [p.name for p in full.phases] == ["g", "d"]
    loss, logs = full.training_step(batch, "g", {})
    expected = logs["gan_AB"] + logs["gan_BA"] + 10 * (logs["cycle_A"] + logs["cycle_B"]) + 10 * 0.5 * (logs["idt_A"] + logs["idt_B"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    cycle_only = CycleGAN(gens(), gens(), PatchDiscriminator(1, 4, 1), PatchDiscriminator(1, 4, 1), {"objective": None}, gan=False, cycle_backward=False)
    _, logs = cycle_only.training_step(batch, "g", {})
    assert [p.name for p in cycle_only.phases] == ["g"] and "gan_AB" not in logs and "cycle_B" not in logs and "cycle_A" in logs


def genlab(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_pix2pix_trains_translates_a_folder_and_evaluates(tmp_path):
    run = tmp_path / "p2p"
    genlab("train", "experiment=pix2pix_digit_edges", "trainer.max_steps=3", "model.generator.base_channels=8", "model.discriminator.base_channels=8",
           "trainer.progress_bar=false", "logger=jsonl", f"hydra.run.dir={run}", cwd=tmp_path)
    for i in range(3):
        save(tmp_path / "edges" / f"e{i}.png", np.full((20, 20), 255 * (i % 2), dtype=np.uint8))
    genlab("sample", f"ckpt={run}", f"input={tmp_path / 'edges'}", "modes=[translate]", cwd=tmp_path)
    out = run / "samples" / "last"
    assert {"e0.png", "e1.png", "e2.png"} == {p.name for p in (out / "AtoB").iterdir()} and (out / "translate_AtoB.png").is_file()
    assert Image.open(out / "AtoB" / "e0.png").size == (32, 32)
    assert Image.open(out / "AtoB" / "e0.png").mode == Image.open(out / "translate_AtoB.png").mode == "L"  # grey domains stay grey
    genlab("eval", f"ckpt={run}", "metrics=[translation]", cwd=tmp_path)
    m = json.loads((run / "checkpoints" / "last.eval.json").read_text())["metrics"]
    assert {"l1", "psnr", "ssim"} <= set(m) and 0 < m["l1"] < 2


def test_cyclegan_translates_both_ways_with_reconstructions(tmp_path):
    run = tmp_path / "cg"
    genlab("train", "experiment=cyclegan_digits2edges", "trainer.max_steps=2", "model.generator_AB.base_channels=8", "model.generator_AB.n_blocks=2",
           "model.discriminator_A.base_channels=8", "trainer.eval_batches=2", "trainer.progress_bar=false", "logger=jsonl", f"hydra.run.dir={run}", cwd=tmp_path)
    genlab("sample", f"ckpt={run}", "modes=[translate]", "direction=BtoA", "n=4", "ncol=4", cwd=tmp_path)
    grid = Image.open(run / "samples" / "last" / "translate_BtoA.png")
    assert grid.size == (4 * 34 + 2, 3 * 34 + 2)  # inputs, translations, reconstructions


def write_layouts(root):
    """The offline digit pairs written to disk in the two standard layouts: CycleGAN's
    trainA/ trainB/ testA/ testB/ and pix2pix's train/ test/ of A|B side-by-side images."""
    from genlab.data.translation import DigitEdges
    from genlab.images import to_uint8

    for split, n in (("train", 8), ("test", 4)):
        ds = DigitEdges(split, 32)
        for i in range(n):
            a, b = (to_uint8(ds[i][k])[0].numpy() for k in "AB")
            save(root / "unaligned" / f"{split}A" / f"{i}.png", a)
            save(root / "unaligned" / f"{split}B" / f"{i + 100}.png", b)
            save(root / "aligned" / split / f"{i}.png", np.concatenate([a, b], 1))


def test_both_models_train_from_the_cli_on_folders_in_the_standard_layouts(tmp_path):
    write_layouts(tmp_path)
    small = ["data.image_size=32", "data.dataset.load_size=36", "data.channels_A=1", "data.channels_B=1", "data.num_workers=0",
             "trainer.max_steps=2", "trainer.eval_batches=1", "trainer.progress_bar=false", "logger=jsonl"]
    genlab("train", "model=cyclegan", "data=horse2zebra", f"data.dataset.root={tmp_path / 'unaligned'}", "model.generator_AB.base_channels=8",
           "model.generator_AB.n_blocks=2", "model.discriminator_A.base_channels=8", *small, f"hydra.run.dir={tmp_path / 'cg'}", cwd=tmp_path)
    genlab("train", "model=pix2pix", "data=facades", f"data.dataset.root={tmp_path / 'aligned'}", "data.dataset.direction=AtoB",
           "model.generator.num_downs=5", "model.generator.base_channels=8", "model.discriminator.base_channels=8", *small,
           f"hydra.run.dir={tmp_path / 'p2p'}", cwd=tmp_path)
    for run in ("cg", "p2p"):
        assert (tmp_path / run / "checkpoints" / "last.pt").is_file()
    genlab("sample", f"ckpt={tmp_path / 'cg'}", "modes=[translate]", f"input={tmp_path / 'unaligned' / 'testB'}", "direction=BtoA", cwd=tmp_path)
    assert len(list((tmp_path / "cg" / "samples" / "last" / "BtoA").iterdir())) == 4


def test_scale_width_keeps_the_aspect_ratio_and_crops_rectangles(tmp_path):
    """The reference code's scale_width(_and_crop): the width to load_size, the height in
    proportion; rectangular crops [height, width] of both halves of a pair alike."""
    a = np.tile(np.arange(80, dtype=np.uint8)[None, :, None] * 3, (40, 1, 3))  # 40 x 80, a horizontal ramp
    save(tmp_path / "A" / "train" / "x.png", a)
    save(tmp_path / "B" / "train" / "x.png", 255 - a)
    whole = AlignedFolders(str(tmp_path), "train", load_size=64, crop_size=16, preprocess="scale_width")
    assert whole[0]["A"].shape == (3, 32, 64)  # 40 x 80 -> 32 x 64
    cropped = AlignedFolders(str(tmp_path), "train", load_size=64, crop_size=[32, 48], preprocess="scale_width_and_crop")
    for seed in range(4):
        torch.manual_seed(seed)
        item = cropped[0]
        assert item["A"].shape == (3, 32, 48)
        torch.testing.assert_close(item["A"], -item["B"], atol=0.02, rtol=0)
    resized = AlignedFolders(str(tmp_path), "train", load_size=[36, 72], crop_size=[32, 64])  # resize_and_crop, rectangles
    assert resized[0]["A"].shape == (3, 32, 64)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crop_size": [256, 300]}, r"data.crop_size=\[256, 300\] is larger than data.dataset.load_size=286"),
    ({"preprocess": "crop"}, "data.dataset.preprocess='crop' is not one of resize_and_crop, scale_width_and_crop, scale_width"),
    ({"preprocess": "scale_width_and_crop", "load_size": 128, "crop_size": [64, 256]}, "wider than data.dataset.load_size=128"),
    ({"preprocess": "scale_width", "load_size": [128, 256]}, "a single number"),
])
def test_impossible_preprocessing_is_refused_in_one_line(kwargs, message, tmp_path):
    save(tmp_path / "trainA" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    save(tmp_path / "trainB" / "b.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(GenlabError, match=message):
        UnalignedFolders(str(tmp_path), "train", **kwargs)


def test_whole_images_of_several_sizes_in_one_batch_are_refused(tmp_path):
    from genlab.data.loading import collate

    save(tmp_path / "trainA" / "wide.png", np.zeros((20, 40, 3), dtype=np.uint8))
    save(tmp_path / "trainA" / "tall.png", np.zeros((40, 20, 3), dtype=np.uint8))
    save(tmp_path / "trainB" / "b.png", np.zeros((20, 40, 3), dtype=np.uint8))
    ds = UnalignedFolders(str(tmp_path), "train", load_size=16, crop_size=8, preprocess="scale_width")
    with pytest.raises(GenlabError, match=r"one batch holds A images of sizes \(3, 8, 16\) and \(3, 32, 16\); set data.batch_size=1"):
        collate([ds[0], ds[1]])


class Identity(torch.nn.Module):
    """A translator that returns its input and, like the generators, takes only sides that
    are multiples of 16: padding and cropping back must give the input again, exactly."""

    def translate(self, x, direction="AtoB"):
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0, x.shape
        return x.clone()


@pytest.mark.parametrize("shape", [(2, 3, 45, 70), (1, 1, 5, 7), (1, 1, 32, 48)])
def test_translation_at_any_size_pads_to_the_multiple_and_crops_back_exactly(shape):
    from genlab.sample import translate_images

    images = list(torch.rand(shape) * 2 - 1)
    for x, y in zip(images, translate_images(Identity(), images, "AtoB", 16)):
        assert torch.equal(x, y)


@pytest.fixture(scope="module")
def rect_pix2pix(tmp_path_factory):
    """pix2pix trained two steps on 32 x 64 crops of 40 x 80 grey pairs (scale_width_and_crop)."""
    from hydra import compose, initialize_config_module

    from genlab import train

    root = tmp_path_factory.mktemp("rect")
    rng = np.random.RandomState(0)
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            a = rng.randint(0, 256, (40, 80), dtype=np.uint8)
            save(root / "data" / split / f"{i}.png", np.concatenate([a, 255 - a], 1))
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        cfg = compose("train", overrides=[
            "model=pix2pix", "data=facades", f"data.dataset.root={root / 'data'}", "data.dataset.direction=AtoB", "data.channels_A=1",
            "data.channels_B=1", "model.generator.num_downs=5", "model.generator.base_channels=8", "model.discriminator.base_channels=8",
            "data.crop_size=[32,64]", "data.dataset.preprocess=scale_width_and_crop", "data.dataset.load_size=80", "data.num_workers=0",
            "trainer.max_steps=2", "trainer.eval_batches=1", "trainer.progress_bar=false", "logger=jsonl"])
    train.run(cfg, run_dir=root / "run")
    return root / "run"


def test_rectangular_crops_train_and_photos_come_back_at_their_own_size(rect_pix2pix, tmp_path):
    from genlab import checkpoint

    state, _ = checkpoint.load(rect_pix2pix)
    assert state["config"]["data"]["crop_size"] == [32, 64] and state["config"]["data"]["shape"] == [3, 32, 64]
    rng = np.random.RandomState(1)
    save(tmp_path / "in" / "a" / "photo1.png", rng.randint(0, 256, (45, 70), dtype=np.uint8))
    save(tmp_path / "in" / "b" / "c" / "photo2.jpg", rng.randint(0, 256, (30, 50, 3), dtype=np.uint8))
    genlab("sample", f"ckpt={rect_pix2pix}", "modes=[translate]", f"input={tmp_path / 'in'}", "preprocess=none", f"out={tmp_path / 'none'}", cwd=tmp_path)
    sizes = {p.relative_to(tmp_path / "none").as_posix(): (Image.open(p).size, Image.open(p).mode) for p in (tmp_path / "none").rglob("*.png")}
    assert sizes == {"AtoB/a/photo1.png": ((70, 45), "L"), "AtoB/b/c/photo2.png": ((50, 30), "L"),  # sub-folders, names, sizes kept; grey
                     "translate_AtoB.png": ((2 * 66 + 2, 2 * 66 + 2), "L")}  # a grid of 64 px tiles: inputs above outputs
    genlab("sample", f"ckpt={rect_pix2pix}", "modes=[translate]", f"input={tmp_path / 'in'}", "preprocess=scale_width", "load_size=64",
           "grid=false", f"out={tmp_path / 'sw'}", cwd=tmp_path)
    sizes = {p.relative_to(tmp_path / "sw").as_posix(): Image.open(p).size for p in (tmp_path / "sw").rglob("*.png")}
    assert sizes == {"AtoB/a/photo1.png": (64, 41), "AtoB/b/c/photo2.png": (64, 38)}  # the width to 64, no grid


@pytest.mark.parametrize(("overrides", "message"), [
    (["preprocess=none"], "preprocess=none applies to input= images"),
    (["load_size=64", "input=IN"], "load_size=64 is the width of preprocess=scale_width"),
    (["direction=BtoA", "input=IN"], "direction=BtoA: Pix2Pix translates AtoB"),
    (["input=CLASH"], "which would both be written as x.png; rename one"),
    (["modes=[recon]", "grid=false"], "sample mode 'recon' does not apply to Pix2Pix"),
])
def test_sample_refuses_what_does_not_apply_in_one_line(overrides, message, rect_pix2pix, tmp_path, make_cfg):
    from genlab import sample

    save(tmp_path / "in" / "x.png", np.zeros((8, 8), dtype=np.uint8))
    save(tmp_path / "clash" / "x.png", np.zeros((8, 8), dtype=np.uint8))
    save(tmp_path / "clash" / "x.jpg", np.zeros((8, 8), dtype=np.uint8))
    overrides = [o.replace("IN", str(tmp_path / "in")).replace("CLASH", str(tmp_path / "clash")) for o in overrides]
    with pytest.raises(GenlabError, match=message):
        sample.run(make_cfg("sample", [f"ckpt={rect_pix2pix}", "modes=[translate]", f"out={tmp_path / 'out'}", *overrides]))


def test_sides_the_generator_cannot_take_are_refused_in_one_line(make_cfg, tmp_path):
    from genlab import train

    with pytest.raises(GenlabError, match=r"a ResNet generator \(2 downsamplings\) needs image sides divisible by 4, got \(30, 30\)"):
        train.run(make_cfg("train", ["experiment=cyclegan_digits2edges", "model.generator_AB.base_channels=4", "model.generator_AB.n_blocks=1",
                                     "model.discriminator_A.base_channels=4", "trainer.max_steps=1", "data.image_size=30"]), run_dir=tmp_path)
    with pytest.raises(GenlabError, match=r"data.crop_size=\[16, 32\] applies to the two-domain folder sets"):
        train.run(make_cfg("train", ["model=gan", "+data.crop_size=[16,32]", "trainer.max_steps=1"]), run_dir=tmp_path)
