"""The small CNN of the domain classifiers (genlab/metrics/domain.py): three conv stages
(3x3 conv, batch norm, ReLU, 2x2 max pooling), a `feature_dim` penultimate layer whose
activations are the domain features of FID/KID/PR, and a linear layer to the class logits."""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """(B, C, S, S) in [-1, 1] -> logits (B, num_classes); features(x) -> (B, feature_dim)."""

    def __init__(self, in_channels: int = 1, image_size: int = 32, num_classes: int = 10, channels: tuple[int, ...] = (16, 32, 64),
                 feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        stages, c_in, side = [], in_channels, image_size
        for c in channels:
            stages += [nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in, side = c, side // 2
        self.body = nn.Sequential(*stages, nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * side * side, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
