"""scripts/mode_coverage.py on a stacked set: trains experiment=dcgan per loss and evaluates
stacked_modes as `genlab eval` does (here with the tiny digits classifier of
test_domain_metrics, two steps and 300 samples)."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_domain_metrics import cache  # noqa: F401  (the tiny digits classifier, in a GENLAB_CACHE)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.dataset.size=64", "data.batch_size=8", "model.generator.base_channels=8", "model.discriminator.base_channels=8",
        "trainer.sample_every=0", "trainer.ckpt_every=0"]


@pytest.mark.slow  # 21 s of CPU (the tiny classifier, two runs and their evaluations)
def test_the_stacked_table_has_a_row_per_loss_with_modes_of_1000_and_the_kl(cache, tmp_path):  # noqa: F811
    env = {**os.environ, "GENLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "mode_coverage.py"), "--data", "stacked_digits", "--losses", "nonsat", "hinge",
                        "--steps", "2", "--samples", "300", "--out", str(tmp_path), *TINY], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| data | loss | modes of 1000 | KL to uniform (nats) | steps | train wall s |" in r.stdout
    rows = re.findall(r"^\| stacked_digits \| (\w+) \| (\d+) \| ([\d.]+) \| 2 \| \d+ \|$", r.stdout, re.M)
    assert [loss for loss, *_ in rows] == ["nonsat", "hinge"]
    for _, modes, kl in rows:
        assert 1 <= int(modes) <= 300 and 0 <= float(kl) <= math.log(1000) + 1e-3
    for loss in ("nonsat", "hinge"):  # each run's own checkpoint, at the budget's step
        assert (tmp_path / f"stacked_digits_{loss}" / "checkpoints" / "last.pt").is_file()
