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
    assert isinstance(full.objective, LeastSquares) and [p.name for p in full.phases] == ["g", "d"]
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
