"""A classifier of a labelled data set, trained by the trainer like any model (one phase,
cross-entropy): the domain networks of genlab's metrics (genlab/metrics/domain.py) are
these, trained on first use or by `genlab classifier data=<set>`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel


class Classifier(GenerativeModel):
    """net(x) -> logits over data.num_classes; validation reports accuracy (best.pt by it)."""

    monitor = ("val/accuracy", "max")

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise GenlabError(f"model=classifier needs a data set with classes (data.num_classes={num_classes})")
        self.net, self.num_classes = net, num_classes

    def training_step(self, batch: dict, phase: str, ctx: dict) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.net(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        return loss, {"loss": loss, "accuracy": (logits.argmax(1) == batch["label"]).float().mean()}

    @torch.no_grad()
    def evaluate_batch(self, batch: dict) -> dict[str, Tensor]:
        logits = self.net(batch["image"])
        return {"loss": F.cross_entropy(logits, batch["label"], reduction="none"), "accuracy": (logits.argmax(1) == batch["label"]).float()}

    @torch.no_grad()
    def visuals(self, batch: dict) -> dict[str, Tensor]:
        """The batch's images in the order of the class the network gives them."""
        order = self.net(batch["image"]).argmax(1).argsort(stable=True)
        return {"by_predicted_class": batch["image"][order]}
