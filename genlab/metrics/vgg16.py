"""The VGG16 features of improved precision and recall (Kynkaanniemi et al. 2019), as
torch-fidelity 0.4.0 computes them: uint8 RGB resized to 224 x 224 by TF1 bilinear (float32
source coordinates), ImageNet mean/std on the 0-255 scale, torchvision's VGG16 up to the
second fully connected layer, after its ReLU: 4096-d, float32. The weights are torchvision's
IMAGENET1K_V1 file, the one torch-fidelity downloads; the original code used the same VGG16
(its TF port) at the same layer.

Weights, in this order: a path (vgg16.weights); the torch hub cache (where torchvision and
torch-fidelity keep the file); a download whose sha256 is checked. Read with weights_only=True."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import vgg16

from genlab.errors import GenlabError
from genlab.metrics.features import resize_tf1_bilinear_float32
from genlab.metrics.inception import _sha256

WEIGHTS_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
WEIGHTS_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"
HUB_NAME = "vgg16-397923af.pth"
SIZE = 224
MEAN = (255 * 0.485, 255 * 0.456, 255 * 0.406)  # ImageNet statistics on the 0-255 scale
STD = (255 * 0.229, 255 * 0.224, 255 * 0.225)
log = logging.getLogger(__name__)


def prepare(images: Tensor) -> Tensor:
    """uint8 (B, C, H, W) -> float32 (B, 3, 224, 224), normalised with ImageNet's mean and std."""
    if images.dtype != torch.uint8:
        raise TypeError(f"vgg16.prepare() wants uint8 images, got {images.dtype}: quantise with genlab.images.to_uint8")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    x = resize_tf1_bilinear_float32(images.float(), SIZE)  # exact at 224 x 224 already
    mean, std = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1), torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def find_weights(path: str | None = None, download: bool = True) -> Path:
    """The weights file: `path`, else the torch hub cache, else a download checked against
    WEIGHTS_SHA256; one line naming the URL, the folder and the key when none can be had."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise GenlabError(f"vgg16.weights={path} is not a file")
        return p
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if (hub / HUB_NAME).is_file():
        return hub / HUB_NAME
    reason = "downloads are off (vgg16.download=false)"
    if download:
        try:
            hub.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(WEIGHTS_URL, str(hub / HUB_NAME), hash_prefix=WEIGHTS_SHA256, progress=True)
            return hub / HUB_NAME
        except Exception as e:  # offline, or a corrupt download
            reason = f"downloading {WEIGHTS_URL} failed ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    raise GenlabError(
        f"no VGG16 weights for precision/recall: {reason}; put {WEIGHTS_URL} (sha256 {WEIGHTS_SHA256}) in {hub}, "
        "set vgg16.weights=<path> (trainer.vgg16.weights when training), or use pr_features=inception"
    )


class VGG16Features(nn.Module):
    """torchvision's VGG16 up to fc2, then its ReLU: (B, 3, 224, 224) -> (B, 4096)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        net.classifier = net.classifier[:4]  # fc1, ReLU, dropout, fc2
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.net(x))


def load_vgg16(path: Path) -> tuple[VGG16Features, str]:
    """(network in eval mode, sha256 of the weights file) from a torchvision VGG16 state dict."""
    sha256 = _sha256(path)
    hub_copy = path.name == HUB_NAME and path.parent == Path(torch.hub.get_dir()) / "checkpoints"
    if hub_copy and sha256 != WEIGHTS_SHA256:
        raise GenlabError(f"{path} has sha256 {sha256}, not {WEIGHTS_SHA256}: a corrupt copy; delete it to download it again")
    if sha256 != WEIGHTS_SHA256:
        log.warning("VGG16 weights %s are not torchvision's IMAGENET1K_V1 file (sha256 %s...): precision and recall are not "
                    "comparable with published numbers", path, sha256[:12])
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GenlabError(f"cannot read VGG16 weights {path}: {str(e).splitlines()[0]}") from None
    with torch.device("meta"):  # no random initialisation of 138M parameters that the file replaces
        net = vgg16()
    try:
        net.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError) as e:
        raise GenlabError(f"{path} is not a torchvision VGG16 state dict ({str(e).splitlines()[0]})") from None
    return VGG16Features(net).eval().requires_grad_(False), sha256


class VGG16Extractor:
    """The features precision/recall uses by default, with what its protocol records."""

    name, layer, dim = "vgg16", "fc2_relu", 4096
    resize = "tf1_bilinear_224"  # TF1 bilinear to 224 x 224, float32 coordinates (torch-fidelity's)

    def __init__(self, weights: str | None, device: torch.device, download: bool = True):
        path = find_weights(weights, download)
        net, self.weights_sha256 = load_vgg16(path)
        self.weights, self.device = str(path), device
        self.net = net.to(device)

    prepare = staticmethod(prepare)  # a module-level function: folder loader workers run it

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> features float32 (B, 4096) on the CPU."""
        return self.forward(prepare(images))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """The same, from prepare()'s inputs."""
        return self.net(x.to(self.device, non_blocking=True)).float().cpu()

    @property
    def protocol(self) -> dict:
        return {"features": self.name, "layer": self.layer, "dim": self.dim, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "resize": self.resize, "normalisation": "ImageNet mean/std"}
