"""`genlab export ckpt=... format=onnx|torchscript`: a trained model's inference networks as
files other runtimes load, with a dynamic batch (and dynamic height and width where the net
takes any), plus contract.json: what each file takes and gives (shapes, value range,
channels, latent size and prior, the size multiple of height and width) and how far its
outputs were from genlab's own on a check input of another size. format=safetensors: each
network's weights (a format that runs no code when opened) with config.json, contract.json
and a model card, a folder genlab.load and every verb read back."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from genlab import checkpoint
from genlab.errors import GenlabError
from genlab.version import __version__
from genlab.atomic import atomic_write
from genlab.exported import require_safetensors
from genlab.models.base import Conditional, DecodesLatents, Reconstructs, Translates

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
TOLERANCE = 1e-3  # an exported file further than this from genlab's output is refused


def size_multiple(model: nn.Module) -> int:
    """What heights and widths a model's networks take: multiples of the least common multiple
    of their size_multiple (a ResNet generator 4, a U-Net 2**num_downs; 1 where none says)."""
    return math.lcm(1, *(int(m.size_multiple) for m in model.modules() if hasattr(m, "size_multiple")))


class Translate(nn.Module):
    def __init__(self, model: nn.Module, direction: str):
        super().__init__()
        self.model, self.direction = model, direction

    def forward(self, x: Tensor) -> Tensor:
        return self.model.translate(x, self.direction)


class Encode(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.encode(x)


class Decode(nn.Module):
    """decode(z) of a model's latents, with a (B,) label tensor for a conditional model (a
    list of labels would be repeated to len(z), fixing the batch size of the export)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.model.decode(z) if labels is None else self.model.decode(z, labels)


@dataclass
class Part:
    """One exported file: its module, example inputs by name, the dynamic axes of each input
    ({axis: name}) and what contract.json says about it."""

    name: str
    module: nn.Module
    inputs: dict[str, Tensor]
    dynamic: dict[str, dict[int, str]]
    contract: dict = field(default_factory=dict)


