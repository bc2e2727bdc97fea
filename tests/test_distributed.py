"""torchrun with two CPU processes (gloo) trains what one process trains on the doubled batch."""

import subprocess
import sys

import torch

from genlab import checkpoint

# SGD: Adam divides by the gradient's own size and so magnifies float summation-order noise
COMMON = ["model=ae", "optim=sgd", "optim.lr=0.1", "trainer.max_steps=6", "trainer.ckpt_every=3", "trainer.eval_every=3", "trainer.sample_every=0",
          "trainer.progress_bar=false", "logger=jsonl", "data.augment.hflip=true"]


def test_two_ranks_match_one_process_with_twice_the_batch(tmp_path):
    # each rank's stdout and stderr in its own file: <log dir>/<run id>/attempt_0/<rank>/std{out,err}.log
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", f"--log-dir={tmp_path / 'logs'}", "--redirects=3",
              "-m", "genlab.cli"]
    subprocess.run([*launch, "train", *COMMON, "data.batch_size=8", f"hydra.run.dir={tmp_path / 'ddp'}"],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    (rank0,), (rank1,) = (list((tmp_path / "logs").glob(f"*/attempt_0/{rank}")) for rank in (0, 1))
    assert "model Autoencoder" in (rank0 / "stdout.log").read_text() and "step 6, " in (rank0 / "stdout.log").read_text()
    assert (rank1 / "stdout.log").read_text() == (rank1 / "stderr.log").read_text() == "", "only rank 0 talks"
    subprocess.run([sys.executable, "-m", "genlab.cli", "train", *COMMON, "data.batch_size=16", f"hydra.run.dir={tmp_path / 'one'}"],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    ddp, _ = checkpoint.load(tmp_path / "ddp")
    one, _ = checkpoint.load(tmp_path / "one")
    assert ddp["step"] == one["step"] == 6 and ddp["data"] == one["data"]
    for name, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
