"""The allow list of what a config read from disk (a checkpoint's) may build: genlab's own
models, networks, losses, data sets, schedules and the optimizers it ships, by exact name.
Opening a checkpoint must never run code from it, so nothing is trusted by prefix: a name
such as genlab.checkpoint.os.system or torch.load is refused like any other stranger.
A test checks that every _target_ in configs/ is listed here."""

from __future__ import annotations

from genlab.errors import GenlabError

ALLOWED_TARGETS = frozenset({
    # models
    "genlab.models.autoencoder.Autoencoder",
    "genlab.models.autoencoder.DenoisingAutoencoder",
    "genlab.models.vae.VAE",
    "genlab.models.gan.GAN",
    "genlab.models.gan.ConditionalGAN",
    "genlab.models.glo.GLO",
    "genlab.models.pix2pix.Pix2Pix",
    "genlab.models.cyclegan.CycleGAN",
    "genlab.models.classifier.Classifier",
    # networks
    "genlab.nets.mlp.MLP",
    "genlab.nets.mlp.MLPGenerator",
    "genlab.nets.mlp.MLPDiscriminator",
    "genlab.nets.conv.ConvEncoder",
    "genlab.nets.conv.ConvDecoder",
    "genlab.nets.dcgan.DCGANGenerator",
    "genlab.nets.dcgan.DCGANDiscriminator",
    "genlab.nets.translation.ResnetGenerator",
    "genlab.nets.translation.UnetGenerator",
    "genlab.nets.translation.PatchDiscriminator",
    "genlab.nets.classifier.SmallCNN",
    # the adversarial component and its objectives
    "genlab.losses.adversarial.AdversarialLoss",
    "genlab.losses.adversarial.Minimax",
    "genlab.losses.adversarial.NonSaturating",
    "genlab.losses.adversarial.FeatureMatching",
    "genlab.losses.adversarial.Wasserstein",
    "genlab.losses.adversarial.Hinge",
    "genlab.losses.adversarial.LeastSquares",
    "genlab.losses.adversarial.RelativisticAverage",
    "genlab.losses.adversarial.RelativisticHinge",
    # data sets
    "genlab.data.digits.Digits",
    "genlab.data.image_folder.ImageFolder",
    "genlab.data.torchvision_sets.TorchvisionDataset",
    "genlab.data.toy.GaussianMixture",
    "genlab.data.translation.AlignedFolders",
    "genlab.data.translation.UnalignedFolders",
    "genlab.data.translation.DigitEdges",
    "genlab.data.hf.HFImages",
    "genlab.data.hf.HFPairs",
    "genlab.data.hf.HFUnpaired",
    "genlab.data.stacked.StackedDataset",
    # learning-rate schedules
    "genlab.schedules.warmup_cosine",
    "genlab.schedules.constant_then_linear",
    "genlab.schedules.step_decay",
    # optimizers
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.SGD",
    "torch.optim.RMSprop",
})

# Hydra's instantiation keys and the values a stored config may give them
_SPECIAL_KEYS = {"_partial_": (True, False), "_recursive_": (True, False), "_convert_": ("none", "partial", "object", "all")}


def check_stored_config(node, source: str, where: str = "") -> None:
    """Refuse, in one line, anything in a config read from `source` that could make building
    it run code: a _target_ off the allow list, odd values of Hydra's special keys, and
    interpolations (a stored config is saved resolved; `${...}` there was put by hand)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and target not in ALLOWED_TARGETS:
            raise GenlabError(f"refusing {where + '.' if where else ''}_target_={target} from {source}: not a genlab component")
        for key, value in node.items():
            key = str(key)
            path = f"{where}.{key}" if where else key
            if key.startswith("_") and key.endswith("_") and key not in ("_target_", "_args_"):
                if key not in _SPECIAL_KEYS or value not in _SPECIAL_KEYS[key]:
                    raise GenlabError(f"refusing {path}={value!r} from {source}: not a setting a genlab config uses")
            check_stored_config(value, source, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_stored_config(value, source, f"{where}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise GenlabError(f"refusing {where}={node!r} from {source}: a stored config holds resolved values, not interpolations")
