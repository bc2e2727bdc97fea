"""Adversarial objectives as tiny classes: `d(real_logits, fake_logits)` is the discriminator's
(critic's) loss, `g(fake_logits)` the generator's. Logits are raw discriminator outputs,
shape (B,) or (B, 1); losses are batch means. D(x) = sigmoid(logit) where a probability is meant."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


class Minimax:
    """The original game (Goodfellow et al. 2014): D maximises log D(x) + log(1 - D(G(z)));
    G minimises log(1 - D(G(z))), which saturates when D rejects the fakes."""

    uses_features = False

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log D(x) - log(1 - D(G(z)))

    def g(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()  # log(1 - D(G(z)))


class NonSaturating(Minimax):
    """Same D; G maximises log D(G(z)) instead (strong gradients early in training)."""

    def g(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()  # -log D(G(z))


class FeatureMatching(NonSaturating):
    """Salimans et al. 2016: G matches the mean of an intermediate discriminator feature
    between real and generated batches, ||E f(x) - E f(G(z))||^2; D trains as usual."""

    uses_features = True

    def g_features(self, real_features: Tensor, fake_features: Tensor) -> Tensor:
        return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).sum()


class Wasserstein:
    """WGAN (Arjovsky et al. 2017): the critic maximises E C(x) - E C(G(z)); G maximises E C(G(z)).
    Needs a Lipschitz critic: weight clipping (model.clip) or a gradient penalty (model.gp_weight)."""

    uses_features = False

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g(self, fake: Tensor) -> Tensor:
        return -fake.mean()


class Hinge:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises E relu(1 - D(x)) + E relu(1 + D(G(z)));
    G minimises -E D(G(z))."""

    uses_features = False

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g(self, fake: Tensor) -> Tensor:
        return -fake.mean()


class LeastSquares:
    """LSGAN (Mao et al. 2017) with targets a = 0 (fake), b = 1 (real), c = 1:
    D minimises 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2; G minimises 1/2 E (D(G(z)) - 1)^2."""

    uses_features = False

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (real - 1).pow(2).mean() + 0.5 * fake.pow(2).mean()

    def g(self, fake: Tensor) -> Tensor:
        return 0.5 * (fake - 1).pow(2).mean()
