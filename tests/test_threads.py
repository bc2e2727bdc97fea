"""Parallel runs on one machine: each joblib sweep job or torchrun local rank takes its share
of the cores (intra-op threads and data workers) unless the user set the threads."""

import logging

import pytest
import torch
from omegaconf import OmegaConf

from genlab.device import concurrent_jobs, share_cores, thread_share


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_share_is_the_cores_divided_evenly_and_at_least_one():
    assert [thread_share(16, n) for n in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert thread_share(2, 2) == 1


def test_torchrun_ranks_on_one_node_are_the_concurrent_jobs(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert concurrent_jobs(16) == (4, "4 torchrun ranks")
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert concurrent_jobs(16) == (1, "one job")


def _cfgs(threads=None, workers=4):
    return OmegaConf.create({"threads": threads}), OmegaConf.create({"num_workers": workers})


def test_a_torchrun_rank_takes_its_share_and_caps_the_data_workers(monkeypatch, caplog):
    monkeypatch.setattr("genlab.device.cores", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets when it is unset: not the user's choice
    trainer, data = _cfgs(workers=8)
    with caplog.at_level(logging.INFO, logger="genlab.device"):
        share_cores(trainer, data)
    assert torch.get_num_threads() == 4 and data.num_workers == 3
    assert caplog.messages == ["threads=4 (the cores shared), data workers=3: 16 cores, 4 concurrent jobs (4 torchrun ranks); "
                               "trainer.threads=N sets the threads"]


def test_the_users_threads_are_kept_and_the_data_workers_match_them(monkeypatch):
    monkeypatch.setattr("genlab.device.cores", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch took from OMP_NUM_THREADS at start-up
    trainer, data = _cfgs()
    share_cores(trainer, data)
    assert torch.get_num_threads() == 3 and data.num_workers == 2
    share_cores(*_cfgs(threads=2))
    assert torch.get_num_threads() == 2


def test_one_job_keeps_torchs_default(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    trainer, data = _cfgs()
    share_cores(trainer, data)
    assert torch.get_num_threads() == before and data.num_workers == 4
