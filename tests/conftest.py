import os

# `make test` runs the suite on pytest-xdist workers, one per core: each worker (and each command
# a test starts) gets its share of the cores, since OpenMP threads that outnumber the cores spin
# against each other and slow every process far more than the share would
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest
import torch
from hydra import compose, initialize_config_module

import genlab.config  # noqa: F401  (registers the resolvers the configs use)

# quiet, quick settings every in-process run shares
FAST = ["trainer.progress_bar=false", "logger=jsonl", "trainer.log_every=1", "data.batch_size=16"]


@pytest.fixture
def make_cfg():
    """Compose a genlab config the way the CLI does: make_cfg("train", ["model=vae", ...])."""

    def make(name: str = "train", overrides: list[str] = (), fast: bool = True):
        with initialize_config_module(config_module="genlab.configs", version_base=None):
            extra = FAST if (fast and name == "train") else []
            return compose(config_name=name, overrides=[*extra, *overrides])

    return make


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield
