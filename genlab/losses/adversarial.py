"""The adversarial part of every adversarial family (GAN, conditional GAN, pix2pix, CycleGAN),
as one component built from the `loss` config: an objective (a tiny class below), the
critic schedule (n_critic repeats, a lazy R1 interval), the penalties (WGAN-GP, R1), weight
clipping after each critic step, and DiffAugment of everything the discriminator sees.

A model only says how its discriminator is called (`critic(net, *cond, pair=...)`) and which
batches are real and fake; `d_loss`, `d_reg_loss` and `g_loss` do the rest, the same for
every family, so every `loss=` works with every adversarial model.

Logits are raw discriminator outputs, (B,) or one per patch (B, 1, H, W); losses are batch
means; D(x) = sigmoid(logit) where a probability is meant."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.losses.diffaugment import DiffAugment
from genlab.losses.penalties import gradient_penalty, r1_penalty
from genlab.models.phase import Phase


class Critic:
    """A discriminator as the losses see it: critic(x) -> logits of the image batch x, with the
    model's conditioning (class labels after x; pix2pix's input image concatenated on the
    channels before x) and DiffAugment applied to the whole input (the same draw on both
    halves of a pair); features(x) -> (logits, the last hidden layer's features)."""

    def __init__(self, net: nn.Module, cond: tuple = (), pair: Tensor | None = None, augment: DiffAugment | None = None):
        self.net, self.cond, self.pair, self.augment = net, cond, pair, augment

    def _input(self, x: Tensor) -> Tensor:
        parts = (x,) if self.pair is None else (self.pair, x)
        if self.augment is not None:
            parts = self.augment(*parts)
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def __call__(self, x: Tensor) -> Tensor:
        return self.net(self._input(x), *self.cond)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(self._input(x), *self.cond, features=True)


# -- objectives: d(real_logits, fake_logits) for the discriminator, g(real_logits, fake_logits)
# for the generator; real_logits reach g only where `relativistic` (else None) -------------
class Objective:
    """An adversarial objective. `generator_loss(D, real, fake)` is what the component calls:
    it sees the critic and both batches, so relativistic losses get D(real) and feature
    matching gets D's features; most objectives only define the two formulas."""

    relativistic = False  # g needs D(real)

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g(self, real: Tensor | None, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, D: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real_logits = None
        if self.relativistic:
            with torch.no_grad():  # D is frozen in the generator's phase and real does not depend on G
                real_logits = D(real)
        return self.g(real_logits, D(fake))


class Minimax(Objective):
    """The original game (Goodfellow et al. 2014): D maximises log D(x) + log(1 - D(G(z)));
    G minimises log(1 - D(G(z))), which saturates when D rejects the fakes."""

    def d(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log D(x) - log(1 - D(G(z)))

    def g(self, real, fake):
        return -F.softplus(fake).mean()  # log(1 - D(G(z)))


class NonSaturating(Minimax):
    """Same D; G maximises log D(G(z)) instead (strong gradients early in training)."""

    def g(self, real, fake):
        return F.softplus(-fake).mean()  # -log D(G(z))


class FeatureMatching(NonSaturating):
    """Salimans et al. 2016: G matches the batch mean of the discriminator's last hidden
    features between real and generated batches, ||E f(x) - E f(G(z))||^2; D trains as usual."""

    @staticmethod
    def match(real_features: Tensor, fake_features: Tensor) -> Tensor:
        return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).sum()

    def generator_loss(self, D, real, fake):
        _, fake_features = D.features(fake)
        with torch.no_grad():
            _, real_features = D.features(real)
        return self.match(real_features, fake_features)


class Wasserstein(Objective):
    """WGAN (Arjovsky et al. 2017): the critic maximises E C(x) - E C(G(z)); G maximises E C(G(z)).
    Needs a Lipschitz critic: weight clipping (loss.clip) or a gradient penalty (loss.gp_weight)."""

    def d(self, real, fake):
        return fake.mean() - real.mean()

    def g(self, real, fake):
        return -fake.mean()


class Hinge(Objective):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises E relu(1 - D(x)) + E relu(1 + D(G(z)));
    G minimises -E D(G(z))."""

    def d(self, real, fake):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g(self, real, fake):
        return -fake.mean()


class LeastSquares(Objective):
    """LSGAN (Mao et al. 2017) with targets a = 0 (fake), b = 1 (real), c = 1, as the reference
    code computes it (pix2pix/CycleGAN's GANLoss('lsgan'): MSELoss to 1 and 0): D minimises
    E (D(x) - 1)^2 + E D(G(z))^2, G minimises E (D(G(z)) - 1)^2.

    half=True is the LSGAN paper's eq. (2), every term times 1/2. For a GAN trained by Adam
    alone the two are the same training (both players' losses scale by one constant, which
    Adam divides out); they differ where the adversarial term is weighed against another term:
    CycleGAN's cycle and identity L1, pix2pix's L1, a gradient penalty or R1. So the default
    is the reference code's scale, under which CycleGAN's lambda = 10 means what it means in
    the paper's code."""

    def __init__(self, half: bool = False):
        self.scale = 0.5 if half else 1.0

    def d(self, real, fake):
        return self.scale * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def g(self, real, fake):
        return self.scale * (fake - 1).pow(2).mean()


def _relative(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """C(x_r) - E C(x_f) and C(x_f) - E C(x_r), the expectations over the batch (per patch
    for a PatchGAN's map of logits)."""
    return real - fake.mean(0, keepdim=True), fake - real.mean(0, keepdim=True)


class RelativisticAverage(Objective):
    """RaSGAN (Jolicoeur-Martineau 2018): D estimates how much more real a real sample is than
    the average fake, D_ra(x_r, x_f) = sigmoid(C(x_r) - E C(x_f)); D minimises
    -E log D_ra(x_r, x_f) - E log(1 - D_ra(x_f, x_r)); G minimises the same with the roles swapped."""

    relativistic = True

    def d(self, real, fake):
        r, f = _relative(real, fake)
        return F.softplus(-r).mean() + F.softplus(f).mean()

    def g(self, real, fake):
        r, f = _relative(real, fake)
        return F.softplus(-f).mean() + F.softplus(r).mean()


class RelativisticHinge(Objective):
    """The relativistic average hinge loss (RaHinge, Jolicoeur-Martineau 2018): D minimises
    E relu(1 - (C(x_r) - E C(x_f))) + E relu(1 + (C(x_f) - E C(x_r))); G the same with the roles swapped."""

    relativistic = True

    def d(self, real, fake):
        r, f = _relative(real, fake)
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()

    def g(self, real, fake):
        r, f = _relative(real, fake)
        return F.relu(1 - f).mean() + F.relu(1 + r).mean()


# -- the component ----------------------------------------------------------------------------
class AdversarialLoss:
    """Built from a configs/loss/ entry. objective None means the model's own paper objective
    (`bind` fills it in, with the model's DiffAugment policy, model.diffaugment).

    n_critic: critic steps per generator step; critic_burst: WGAN's schedule (Arjovsky et al.'s
    main.py), `critic_burst` critic steps (100) instead of n_critic for the first
    `critic_burst_steps` generator steps (25) and every `critic_burst_every`-th (500), null off;
    gp_weight: WGAN-GP weight; r1_gamma: R1 weight gamma (the penalty is gamma / 2 *
    E ||grad D(x)||^2), applied every r1_every steps and scaled by it (lazy R1, Karras et al.
    2020), with StyleGAN2's correction of the discriminator's Adam for the interval
    (lr * c and betas ** c, c = r1_every / (r1_every + 1); `lazy_adam_correction=false` drops
    it); clip: WGAN weight clipping of every critic.

    d_scale multiplies the objective's discriminator loss (not the penalties): 1 for the GANs
    (pytorch/examples' DCGAN sums the real and fake terms), 0.5 for pix2pix and CycleGAN,
    whose reference halves (real + fake) "to slow down the rate at which D learns relative
    to G"; the model sets it in `bind`."""

    def __init__(self, objective: Objective | None = None, n_critic: int = 1, gp_weight: float = 0.0, r1_gamma: float = 0.0,
                 r1_every: int = 1, clip: float | None = None, critic_burst: int | None = None, critic_burst_steps: int = 25,
                 critic_burst_every: int = 500, lazy_adam_correction: bool = True):
        self.objective, self.n_critic, self.gp_weight = objective, int(n_critic), float(gp_weight or 0.0)
        self.r1_gamma, self.r1_every, self.clip = float(r1_gamma or 0.0), int(r1_every or 1), None if clip is None else float(clip)
        self.critic_burst = int(critic_burst) if critic_burst else None
        self.critic_burst_steps, self.critic_burst_every = int(critic_burst_steps), int(critic_burst_every)
        self.lazy_adam_correction = bool(lazy_adam_correction)
        self.augment: DiffAugment | None = None
        self.d_scale = 1.0

    @classmethod
    def of(cls, loss: AdversarialLoss | Mapping) -> AdversarialLoss:
        """The component itself, or one built from a plain mapping of its settings."""
        return loss if isinstance(loss, AdversarialLoss) else cls(**dict(loss))

    @property
    def is_default(self) -> bool:
        """The model's own objective with no critic repeats, penalties or clipping (loss=default)."""
        return self.objective is None and self.n_critic == 1 and not self.gp_weight and not self.r1_gamma and not self.clip and not self.critic_burst

    @property
    def lazy_r1(self) -> bool:
        return self.r1_gamma > 0 and self.r1_every > 1

    def bind(self, default: Objective, diffaugment: str | Sequence[str] | None = None, d_scale: float = 1.0) -> AdversarialLoss:
        """A copy with the model's default objective where none is configured, the model's
        DiffAugment policy and its reference's scale of the discriminator loss."""
        bound = copy.copy(self)
        bound.objective, bound.augment, bound.d_scale = self.objective or default, DiffAugment.parse(diffaugment), float(d_scale)
        return bound

    def critic_steps(self, step: int) -> int:
        """Critic steps at generator step `step` (0-based): n_critic, or WGAN's burst."""
        burst = self.critic_burst and (step < self.critic_burst_steps or step % self.critic_burst_every == 0)
        return self.critic_burst if burst else self.n_critic

    def phases(self, generator_first: bool = False) -> tuple[Phase, ...]:
        """The discriminator's phase (critic_steps(step) repeats, each on a fresh batch), its
        lazy R1 phase where r1_every > 1, and the generator's; in this order (the GANs; pix2pix:
        D steps on the fakes of the batch, then G against the updated D), or the generator's
        first (CycleGAN: its discriminators then score the generators' fakes, through the pools)."""
        d = [Phase("d", "d", repeats=self.n_critic if self.critic_burst is None else self.critic_steps)]
        if self.lazy_r1:
            d.append(Phase("d_reg", "d", every=self.r1_every))
        g = [Phase("g", "g")]
        return tuple(g + d if generator_first else d + g)

    def optimizer_settings(self, group: str, settings: dict) -> dict:
        """The optimizer settings of parameter group `group` as the loss needs them: lazy R1's
        correction of the discriminator's Adam (StyleGAN2, Karras et al. 2020, Appendix B:
        lr * c, betas ** c with c = k / (k + 1), so that the regularised steps keep the
        optimizer's effective rate); the settings unchanged otherwise."""
        if group != "d" or not (self.lazy_r1 and self.lazy_adam_correction):
            return settings
        c = self.r1_every / (self.r1_every + 1)
        out = dict(settings)
        if "lr" in out:
            out["lr"] = out["lr"] * c
        if "betas" in out:
            out["betas"] = tuple(b**c for b in out["betas"])
        return out

    def critic(self, net: nn.Module, *cond, pair: Tensor | None = None) -> Critic:
        return Critic(net, cond, pair, self.augment)

    def d_loss(self, D: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The discriminator's loss with its penalties, and what to log."""
        fake = fake.detach()
        r, f = D(real), D(fake)
        loss = self.d_scale * self.objective.d(r, f)
        logs = {"d_real": r.mean(), "d_fake": f.mean()}
        if self.gp_weight:
            logs["gp"] = gradient_penalty(D, real, fake)
            loss = loss + self.gp_weight * logs["gp"]
        if self.r1_gamma and not self.lazy_r1:
            logs["r1"] = r1_penalty(D, real)
            loss = loss + 0.5 * self.r1_gamma * logs["r1"]
        return loss, {**logs, "loss": loss}

    def d_reg_loss(self, D: Critic, real: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Lazy R1 (phase d_reg), scaled by its interval so its average weight is gamma / 2."""
        r1 = r1_penalty(D, real)
        loss = 0.5 * self.r1_gamma * self.r1_every * r1
        return loss, {"r1": r1, "loss": loss}

    def g_loss(self, D: Critic, real: Tensor, fake: Tensor) -> Tensor:
        """The generator's adversarial loss (D sees real and fake where the objective needs it)."""
        return self.objective.generator_loss(D, real, fake)

    @torch.no_grad()
    def after_step(self, phase: str, *discriminators: nn.Module) -> None:
        """After each optimizer step of `phase`: WGAN's Lipschitz constraint by weight clipping."""
        if phase == "d" and self.clip:
            for net in discriminators:
                for p in net.parameters():
                    p.clamp_(-self.clip, self.clip)

    def check_discriminators(self, **nets: nn.Module) -> None:
        """Refuse, naming the config key of the discriminator (`model.discriminator=net`), what
        would make the penalties wrong: a gradient penalty or R1 is a per-sample gradient, and
        batch norm mixes the samples of a batch."""
        if not (self.gp_weight or self.r1_gamma):
            return
        for key, net in nets.items():
            if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
                which = "gradient penalty (loss.gp_weight)" if self.gp_weight else "R1 penalty (loss.r1_gamma)"
                raise GenlabError(f"the {which} needs a discriminator without batch norm (its per-sample gradients would mix the batch); "
                                  f"set {key}.norm=layer (or instance, none)")
