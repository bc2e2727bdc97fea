"""Image files on disk: grey data stays grey (one-channel PNGs and GIF frames), RGB stays RGB."""

import numpy as np
import torch
from PIL import Image, ImageSequence

from genlab.images import grid, match_channels, save_gif, save_grid, save_image, to_uint8


def test_grey_batches_are_written_as_one_channel_pngs_with_exact_pixels(tmp_path):
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    im = Image.open(save_grid(x, tmp_path / "grey.png", ncol=3))
    assert im.mode == "L" and im.size == (3 * 10 + 2, 2 * 10 + 2)
    assert np.array_equal(np.asarray(im)[2:10, 2:10], to_uint8(x[0, 0]).numpy())  # first tile, inside the 2 px border
    assert np.asarray(im)[0].tolist() == [255] * im.size[0]  # white padding


def test_rgb_batches_and_grids_mixing_grey_and_rgb_rows_are_rgb(tmp_path):
    assert Image.open(save_grid(torch.zeros(2, 3, 8, 8), tmp_path / "rgb.png")).mode == "RGB"
    grey, rgb = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    im = Image.open(save_grid(torch.cat(match_channels(grey, rgb)), tmp_path / "mixed.png", ncol=2))
    arr = np.asarray(im)
    assert im.mode == "RGB" and all(np.array_equal(arr[2:10, 2:10, c], to_uint8(grey[0, 0]).numpy()) for c in range(3))


def test_grey_gif_frames_hold_the_exact_grey_levels(tmp_path):
    frames = [torch.rand(4, 1, 8, 8) * 2 - 1 for _ in range(3)]
    gif = Image.open(save_gif(frames, tmp_path / "a.gif", ncol=2))
    got = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(gif)]
    assert len(got) == 4  # there and back: 0, 1, 2, 1
    for f, g in zip([0, 1, 2, 1], got):
        assert np.array_equal(g, grid(frames[f], 2)[0].numpy())


def test_single_images_are_written_at_their_own_size_without_a_border(tmp_path):
    x = torch.rand(1, 5, 7) * 2 - 1
    im = Image.open(save_image(x, tmp_path / "one.png"))
    assert im.mode == "L" and im.size == (7, 5) and np.array_equal(np.asarray(im), to_uint8(x[0]).numpy())
    assert Image.open(save_image(torch.zeros(3, 5, 7), tmp_path / "rgb.png")).mode == "RGB"
