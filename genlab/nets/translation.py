"""Image-to-image networks of the pix2pix and CycleGAN papers (Isola et al. 2017; Zhu et al.
2017): the ResNet generator (reflection padding, 6 or 9 residual blocks), the U-Net
generator (skip connections, dropout), the PatchGAN discriminator (n_layers=3: 70x70
receptive field) and the 1x1 pixel discriminator; norms from layers.norm2d; N(0, 0.02) init."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.nets import layers as L


class ResidualBlock(nn.Module):
    def __init__(self, c: int, norm: str, dropout: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), L.norm2d(norm, c), nn.ReLU(True), nn.Dropout(dropout),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), L.norm2d(norm, c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def check_sides(x: Tensor, multiple: int, net: str) -> None:
    """Fully convolutional generators take any height and width that their downsamplings
    divide; other sides would come back a different size."""
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise GenlabError(f"{net} needs image sides divisible by {multiple}, got {tuple(x.shape[-2:])}; "
                          f"train on multiples of {multiple} (data.crop_size or data.image_size); genlab sample preprocess=none pads other sizes")


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, n_blocks x R256, u128, u64, c7s1-C, tanh (Johnson et al. 2016).
    Any height and width divisible by size_multiple = 4 (two stride-2 downsamplings)."""

    size_multiple = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64, n_blocks: int = 9, norm: str = "instance", dropout: float = 0.0):
        super().__init__()
        bias = norm == "instance"  # batch norm has its own shift
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, base_channels, 7, bias=bias), L.norm2d(norm, base_channels), nn.ReLU(True)]
        c = base_channels
        for _ in range(2):
            layers += [nn.Conv2d(c, c * 2, 3, 2, 1, bias=bias), L.norm2d(norm, c * 2), nn.ReLU(True)]
            c *= 2
        layers += [ResidualBlock(c, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias), L.norm2d(norm, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        L.init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        check_sides(x, self.size_multiple, "a ResNet generator (2 downsamplings)")
        return self.net(x)


class UnetBlock(nn.Module):
    """down -> inner -> up with a skip connection around it (the outermost block has none)."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        bias = norm == "instance"
        down = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1)
            model = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, L.norm2d(norm, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), down, L.norm2d(norm, inner), submodule, nn.ReLU(True), up, L.norm2d(norm, outer)]
            if dropout:
                model.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*model)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net of num_downs halvings (7 for 128 px, 8 for 256 px): the bottleneck is 1x1;
    dropout 0.5 in the three innermost non-bottleneck decoder blocks, as in pix2pix. Any
    height and width divisible by size_multiple = 2**num_downs."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, base_channels: int = 64, norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        if num_downs < 5:  # the four outer blocks and the innermost one always halve
            raise GenlabError(f"model.generator.num_downs={num_downs}: a U-Net has at least 5 downsamplings")
        b = base_channels
        block = UnetBlock(b * 8, b * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetBlock(b * 8, b * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetBlock(b * mult, b * mult * 2, submodule=block, norm=norm)
        self.net = UnetBlock(out_channels, b, in_channels=in_channels, submodule=block, outermost=True, norm=norm)
        self.num_downs, self.size_multiple = num_downs, 2**num_downs
        L.init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        check_sides(x, self.size_multiple, f"a U-Net with {self.num_downs} downsamplings")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: n_layers stride-2 4x4 convs then two stride-1 ones, one logit per patch
    (70x70 receptive field for n_layers=3); n_layers=0 gives the 1x1 PixelGAN. The signature is
    every discriminator's, forward(x, y=None, features=False); it takes no labels."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        if n_layers == 0:  # PixelGAN
            layers = [nn.Conv2d(in_channels, base_channels, 1), nn.LeakyReLU(0.2, True),
                      nn.Conv2d(base_channels, base_channels * 2, 1, bias=bias), L.norm2d(norm, base_channels * 2), nn.LeakyReLU(0.2, True),
                      nn.Conv2d(base_channels * 2, 1, 1, bias=bias)]
        else:
            layers = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            mult = 1
            for n in range(1, n_layers + 1):
                prev, mult = mult, min(2**n, 8)
                stride = 2 if n < n_layers else 1
                layers += [nn.Conv2d(base_channels * prev, base_channels * mult, 4, stride, 1, bias=bias), L.norm2d(norm, base_channels * mult), nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(base_channels * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        L.init_normal(self)

    def forward(self, x: Tensor, y=None, features: bool = False):
        """Logits (B, 1, H', W'); with features=True also the last hidden layer, (B, C * H' * W')."""
        if not features:
            return self.net(x)
        h = self.net[:-1](x)
        return self.net[-1](h), h.flatten(1)
