"""trainer.compile=true: the networks compiled with inductor train what eager mode trains."""

import json

import pytest
import torch

from genlab import train

RUN = ["model=ae", "trainer.max_steps=4", "trainer.log_every=1", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0"]


def losses(run_dir) -> list[float]:
    return [row["train/loss"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "train/loss" in row]


@pytest.mark.slow
def test_a_compiled_autoencoder_logs_the_eager_losses_to_1e_4(make_cfg, tmp_path):
    train.run(make_cfg("train", RUN), run_dir=tmp_path / "eager")
    try:
        train.run(make_cfg("train", [*RUN, "trainer.compile=true"]), run_dir=tmp_path / "compiled")
    finally:
        torch._dynamo.reset()
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert len(eager) == len(compiled) == 4
    # inductor fuses and reorders float operations: equal up to rounding, not bit for bit
    assert compiled == pytest.approx(eager, rel=1e-4)


@pytest.mark.parametrize("loss, key", [("wgan_gp", "gp_weight"), ("r1", "r1_gamma")])
def test_compile_refuses_a_gradient_penalty_in_one_line(loss, key, make_cfg, tmp_path):
    from genlab import GenlabError

    with pytest.raises(GenlabError, match=f"trainer.compile=true cannot train with the .*double backward.*; drop trainer.compile or set loss.{key}=0$"):
        train.run(make_cfg("train", ["model=gan_mlp", f"loss={loss}", "trainer.compile=true", "trainer.max_steps=1"]), run_dir=tmp_path)
