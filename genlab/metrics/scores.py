"""Statistics of Inception features and the metrics built on them: FID, IS, KID and
precision/recall. Feature statistics are streamed in float64 (O(d^2) memory, any N)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor


class GaussianStats:
    """Streaming mean and covariance in float64, merged batch by batch (Chan et al. 1979):
    the same result for any batch size, up to float rounding."""

    def __init__(self, dim: int = 2048):
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros((dim, dim))

    def update(self, features) -> None:
        x = np.asarray(features, dtype=np.float64)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(0)
        c = x - mb
        delta = mb - self.mean
        total = self.n + nb
        self.m2 += c.T @ c + np.outer(delta, delta) * (self.n * nb / total)
        self.mean += delta * (nb / total)
        self.n = total

    @property
    def sigma(self) -> np.ndarray:
        return self.m2 / max(self.n - 1, 1)

    @property
    def mu(self) -> np.ndarray:
        return self.mean


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), exactly and stably.

    With any square root R of S1 (R R^T = S1), S1 S2 has the eigenvalues of the symmetric PSD
    matrix R^T S2 R, so tr((S1 S2)^(1/2)) is the sum of the square roots of its eigenvalues:
    one Cholesky factorisation (an eigendecomposition when S1 is singular, e.g. from fewer
    samples than dimensions), two products and one symmetric eigenvalue solve; no sqrtm,
    no complex parts."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    try:
        root = scipy.linalg.cholesky(s1, lower=True)
    except np.linalg.LinAlgError:
        w, v = scipy.linalg.eigh(s1)
        root = v * np.sqrt(np.clip(w, 0, None))
    m = root.T @ s2 @ root
    ev = scipy.linalg.eigvalsh((m + m.T) / 2, driver="evr")
    tr_covmean = np.sqrt(np.clip(ev, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula through scipy.linalg.sqrtm, for comparison (slow, and unstable
    for near-singular products)."""
    covmean = scipy.linalg.sqrtm(np.asarray(sigma1) @ np.asarray(sigma2))
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def inception_score(logits: Tensor, splits: int = 10, shuffle_seed: int | None = 2020) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of `splits` parts (after a fixed permutation with
    seed 2020, as torch-fidelity), softmax over the unbiased logits in float64; the mean and
    population std over splits."""
    logits = torch.as_tensor(logits).double()
    n = logits.shape[0]
    if shuffle_seed is not None:
        logits = logits[np.random.RandomState(shuffle_seed).permutation(n)]
    log_p = logits.log_softmax(1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        part_p, part_log_p = p[i * n // splits : (i + 1) * n // splits], log_p[i * n // splits : (i + 1) * n // splits]
        log_py = part_p.mean(0, keepdim=True).log()
        kl = torch.where(part_p > 0, part_p * (part_log_p - log_py), 0.0)  # 0 log 0 = 0
        scores.append(kl.sum(1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 2020) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over random subsets; mean and std over subsets."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd.item())
    return float(np.mean(values)), float(np.std(values))


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, batch: int = 4096) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the share of
    fake samples inside the k-NN ball of some real sample; recall the converse."""
    real, fake = torch.as_tensor(real).float(), torch.as_tensor(fake).float()

    def radii(x: Tensor) -> Tensor:
        out = []
        for i in range(0, len(x), batch):
            d = torch.cdist(x[i : i + batch], x)
            out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself at distance 0
        return torch.cat(out)

    def inside(queries: Tensor, support: Tensor, r: Tensor) -> float:
        hits = 0
        for i in range(0, len(queries), batch):
            hits += (torch.cdist(queries[i : i + batch], support) <= r[None]).any(1).sum().item()
        return hits / len(queries)

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))
