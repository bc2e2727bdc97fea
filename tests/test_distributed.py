"""torchrun with two CPU processes (gloo) trains what one process trains on the doubled batch."""

import subprocess
import sys

import torch

from genlab import checkpoint

# SGD: Adam divides by the gradient's own size and so magnifies float summation-order noise
COMMON = ["model=ae", "optim=sgd", "optim.lr=0.1", "trainer.max_steps=6", "trainer.ckpt_every=3", "trainer.eval_every=3", "trainer.sample_every=0",
          "trainer.progress_bar=false", "logger=jsonl", "data.augment.hflip=true"]


def test_two_ranks_match_one_process_with_twice_the_batch(tmp_path):
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "genlab.cli"]
    subprocess.run([*launch, "train", *COMMON, "data.batch_size=8", f"hydra.run.dir={tmp_path / 'ddp'}"],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "genlab.cli", "train", *COMMON, "data.batch_size=16", f"hydra.run.dir={tmp_path / 'one'}"],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    ddp, _ = checkpoint.load(tmp_path / "ddp")
    one, _ = checkpoint.load(tmp_path / "one")
    assert ddp["step"] == one["step"] == 6 and ddp["data"] == one["data"]
    for name, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
