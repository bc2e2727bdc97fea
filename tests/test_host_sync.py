"""No host-device synchronisation inside a training step: between logging steps genlab's own
code reads no floating-point (or boolean) tensor value (`.item()`, `bool()`, `float()`,
`int()`, `.tolist()`), so on a GPU the host queues step after step without waiting; the
finiteness check, the divergence bound and the logged means are read at the log step (and
before a held-back checkpoint is published). Integer tensors are left out: genlab's are host
indices (the sampler's permutation, an unpaired set's random partner), never on the device."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import genlab
from genlab import train
from genlab.trainer import Trainer

GENLAB_DIR = str(Path(genlab.__file__).parent)
READS = ("item", "tolist", "__bool__", "__float__", "__int__")
LOG_EVERY, STEPS = 5, 15
QUIET = ["trainer.progress_bar=false", "logger=jsonl", f"trainer.log_every={LOG_EVERY}", f"trainer.max_steps={STEPS}",
         "trainer.sample_every=0", "trainer.eval_every=0", "trainer.ckpt_every=0", "trainer.eval_batches=1"]
CASES = {
    "gan_ring8_wgan_gp": ["experiment=gan_ring8", "loss=wgan_gp", "data.batch_size=32", "trainer.eval_metrics=[]"],
    "dcgan": ["experiment=dcgan", "data.batch_size=8", "model.generator.base_channels=8", "model.discriminator.base_channels=8"],
    "cyclegan": ["experiment=cyclegan_digits2edges", "data.batch_size=2", "model.generator_AB.base_channels=4", "model.generator_AB.n_blocks=1",
                 "model.discriminator_A.base_channels=4"],
    "vae": ["model=vae", "data.batch_size=16"],
}


def _training_step(frame) -> int | None:
    """The trainer's step when `frame` runs inside Trainer._fit, else None (set-up, the end)."""
    while frame is not None:
        if frame.f_code is Trainer._fit.__code__:
            return frame.f_locals["self"].step
        frame = frame.f_back
    return None


def count_reads(monkeypatch) -> Counter:
    """Patch the tensor reads; count those of floating-point and boolean tensors called from
    genlab's own files, by training step."""
    counts: Counter = Counter()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def read(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1)
            if (self.is_floating_point() or self.dtype == torch.bool) and caller.f_code.co_filename.startswith(GENLAB_DIR):
                step = _training_step(caller)
                if step is not None:
                    counts[step] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)
    return counts


@pytest.mark.parametrize("case", CASES)
def test_no_tensor_reads_between_logging_steps(case, make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg("train", [*CASES[case], *QUIET], fast=False)
    counts = count_reads(monkeypatch)
    train.run(cfg, run_dir=tmp_path)
    between = {s: n for s, n in counts.items() if s % LOG_EVERY}
    assert between == {}, f"reads at steps between logging steps: {dict(sorted(between.items()))}"
    # at a logging step: one read of the losses' finiteness and one of the logged means
    assert {s: n for s, n in counts.items() if s < STEPS} == dict.fromkeys(range(LOG_EVERY, STEPS, LOG_EVERY), 2)


def test_a_nan_between_reads_stops_at_the_next_read_and_publishes_no_later_checkpoint(make_cfg, tmp_path):
    """The losses are read every 5 steps and before each held-back checkpoint (every 3 steps):
    a loss that turns non-finite in between is named with its own step, and the checkpoint
    left is the last one whose next step's loss was finite, with finite weights."""
    from genlab import RunError, checkpoint

    cfg = make_cfg("train", ["model=ae", "optim=sgd", "optim.momentum=0", "optim.lr=10", "trainer.max_steps=100", "trainer.log_every=5",
                             "trainer.ckpt_every=3", "trainer.keep_last=0", "trainer.eval_every=0", "trainer.sample_every=0",
                             "trainer.progress_bar=false", "logger=jsonl"], fast=False)
    with pytest.raises(RunError) as e:
        train.run(cfg, run_dir=tmp_path)
    failed = int(re.search(r"is (?:nan|inf) at step (\d+);", str(e.value)).group(1))
    state, _ = checkpoint.load(tmp_path)
    assert state["step"] == 3 * ((failed - 1) // 3) > 0, str(e.value)
    assert f"(step {state['step']}) is intact" in str(e.value)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