def parts(model: nn.Module, data: DictConfig, direction: str | None) -> list[Part]:
    """The files a model exports: one translation generator per direction; the decoder of a
    prior's latents; an autoencoder's encoder and decoder."""
    directions = model.directions if isinstance(model, Translates) else ()
    reconstructs = isinstance(model, Reconstructs)
    decodes_prior = isinstance(model, DecodesLatents) and model.has_latent_prior
    classes = model.num_classes if isinstance(model, Conditional) else 0
    image = {"range": [-1, 1], "dtype": "float32"}
    found: list[Part] = []
    if direction is not None and direction not in directions:
        raise GenlabError(f"direction={direction!r}: {type(model).__name__} translates "
                          f"{', '.join(directions) or 'nothing (export it without direction=)'}")
    for d in directions if direction is None else (direction,):
        src, dst = d[0], d[-1]
        m = size_multiple(model)
        crop = data.get("crop_size") or data.image_size
        h, w = (int(crop), int(crop)) if isinstance(crop, (int, str)) else (int(crop[0]), int(crop[1]))
        # example sides: the training crop rounded up to the multiple, at least two multiples
        # (an axis traced at one multiple would be fixed by the exporter's 0/1 specialisation)
        h, w = (max(2 * m, -(-s // m) * m) for s in (h, w))
        x = torch.rand(2, int(data[f"channels_{src}"]), h, w) * 2 - 1
        found.append(Part(f"translate_{d}", Translate(model, d), {"x": x}, {"x": {0: "batch", 2: "height", 3: "width"}}, {
            "inputs": {"x": {"shape": ["batch", x.shape[1], "height", "width"], "domain": src, **image}},
            "outputs": {"y": {"shape": ["batch", int(data[f"channels_{dst}"]), "height", "width"], "domain": dst, **image}},
            "size_multiple": m,
        }))
    if direction is not None:
        return found
    shape = [int(s) for s in data.shape]
    out = {"shape": ["batch", *shape], **image} if len(shape) == 3 else {"shape": ["batch", *shape], "dtype": "float32", "range": None}
    if reconstructs:
        x = torch.rand(2, *shape) * 2 - 1
        with torch.no_grad():
            code = model.encode(x)
        found.append(Part("encode", Encode(model), {"x": x}, {"x": {0: "batch"}}, {
            "inputs": {"x": {"shape": ["batch", *shape], **image}},
            "outputs": {"code": {"shape": ["batch", *code.shape[1:]], "dtype": "float32"}},
        }))
    if decodes_prior or reconstructs:
        if decodes_prior:
            with torch.no_grad():
                z = model.latents(2).float()
            latent = {"shape": ["batch", *z.shape[1:]], "dtype": "float32", **model.latent_prior()}
        else:
            z, latent = code, {"shape": ["batch", *code.shape[1:]], "dtype": "float32", "from": "encode"}
        inputs, dynamic, contract = {"z": z}, {"z": {0: "batch"}}, {"z": latent}
        if classes:
            inputs["labels"] = torch.arange(2) % classes
            dynamic["labels"] = {0: "batch"}
            contract["labels"] = {"shape": ["batch"], "dtype": "int64", "range": [0, classes - 1]}
        found.append(Part("decode", Decode(model), inputs, dynamic, {"inputs": contract, "outputs": {"x": out}}))
    if not found:
        raise GenlabError(f"{type(model).__name__} has no network to export (it neither translates, decodes latents nor reconstructs)")
    return found


def run(cfg: DictConfig) -> dict:
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise GenlabError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    model, train_cfg, state, path, weights = checkpoint.load_trained(cfg.ckpt, torch.device("cpu"), cfg.use_ema)
    direction = str(cfg.direction) if cfg.get("direction") else None
    out = Path(cfg.get("out") or path.parent.parent / "export" / path.stem / fmt).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(int(cfg.seed))
    contract = {"genlab": __version__, "checkpoint": str(path), "step": int(state.get("step", 0)), "weights": weights,
                "model": type(model).__name__, "format": fmt, "test_mode": model.test_mode, "files": {}}
    if fmt == "safetensors":
        if direction is not None:
            raise GenlabError("format=safetensors writes the whole model's weights; drop direction=")
        return _safetensors(model, train_cfg, state, path, contract, out)
    # a graph file is traced in eval mode (a deterministic graph that `check` can compare); the
    # contract says so where the model's own test mode is train mode (pix2pix's dropout)
    contract["graph_mode"] = "eval"
    if model.test_mode != "eval":
        print(f"note: the files run in eval mode (running batch-norm statistics, no dropout); genlab samples {type(model).__name__} "
              f"in train mode (model.test_mode={model.test_mode}), as its reference does")
    for part in parts(model, train_cfg.data, direction):
        part.module.eval()
        file = out / f"{part.name}{FORMATS[fmt]}"
        start = time.perf_counter()
        (_onnx if fmt == "onnx" else _torchscript)(part, file)
        diff = check(part, file, fmt)
        contract["files"][part.name] = {"file": file.name, **part.contract, "check": diff, "export_s": round(time.perf_counter() - start, 2)}
        print(f"wrote {file} (max |difference| to genlab's output {diff['max_abs_diff']:.2e} at input shapes {diff['shapes']})")
    contract_file = out / "contract.json"
    if direction is not None and contract_file.is_file():  # keep the other direction's entry of the same weights
        previous = json.loads(contract_file.read_text())
        if all(previous.get(k) == contract[k] for k in ("checkpoint", "step", "weights", "format")):
            contract["files"] = {**previous.get("files", {}), **contract["files"]}
    atomic_write(contract_file, lambda f: f.write(json.dumps(contract, indent=2).encode()))
    print(f"wrote {contract_file}")
    return {"files": [str(out / c["file"]) for c in contract["files"].values()], "contract": str(contract_file), **contract}


def _require_onnx() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise GenlabError(f"format=onnx needs the {module} package: pip install 'genlab[onnx]'") from None


def _onnx(part: Part, file: Path) -> None:
    """torch.export-based ONNX exporter (the TorchScript-based one is deprecated); height and
    width are multiples of the size multiple, so they are exported as m * k."""
    dims: dict[str, torch.export.Dim] = {}
    multiple = part.contract.get("size_multiple", 1)

    def dim(name: str):
        if name not in dims:
            dims[name] = torch.export.Dim(name, min=1)
        return dims[name] if name == "batch" else multiple * dims[name]

    shapes = {k: {axis: dim(name) for axis, name in axes.items()} for k, axes in part.dynamic.items()}
    output = list(part.contract["outputs"])
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx", "onnxscript", "onnx_ir"):
            warnings.simplefilter("ignore")  # the exporter's progress lines and warnings: the check below speaks for the file
            torch.onnx.export(part.module, tuple(part.inputs.values()), str(file), input_names=list(part.inputs), output_names=output,
                              dynamic_shapes=shapes, dynamo=True, external_data=False)
    except Exception as e:  # the exporter's errors are pages long: their last line says what failed
        detail = [line for line in str(e).strip().splitlines() if line.strip()]
        raise GenlabError(f"cannot export {part.name} to ONNX ({detail[-1] if detail else type(e).__name__})") from None


@contextlib.contextmanager
def _quiet(*loggers: str):
    """Raise these loggers to WARNING for the duration (the ONNX optimiser logs every pass)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _torchscript(part: Part, file: Path) -> None:
    """A frozen trace: the weights the traced graph uses become constants, so a CycleGAN's
    other generator and discriminators are not in the file."""
    with warnings.catch_warnings():
        # TracerWarnings flag shape-dependent Python branches (norm layers' argument checks);
        # the check at another input size proves the trace generalises. torch.jit.save's
        # FutureWarning: TorchScript is deprecated upstream, this is the format asked for.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(part.module, tuple(part.inputs.values()), check_trace=False)
        torch.jit.save(torch.jit.freeze(traced, optimize_numerics=False), str(file))  # no conv-norm folding: genlab's own arithmetic


def check(part: Part, file: Path, fmt: str, inputs: dict[str, Tensor] | None = None) -> dict:
    """Max |exported - genlab| on inputs of another batch size (and height and width where
    dynamic), run by onnxruntime or torch.jit.load; refused beyond TOLERANCE."""
    inputs = inputs or check_inputs(part)
    with torch.no_grad():
        expected = part.module(*inputs.values())
    got = run_file(file, fmt, inputs)
    diff = float((got - expected).abs().max())
    if not diff <= TOLERANCE:
        file.unlink()
        raise GenlabError(f"the exported {file.name} differs from genlab's output by {diff:.3g} (> {TOLERANCE}); it was not kept")
    return {"max_abs_diff": diff, "shapes": {k: list(v.shape) for k, v in inputs.items()}}


def check_inputs(part: Part) -> dict[str, Tensor]:
    """Fresh inputs of batch 3, with dynamic sides one size multiple larger than traced."""
    multiple = part.contract.get("size_multiple", 1)
    out = {}
    for name, x in part.inputs.items():
        shape = list(x.shape)
        shape[0] = 3
        for axis, kind in part.dynamic[name].items():
            if kind in ("height", "width"):
                shape[axis] += multiple
        if x.dtype == torch.int64:
            out[name] = torch.arange(shape[0]) % (int(x.max()) + 1)
        elif name == "x":
            out[name] = torch.rand(shape) * 2 - 1
        else:
            out[name] = torch.randn(shape)
    return out


def run_file(file: Path, fmt: str, inputs: dict[str, Tensor]) -> Tensor:
    """The first output of an exported file on named inputs: onnxruntime or torch.jit.load."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        module = torch.jit.load(str(file))
    with torch.no_grad():
        return module(*inputs.values())


def networks(model: nn.Module) -> dict[str, dict[str, Tensor]]:
    """The model's state by network (its top-level submodules; "model" for its own tensors),
    each tensor a copy of its own (safetensors stores no shared or strided memory)."""
    groups: dict[str, dict[str, Tensor]] = {}
    for key, value in model.state_dict().items():
        name, _, rest = key.partition(".")
        name, rest = (name, rest) if rest else ("model", key)
        # a module's extra state (CycleGAN's image pools: {"images": tensor}) as key::field
        fields = {f"{rest}::{k}": v for k, v in value.items()} if isinstance(value, dict) else {rest: value}
        for k, v in fields.items():
            if not torch.is_tensor(v):
                raise GenlabError(f"{type(model).__name__} state {key} holds a {type(v).__name__}, which safetensors cannot store")
            groups.setdefault(name, {})[k] = v.detach().cpu().contiguous().clone()
    return groups


def _safetensors(model: nn.Module, train_cfg: DictConfig, state: dict, path: Path, contract: dict, out: Path) -> dict:
    st = require_safetensors()
    written = []
    for name, tensors in networks(model).items():
        file = out / f"{name}.safetensors"
        atomic_write(file, lambda f, t=tensors, n=name: f.write(st.save(t, metadata={"genlab": __version__, "network": n})))
        contract["files"][name] = {"file": file.name, "tensors": len(tensors), "parameters": sum(v.numel() for v in tensors.values())}
        written.append(file)
        print(f"wrote {file}")
    contract["interface"] = {p.name: p.contract for p in parts(model, train_cfg.data, None)}  # what the rebuilt model takes and gives
    config = {"genlab_format": checkpoint.FORMAT, "config": state["config"], "choices": state.get("choices", {}),
              "step": contract["step"], "weights": contract["weights"]}
    for name, record in (("config.json", config), ("contract.json", contract)):
        atomic_write(out / name, lambda f, r=record: f.write(json.dumps(r, indent=2).encode()))
        print(f"wrote {out / name}")
    card = out / "README.md"
    atomic_write(card, lambda f: f.write(model_card(model, state, path, contract).encode()))
    print(f"wrote {card}")
    return {"files": [str(f) for f in written], "contract": str(out / "contract.json"), **contract}


def model_card(model: nn.Module, state: dict, path: Path, contract: dict) -> str:
    """README.md for a model hub: family, data, steps, the latest evaluation and its protocol."""
    choices = state.get("choices", {})
    family, data = choices.get("model") or type(model).__name__, choices.get("data") or "?"
    lines = ["---", "library_name: genlab", f"tags: [genlab, {family}, {type(model).__name__.lower()}]", "---", "",
             f"# {type(model).__name__} ({family}) on {data}", "",
             f"Trained with genlab {__version__} for {contract['step']} steps; {contract['weights']} weights of `{path.name}`.", ""]
    evaluation = path.with_name(path.stem + ".eval.json")
    if evaluation.is_file():
        record = json.loads(evaluation.read_text())
        lines += ["## Metrics", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.6g} |" for k, v in record.get("metrics", {}).items()]
        keep = ("split", "step", "weights", "generated", "reference", "mode", "weights_sha256", "seed", "genlab_version")
        lines += ["", "Protocol: " + ", ".join(f"{k}={record['protocol'][k]}" for k in keep if k in record.get("protocol", {})), ""]
        if isinstance(pr := record.get("protocol", {}).get("pr"), dict):  # precision/recall's own features
            lines += [f"Precision/recall: {pr.get('features')} {pr.get('layer')} features, weights_sha256={pr.get('weights_sha256')}, "
                      f"resize={pr.get('resize')}, k={pr.get('k')}", ""]
    else:
        lines += ["## Metrics", "", f"No evaluation yet: `genlab eval ckpt={path}` writes {evaluation.name}, then export again.", ""]
    lines += ["## Use", "", "```python", "import genlab", "", 'model = genlab.load("path/to/this/folder")',
              f"print(model.capabilities)   # {', '.join(contract['interface'])}", "```", "",
              "Files: " + ", ".join(f"`{e['file']}`" for e in contract["files"].values())
              + ", `config.json` (the training config genlab rebuilds the model from), `contract.json` (shapes and ranges).", ""]
    return "\n".join(lines)
