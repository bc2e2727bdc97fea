"""genlab.load: a trained model in Python, with one method per capability. Images go in and
come out as (B, C, H, W) tensors in [-1, 1]; the model is rebuilt by checkpoint.load_trained
(weights_only, the allow list, each family's test-time mode), as every verb rebuilds it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor

from genlab import checkpoint
from genlab.errors import GenlabError
from genlab.device import select_device
from genlab.models.base import Conditional, DecodesLatents, Reconstructs, SamplesPrior, Translates, check_direction

# each method and the capability (genlab/models/base.py) it needs
METHODS = {
    "sample": SamplesPrior, "latents": DecodesLatents, "decode": DecodesLatents, "interpolate": DecodesLatents,
    "encode": Reconstructs, "reconstruct": Reconstructs, "translate": Translates,
}


def load(path: str | os.PathLike, device: str = "auto", ema: bool = True) -> Trained:
    """The model of a run directory, a checkpoint or a `genlab export format=safetensors`
    folder, in eval mode on `device` (auto: CUDA, else MPS, else CPU), with the EMA weights
    where the run kept them and ema is set."""
    dev = select_device(device)
    model, cfg, state, path, weights = checkpoint.load_trained(path, dev, ema)
    if not ema and path.name == "config.json" and state.get("weights") == "ema":  # an export holds one set of weights
        raise GenlabError(f"{path.parent} holds the EMA weights only; export the live ones with genlab export format=safetensors use_ema=false")
    return Trained(model, cfg, int(state.get("step", 0)), weights, path, dev)


class Trained:
    """A trained genlab model for inference. `.model` is the nn.Module, `.config` its training
    config, `.step` the step of its weights, `.weights` "ema" or "live", `.capabilities` the
    methods it has; a method it lacks raises GenlabError naming them."""

    def __init__(self, model, config: DictConfig, step: int, weights: str, path, device: torch.device):
        self.model, self.config, self.step, self.weights, self.path, self.device = model, config, step, weights, path, device

    @property
    def capabilities(self) -> list[str]:
        return [name for name, needs in METHODS.items() if isinstance(self.model, needs) and self._applies(name)]

    def __repr__(self) -> str:
        return (f"<genlab {type(self.model).__name__} from {self.path}, step {self.step}, {self.weights} weights, "
                f"on {self.device}: {', '.join(self.capabilities)}>")

    @torch.no_grad()
    def sample(self, n: int, labels: Sequence[int] | None = None, seed: int | None = None) -> Tensor:
        """n new samples (n, C, H, W); a conditional model's labels are repeated (default:
        every class in turn); seed draws the same samples every time, leaving the global
        random state as it was."""
        self._need("sample")
        with self._seeded(seed):
            return self.model.sample(int(n), **({"labels": list(labels)} if labels is not None else {}))

    @torch.no_grad()
    def latents(self, n: int, seed: int | None = None) -> Tensor:
        """n latent codes drawn from the model's prior (GAN noise, the VAE's N(0, I), GLO's
        fitted Gaussian), to give to decode and interpolate."""
        self._need("latents")
        with self._seeded(seed):
            return self.model.latents(int(n))

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Sequence[int] | Tensor | None = None) -> Tensor:
        """Images of latent codes (B, D); labels: a list repeated over the batch or a (B,) tensor."""
        self._need("decode")
        if torch.is_tensor(labels):
            labels = labels.to(self.device)
        return self.model.decode(z.to(self.device), **({"labels": labels} if labels is not None else {}))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The codes (B, D) of images (B, C, H, W)."""
        self._need("encode")
        return self.model.encode(self._images(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        self._need("reconstruct")
        return self.model.reconstruct(self._images(x))

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        """Images translated in `direction` ("AtoB", or CycleGAN's "BtoA") at their own size:
        sides that are not multiples of the generator's are padded by reflection and cropped back."""
        from genlab.export import size_multiple
        from genlab.sample import translate_padded

        self._need("translate")
        check_direction(self.model, direction)
        return translate_padded(self.model, self._images(x), direction, size_multiple(self.model))

    @torch.no_grad()
    def interpolate(self, a: Tensor, b: Tensor, steps: int = 10, kind: str = "lerp",
                    labels: Sequence[int] | None = None) -> Tensor:
        """Decoded points on the path from a to b: latents (B, D), or images (B, C, H, W) of a
        model that encodes; kind "lerp" (linear) or "slerp" (spherical). Gives (B, steps, C, H, W)."""
        from genlab.sample import lerp, slerp

        self._need("interpolate")
        if kind not in ("lerp", "slerp"):
            raise GenlabError(f"kind={kind!r}: choose lerp or slerp")
        a, b = (self.encode(v) if v.dim() == 4 else v.to(self.device) for v in (a, b))
        a, b = (v[None] if v.dim() == 1 else v for v in (a, b))
        path = (lerp if kind == "lerp" else slerp)(a.flatten(1), b.flatten(1), torch.linspace(0, 1, int(steps), device=self.device))
        frames = self.decode(path.flatten(0, 1), labels)
        return frames.unflatten(0, (len(a), int(steps)))

    @staticmethod
    def to_pil(x: Tensor):
        """PIL images of a (B, C, H, W) batch (a list) or of one (C, H, W) image: grey for one
        channel, RGB for three; quantised as genlab writes image files."""
        from PIL import Image

        from genlab.images import to_uint8

        if x.dim() not in (3, 4):
            raise GenlabError(f"to_pil takes (C, H, W) or (B, C, H, W) images; got shape {tuple(x.shape)}")
        arrays = to_uint8(x.reshape(-1, *x.shape[-3:])).permute(0, 2, 3, 1).cpu().numpy()
        images = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
        return images[0] if x.dim() == 3 else images

    # -- helpers --------------------------------------------------------------------------
    def _applies(self, name: str) -> bool:
        """latents() draws from a prior, which a plain autoencoder's latent space lacks."""
        return name != "latents" or self.model.has_latent_prior

    def _need(self, name: str) -> None:
        if name not in self.capabilities:
            raise GenlabError(f"{type(self.model).__name__} has no {name}(); it has {', '.join(self.capabilities)}")

    def _images(self, x: Tensor) -> Tensor:
        if not torch.is_tensor(x) or x.dim() != 4:
            raise GenlabError(f"images are (B, C, H, W) tensors in [-1, 1]; got {tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        return x.to(self.device, torch.float32)

    @contextlib.contextmanager
    def _seeded(self, seed: int | None):
        if seed is None:
            yield
            return
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(int(seed))
            yield

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes) if isinstance(self.model, Conditional) else 0
