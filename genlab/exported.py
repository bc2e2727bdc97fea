"""A `genlab export format=safetensors` folder read back: the safetensors package, and the
folder as checkpoint.load gives a checkpoint (genlab.export writes it). A leaf, so that
checkpoint.load reads exports without importing the exporter."""

from __future__ import annotations

import json
from pathlib import Path

from genlab.errors import GenlabError


def require_safetensors():
    """safetensors.torch, or one line saying how to install it."""
    try:
        import safetensors.torch
    except ImportError:
        raise GenlabError("format=safetensors needs the safetensors package: pip install 'genlab[safetensors]'") from None
    return safetensors.torch


def read_safetensors(folder: Path) -> dict:
    """A safetensors export as checkpoint.load gives a checkpoint: config, choices, step and
    the weights it holds (as "model", and as "ema" where they are the EMA weights)."""
    st = require_safetensors()
    try:
        config = json.loads((folder / "config.json").read_text())
        files = json.loads((folder / "contract.json").read_text())["files"]
        weights = {}
        for name, entry in files.items():
            for key, value in st.load_file(str(folder / entry["file"])).items():
                key, _, field = (key if name == "model" else f"{name}.{key}").partition("::")
                if field:  # a module's extra state, a dict of tensors
                    weights.setdefault(key, {})[field] = value
                else:
                    weights[key] = value
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GenlabError(f"cannot read the safetensors export {folder}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                          "pass a folder written by genlab export format=safetensors") from None
    if not isinstance(config, dict):
        raise GenlabError(f"{folder}/config.json is not a genlab export config; pass a folder written by genlab export format=safetensors")
    return {**config, "model": weights, "ema": weights if config.get("weights") == "ema" else None}
