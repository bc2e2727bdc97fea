"""Speed of genlab's FID pieces against the reference implementations, measured in one run on
the same images and weights:

  * Inception feature extraction, images/s: genlab (tf mode, channels-last and default memory
    format) vs pytorch-fid's InceptionV3 vs torch-fidelity's FeatureExtractorInceptionV3
  * the Frechet distance on 2048-d covariances: genlab's eigenvalue form vs scipy.linalg.sqrtm

    python scripts/bench_fid.py                          # 200 digits images, random weights
    python scripts/bench_fid.py --images 500 --weights ~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth

Random weights (with batch-norm statistics calibrated on the images) cost the same time as
the real ones; numbers print as ratios against genlab measured in the same run."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genlab.data.digits import Digits
from genlab.images import to_uint8
from genlab.metrics.features import InceptionExtractor
from genlab.metrics.fid import frechet_distance, frechet_distance_sqrtm
from genlab.metrics.inception import FIDInception, load_inception


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def random_weights(images: torch.Tensor, folder: Path) -> Path:
    from genlab.metrics.features import prepare

    torch.manual_seed(0)
    net = FIDInception()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    with torch.no_grad():
        net.train()(prepare(images[:16], "pytorch_fid"))
    path = folder / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.eval().state_dict(), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--weights", default=None, help="a pytorch-fid .pth (default: random weights)")
    ap.add_argument("--dim", type=int, default=2048)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    images = to_uint8(Digits("train").images[: args.images]).expand(-1, 3, -1, -1).contiguous()
    tmp = Path(tempfile.mkdtemp(prefix="genlab-bench-"))
    weights = Path(args.weights) if args.weights else random_weights(images, tmp)
    batches = [images[i : i + args.batch] for i in range(0, len(images), args.batch)]
    n = len(images)
    print(f"{n} images of {tuple(images.shape[1:])}, batch {args.batch}, {torch.get_num_threads()} threads, weights {weights.name}")

    rates = {}
    for label, cl in (("genlab (tf mode, channels-last)", True), ("genlab (tf mode, default format)", False)):
        net, _, _ = load_inception(weights)
        ex = InceptionExtractor(net, "tf", torch.device("cpu"), True, channels_last=cl)
        ex(batches[0][:2])  # warm-up
        rates[label] = n / timed(lambda: [ex(b) for b in batches])

    from pytorch_fid.inception import InceptionV3

    torch.hub.set_dir(str(tmp / "hub"))
    (tmp / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    (tmp / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").write_bytes(weights.read_bytes())
    ref = InceptionV3([3], resize_input=True, normalize_input=True).eval()
    ref(batches[0][:2].float() / 255)
    rates["pytorch-fid 0.3.0"] = n / timed(lambda: [ref(b.float() / 255) for b in batches])

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights))
    tf(batches[0][:2])
    rates["torch-fidelity 0.4.0"] = n / timed(lambda: [tf(b) for b in batches])

    base = rates["genlab (tf mode, channels-last)"]
    print("\nfeature extraction")
    for label, r in rates.items():
        print(f"  {label:36} {r:7.1f} images/s   genlab / this = {base / r:5.2f}x")

    rng = np.random.RandomState(0)
    d = args.dim
    a, b = rng.randn(d, 2 * d) / np.sqrt(2 * d), rng.randn(d, 2 * d) / np.sqrt(2 * d)
    s1, s2 = a @ a.T + 0.05 * np.eye(d), b @ b.T + 0.05 * np.eye(d)
    m1, m2 = rng.randn(d) * 0.1, rng.randn(d) * 0.1
    ours = timed(lambda: frechet_distance(m1, s1, m2, s2), repeats=3)
    sqrtm = timed(lambda: frechet_distance_sqrtm(m1, s1, m2, s2))
    rel = abs(frechet_distance(m1, s1, m2, s2) - frechet_distance_sqrtm(m1, s1, m2, s2)) / frechet_distance_sqrtm(m1, s1, m2, s2)
    print(f"\nFrechet distance, {d}-d covariances\n  genlab eigenvalues  {ours:7.3f} s\n  scipy sqrtm         {sqrtm:7.3f} s   speed-up {sqrtm / ours:5.1f}x, relative difference {rel:.1e}")


if __name__ == "__main__":
    main()
